"""Do standard CIFAR-style nets keep their accuracy when deployed to Lava's Loihi 2 simulator?

    .venv-lava/bin/python benchmarks/lava_deploy_accuracy.py --net resnet --residual s2s \
        --epochs 6 --samples 300 [--bn fold|bntt]

1. A resnet20_cifar10- / preresnet20- / DenseNet-style net (tests/cvnets.py, small
   widths, 2 input channels) is compiled with default options and `--target loihi2
   --encoder events -T 16` (`--bn shared`: each conv's BN trained folded into its quantised
   weights, relays for projections and pre-activation sums).
2. `snnc train DIR --data digits-events` trains it in target-exact mode (BPTT).
3. `snnc.backends.lava.evaluate.evaluate` runs the held-back test split (digits-events,
   simulated event frames of the 8x8 digits) through Lava's simulator and the PyTorch model.

Prints both accuracies, the prediction agreement and the times. With `--bn bntt --no-lava`
it trains the BNTT version instead (PyTorch accuracy only: BNTT does not deploy), which
measures the accuracy cost of deploying without per-step statistics; `--bn fold` trains
the net with BN folded before training (the loihi2 default until 2026-12-02). Lava's bit-accurate CPU
simulator, not silicon."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from snnc.compiler.api import compile as snnc_compile  # noqa: E402
from snnc.compiler.cli import main as snnc  # noqa: E402
from tests import cvnets  # noqa: E402


def build(net: str):
    torch.manual_seed(0)
    if net == "resnet":
        return cvnets.CIFARResNet((8, 16, 16), blocks=3, cin=2)
    if net == "preresnet":
        return cvnets.PreResNet((8, 16, 16), blocks=3, cin=2)
    return cvnets.DenseNet(init=8, growth=6, units=(3, 3), cin=2, bottleneck=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", default="resnet", choices=("resnet", "preresnet", "densenet"))
    ap.add_argument("--residual", default="s2s", choices=("s2s", "s2m", "v2v"))
    ap.add_argument("--bn", default="auto", choices=("auto", "shared", "bntt", "fold"))
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("-T", "--timesteps", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--no-lava", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(a.out or tmp) / f"{a.net}-{a.residual}-{a.bn}.snnc"
        c = snnc_compile(build(a.net).eval(), target="loihi2", residual=a.residual,
                         encoder="events", timesteps=a.timesteps, bn=a.bn,
                         example_input=torch.zeros(1, 2, 8, 8))
        c.save(d, cost=False)
        t0 = time.perf_counter()
        rc = snnc(["train", str(d), "--data", "digits-events", "--epochs", str(a.epochs),
                   "--lr", str(a.lr), "--threads", "1", "--test-limit", str(a.samples)])
        t_train = time.perf_counter() - t0
        if rc != 0:
            raise SystemExit(f"snnc train failed ({rc})")
        print(f"{a.net} {a.residual} bn={c.options.bn} T={a.timesteps}: trained {a.epochs} "
              f"epochs on digits-events in {t_train:.0f} s", flush=True)
        if a.no_lava:
            from snnc.backends.pytorch.io import load_module
            from snnc.data import load_dataset

            m = load_module(d).eval()
            ds = load_dataset("digits-events", "test", limit=a.samples, timesteps=a.timesteps)
            with torch.no_grad():
                p = m(ds.x.transpose(0, 1).contiguous()).argmax(1)
            print(f"PyTorch accuracy {(p == ds.y).float().mean():.4f} on {len(ds)} samples")
            return
        from snnc.backends.lava.evaluate import evaluate

        r = evaluate(d, data="digits-events", limit=a.samples)
    print(f"{r['samples']} held-back samples: accuracy PyTorch target-exact {r['acc_torch']:.4f}"
          f", Lava {r['acc_lava']:.4f}; predictions equal {100 * r['agree']:.1f} %; max "
          f"|readout difference| {r['max_readout_diff']:.3g}; Lava {r['s_per_sample_lava']:.2f}"
          f" s/sample ({r['slowdown']:.0f}x PyTorch); readout saturated on {r['saturated']}")


if __name__ == "__main__":
    main()
