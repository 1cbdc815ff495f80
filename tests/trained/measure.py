"""Measure conversion accuracy of the trained nets (docs/passes.md "Conversion").

    OMP_NUM_THREADS=1 python tests/trained/measure.py generic  [--nets vgg,resnet] [--limit N] [--timesteps 4,8,...]
    OMP_NUM_THREADS=1 python tests/trained/measure.py loihi2   [--limit N] [--timesteps 4,8,...]
    OMP_NUM_THREADS=1 python tests/trained/measure.py spikingjelly [--limit N]
    OMP_NUM_THREADS=1 python tests/trained/measure.py finetune [--train-limit N] [--limit N]

generic: IF neurons (--leak 1), --normalize fashion-mnist (1000 training images, percentile
99.9), --residual s2m, --no-bntt, T=64, accuracy on the test images. loihi2: the same with
loihi2 target semantics (reset to zero, 8-bit weights with per-layer exponents, one step of
synaptic delay per layer; the default 3 rounds of threshold calibration with that neuron,
--calibrate-rates, then 4 rounds of per-channel bias correction, --calibrate-bias, or
`--calibrate-bias N`), accuracy against T from one run at the largest T. spikingjelly:
SpikingJelly's ann2snn (FXConverter + RateCodingRecipe, mode "99.9%", the same 1000
calibration images) on the same ANN (the ONNX file's weights, rebuilt as a torch module).
finetune: LIF (leak 0.874), --residual s2s, T=8, the default --bn (bntt on generic: identity
BNTT layers on the normalised weights), converted weights, then one epoch of `snnc train` with
its defaults (Adam, lr 1e-3, cosine; docs/passes.md "Fine-tuning a converted net").
Prints one JSON object per net; writes nothing under tests/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
NETS = ("vgg", "resnet", "preact", "densenet")
CALIB = 1000
ALL_T = "4,8,16,32,64,128,256"


def _compile(name: str, **kw):
    from snnc.compiler import compile

    return compile(str(HERE / f"{name}.onnx"), leak=1.0, normalize="fashion-mnist",
                   calibration_samples=CALIB, bntt=False, residual="s2m", **kw)


def generic(name: str, args) -> dict:
    ts = [int(t) for t in (args.timesteps or "8,16,32,64").split(",")]
    c = _compile(name, timesteps=max(ts))
    res = c.evaluate("fashion-mnist", limit=args.limit, timesteps=ts, batch_size=250)
    return {"net": name, "target": "generic", **res}


def loihi2(name: str, args) -> dict:
    ts = [int(t) for t in (args.timesteps or ALL_T).split(",")]
    kw = {} if args.calibrate_bias is None else {"calibrate_bias": args.calibrate_bias}
    c = _compile(name, timesteps=max(ts), target="loihi2", **kw)
    res = c.evaluate("fashion-mnist", limit=args.limit, timesteps=ts, batch_size=250)
    d = c.delay_depth()
    return {"net": name, "target": "loihi2", "delay_depth": d.as_dict(), **res}


def ann_module(ann):
    """The ANN-form IR as an FX-traceable torch module (nn.Conv2d / nn.Linear / nn.ReLU
    modules, functional pools, adds and concats) for SpikingJelly's converter."""
    from torch import nn

    from snnc.compiler.interpret import INTERPRETERS, _role, edge_value

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.mods = nn.ModuleDict()
            for n in ann.nodes:
                key = n.name.replace(".", "_")
                if n.op == "relu":
                    self.mods[key] = nn.ReLU()
                elif n.op == "conv2d":
                    w = ann.params[n.param("weight")]
                    m = nn.Conv2d(w.shape[1] * n.attrs.get("groups", 1), w.shape[0],
                                  tuple(w.shape[2:]), stride=n.attrs.get("stride", 1),
                                  padding=tuple(n.attrs.get("pad", (0, 0, 0, 0))[:2]),
                                  groups=n.attrs.get("groups", 1),
                                  bias=n.param("bias") is not None)
                    m.weight.data.copy_(w)
                    if m.bias is not None:
                        m.bias.data.copy_(ann.params[n.param("bias")])
                    self.mods[key] = m
                elif n.op == "avgpool":
                    k = n.attrs["k"]
                    pad = tuple(n.attrs.get("pad", (0, 0, 0, 0)))
                    self.mods[key] = nn.AvgPool2d(k, n.attrs.get("stride", k),
                                                  pad[:2] if len(pad) == 4 else pad,
                                                  bool(n.attrs.get("ceil", False)),
                                                  bool(n.attrs.get("count_include_pad", True)))
                elif n.op == "adaptive_avgpool":
                    self.mods[key] = nn.AdaptiveAvgPool2d(n.attrs["out"])
                elif n.op == "batchnorm":
                    c = ann.params[n.param("weight")].shape[0]
                    m = nn.BatchNorm2d(c, eps=n.attrs.get("eps", 1e-5))
                    for role in ("weight", "bias", "running_mean", "running_var"):
                        getattr(m, role).data.copy_(ann.params[n.param(role)])
                    self.mods[key] = m
                elif n.op == "linear":
                    w = ann.params[n.param("weight")]
                    m = nn.Linear(w.shape[1], w.shape[0], bias=n.param("bias") is not None)
                    m.weight.data.copy_(w)
                    if m.bias is not None:
                        m.bias.data.copy_(ann.params[n.param("bias")])
                    self.mods[key] = m

        def forward(self, x):
            env = {ann.input_nodes()[0].name: x}
            for n in ann.nodes:
                if n.op == "input":
                    continue
                xs = [edge_value(ann, e, env) for e in ann.inputs_of(n.name)]
                key = n.name.replace(".", "_")
                if key in self.mods:
                    env[n.name] = self.mods[key](xs[0])
                elif n.op == "add":
                    v = xs[0]
                    for other in xs[1:]:
                        v = v + other
                    env[n.name] = v
                elif n.op == "concat":
                    env[n.name] = torch.cat(xs, 1)
                elif n.op == "flatten":
                    env[n.name] = torch.flatten(xs[0], n.attrs.get("start", 1))
                else:
                    p = {_role(n, k): ann.params[k] for k in n.params}
                    env[n.name] = INTERPRETERS[n.op](n, xs, p)
            return env[ann.outputs[0]]

    return Net().eval()


def spikingjelly(name: str, args) -> dict:
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.ann2snn import FXConverter, RateCodingRecipe

    from snnc.compiler.api import import_ann
    from snnc.data import load_dataset

    ann = import_ann(str(HERE / f"{name}.onnx"))
    model = ann_module(ann)
    tr = load_dataset("fashion-mnist", "train", limit=CALIB)
    te = load_dataset("fashion-mnist", "test", limit=args.limit)
    calib = [(tr.x[i:i + 100], tr.y[i:i + 100]) for i in range(0, CALIB, 100)]
    out = {"net": name, "converter": "spikingjelly RateCodingRecipe(mode='99.9%')"}
    with torch.no_grad():
        out["ann_accuracy"] = float((model(te.x).argmax(1) == te.y).float().mean())
    try:
        snn = FXConverter(recipe=RateCodingRecipe(dataloader=calib, mode="99.9%"),
                          device="cpu").convert(model)
    except Exception as err:  # report what the converter does with this net
        return {**out, "converted": False, "error": f"{type(err).__name__}: {err}"[:400]}
    ts = [int(t) for t in (args.timesteps or ALL_T).split(",")]
    hits = torch.zeros(max(ts))
    snn.eval()
    with torch.no_grad():
        for i in range(0, len(te), 250):
            x, y = te.x[i:i + 250], te.y[i:i + 250]
            functional.reset_net(snn)
            acc = None
            for t in range(max(ts)):
                step = snn(x)
                acc = step if acc is None else acc + step
                hits[t] += float((acc.argmax(1) == y).sum())
    return {**out, "converted": True, "samples": len(te),
            "by_timesteps": {t: float(hits[t - 1]) / len(te) for t in ts}}


def finetune(name: str, args) -> dict:
    from snnc.compiler import compile, load

    out = {"net": name, "neuron": "LIF leak 0.874", "residual": "s2s", "timesteps": 8,
           "bn": args.bn}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / f"{name}.snnc"
        c = compile(str(HERE / f"{name}.onnx"), normalize="fashion-mnist",
                    calibration_samples=CALIB, bn=args.bn, residual="s2s", timesteps=8)
        c.save(d)
        before = load(d).evaluate("fashion-mnist", limit=args.limit, rates=False)
        out["ann_accuracy"], out["converted_accuracy"] = before["ann_accuracy"], \
            before["snn_accuracy"]
        cmd = [sys.executable, "-m", "snnc.compiler", "train", str(d), "--data", "fashion-mnist",
               "--epochs", "1", "--threads", "1"]
        if args.lr is not None:
            cmd += ["--lr", str(args.lr)]
        if args.batch_size is not None:
            cmd += ["--batch-size", str(args.batch_size)]
        if args.train_limit:
            cmd += ["--limit", str(args.train_limit)]
        if args.limit:
            cmd += ["--test-limit", str(args.limit)]
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        out["train_seconds"] = round(time.time() - t0)
        out["command"] = " ".join(["snnc"] + cmd[3:])
        if r.returncode != 0:
            return {**out, "error": r.stderr[-800:]}
        # snnc train's own final test accuracy (the same test images; not evaluated twice)
        report = json.loads((d / "train_report.json").read_text())
        out["finetuned_accuracy"] = report["accuracy"]
        out["train_samples"] = args.train_limit or 60000
        out["samples"] = before["samples"]
        rates = [sum(v) / len(v) for v in report["rates"].values() if v]
        out["rate_range"] = [round(min(rates), 3), round(max(rates), 3)] if rates else None
        out["bn_recalibration"] = report.get("bn")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("stage", choices=["generic", "loihi2", "spikingjelly", "finetune"])
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--limit", type=int, default=None, help="first N test images")
    ap.add_argument("--timesteps", default=None, help="T at which accuracy is read (one run "
                    "at the largest); default: generic 8,16,32,64, loihi2 and spikingjelly "
                    "4,8,16,32,64,128,256")
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None, help="finetune: --lr of snnc train "
                    "(default: its own)")
    ap.add_argument("--batch-size", type=int, default=None, help="finetune: --batch-size of "
                    "snnc train (default: its own)")
    ap.add_argument("--calibrate-bias", type=int, default=None, help="loihi2: rounds of "
                    "per-channel bias correction (default: the compiler's)")
    ap.add_argument("--bn", default="auto", help="finetune: --bn of the compile")
    args = ap.parse_args()
    torch.set_num_threads(1)
    fn = {"generic": generic, "loihi2": loihi2, "spikingjelly": spikingjelly,
          "finetune": finetune}[args.stage]
    for name in args.nets.split(","):
        t0 = time.time()
        res = fn(name, args)
        res["seconds"] = round(time.time() - t0)
        res.pop("rates", None)
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
