"""Where a loihi2 conversion loses accuracy (docs/passes.md "Conversion", "Measured").

    OMP_NUM_THREADS=1 python tests/trained/diagnose.py NET [CHANGE ...] [--limit N] [-T T]
        [--calibrate-rates N] [--calibrate-bias N] [--layers]

Compiles tests/trained/NET.onnx as measure.py's loihi2 stage does (IF, --normalize
fashion-mnist, --residual s2m, target-exact loihi2) and runs it on the first N test images with
one or more parts of the target's arithmetic changed in the PyTorch backend, for this process
only (a diagnostic: nothing it measures is deployable):

    subtract   the fixed-point neuron resets by subtraction instead of to zero
    floatw     weights, biases and BN affines stay float (no 8-bit mantissa, no bias grid)
    norelay    graded relays pass their value without the floor to 1/2 (still one step late)

`--calibrate-rates`/`--calibrate-bias` override the compiler's rounds (e.g. 0 to see the
uncalibrated net). Prints one JSON object (ANN accuracy, SNN accuracy at T/4, T/2, T) and with
`--layers` one line per lif: its mean rate against the ANN's mean clip(a / lambda, 0, 1), the
RMS error per neuron, and the range of per-channel rate ratios (rates over all T steps).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def _subtract_kernel():
    """The fixed-point LIF kernel (backends/pytorch/neuron.py `_forward_fixed`) with reset by
    subtraction of the threshold instead of reset to zero."""
    from snnc.backends.pytorch import neuron

    def forward_fixed(x, steps, cfg, out, mem, spk):
        keep, th = 4096 - cfg.v_decay, cfg.vth_mant << 6
        v = torch.zeros(x.shape[1:], dtype=torch.int64, device=x.device)
        for t in range(steps):
            xt = x[t if x.shape[0] > 1 else 0]
            v = torch.div(v * keep, 4096, rounding_mode="trunc") + (4096 * xt).to(torch.int64)
            v.clamp_(-neuron.V_LIMIT, neuron.V_LIMIT)
            o = v > th
            mem[t], spk[t], out[t] = v.float() / 4096, o, o.to(x.dtype)
            v = v - o.long() * th

    neuron._forward_fixed = forward_fixed


def _float_weights():
    from snnc.backends.pytorch import ops
    from snnc.passes import quantize

    ops.quantize_weight = lambda w, *grid: w
    quantize._round = lambda w, step, lo, hi: w


def _no_relay_floor():
    from snnc.backends.pytorch import module

    class Identity(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v, step):
            return v

        @staticmethod
        def backward(ctx, grad):
            return grad, None

    module._Floor = Identity


CHANGES = {"subtract": _subtract_kernel, "floatw": _float_weights, "norelay": _no_relay_floor}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("net")
    ap.add_argument("changes", nargs="*", choices=sorted(CHANGES))
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("-T", "--timesteps", type=int, default=128)
    ap.add_argument("--calibrate-rates", type=int, default=None)
    ap.add_argument("--calibrate-bias", type=int, default=None)
    ap.add_argument("--layers", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for ch in args.changes:
        CHANGES[ch]()
    from snnc.backends.pytorch import build_module
    from snnc.backends.pytorch.calibrate import _ann_values
    from snnc.compiler import compile
    from snnc.data import load_dataset

    kw = {k: v for k, v in (("calibrate_rates", args.calibrate_rates),
                            ("calibrate_bias", args.calibrate_bias)) if v is not None}
    t0 = time.time()
    c = compile(str(HERE / f"{args.net}.onnx"), leak=1.0, normalize="fashion-mnist",
                calibration_samples=1000, bntt=False, residual="s2m",
                timesteps=args.timesteps, target="loihi2", **kw)
    g, ann = c.graph, c.ann
    te = load_dataset("fashion-mnist", "test", limit=args.limit)
    lifs = {n.name: (n.name if ann.has_node(n.name) else n.name[:-4])
            for n in g.by_op("lif") if n.attrs.get("lambda")}
    rec: dict[str, list[torch.Tensor]] = {}

    def observe(node, ins, out):
        if args.layers and node.name in lifs:
            rec.setdefault(node.name, []).append(out.float().mean(0))

    m = build_module(g).eval()
    m.observer, m.per_step_readout = observe, True
    with torch.no_grad():
        out = torch.cat([m(te.x[i:i + 50].float()) for i in range(0, len(te), 50)], 1)
    acts = _ann_values(ann, te.x.float(), set(lifs.values()) | set(ann.outputs))
    T = args.timesteps
    print(json.dumps({
        "net": args.net, "changes": args.changes, **kw, "samples": len(te),
        "ann_accuracy": float((acts[ann.outputs[0]].argmax(1) == te.y).float().mean()),
        "by_timesteps": {t: float((out[t - 1].argmax(1) == te.y).float().mean())
                         for t in sorted({max(1, T // 4), max(1, T // 2), T})},
        "seconds": round(time.time() - t0)}), flush=True)
    for name, ann_name in lifs.items():
        if name not in rec:
            continue
        r = torch.cat(rec[name])
        t = (acts[ann_name] / float(g.node(name).attrs["lambda"])).clamp(0, 1).reshape(r.shape)
        dims = [0] + list(range(2, r.dim()))
        rc, tc = r.mean(dims), t.mean(dims)
        ratio = rc[tc > 1e-3] / tc[tc > 1e-3]
        print(f"{name:24s} ann {float(t.mean()):.4f} snn {float(r.mean()):.4f} "
              f"rms error {float((r - t).pow(2).mean().sqrt()):.4f} per-channel ratio "
              f"{float(ratio.min()):.2f}..{float(ratio.max()):.2f}")


if __name__ == "__main__":
    main()
