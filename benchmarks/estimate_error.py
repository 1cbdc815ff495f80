"""Measure the estimate mode's typical error per layer-input kind and write the table the cost
model ships (costmodel/estimate_error.json; docs/costmodel.md "Two modes").

For each network and residual mode: record the activity of N digits (measured mode), then
estimate with the *exact measured firing rate of every lif* as the prior (so the error is that
of the propagation rules alone), and compare each layer's input SOPs. Per kind: the median and
the 90th percentile of |estimate - measured| / measured over all layers of that kind.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/estimate_error.py [--samples 32] [--write]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the pytorchcv-style definitions of the tests

from tests import cvnets  # noqa: E402


def networks():
    """(name, nn.Module, input shape, residual modes); weights from seed 0 each."""
    torch.manual_seed(0)
    yield "cifar-resnet", cvnets.init_bn(cvnets.CIFARResNet((8, 16, 32), blocks=2)), (3, 16, 16), \
        ("s2s", "s2m", "v2v")
    torch.manual_seed(0)
    yield "preresnet", cvnets.init_bn(cvnets.PreResNet((8, 16, 32), blocks=2)), (3, 16, 16), \
        ("s2s", "v2v")
    torch.manual_seed(0)
    yield "densenet-preact", cvnets.init_bn(cvnets.DenseNet(8, 8, (3, 3))), (3, 16, 16), ("s2s",)
    torch.manual_seed(0)
    yield "densenet-postact", cvnets.init_bn(cvnets.DenseNet(8, 8, (3, 3), preact=False)), \
        (3, 16, 16), ("s2s",)
    torch.manual_seed(0)
    yield "smallnet", cvnets.SmallNet().eval(), (1, 8, 8), ("s2s",)


def measure(samples: int) -> tuple[dict, list]:
    from snnc.compiler.api import compile as snnc_compile
    from snnc.compiler.api import cost_report, record_activity
    from snnc.costmodel import Activity

    errs: dict[str, list[float]] = {}
    rows_out = []
    for name, net, shape, modes in networks():
        for res in modes:
            torch.manual_seed(0)
            c = snnc_compile(net, residual=res, timesteps=4, input_shape=shape)
            act = record_activity(c.graph, "digits", samples=samples)
            meas = cost_report(c.graph, "generic", rates=act)
            est = cost_report(c.graph, "generic", rates=Activity("prior", act.rates, 0.0))
            for m, e in zip(meas.rows, est.rows):
                pairs = []
                if m.in_kind and m.in_sops:
                    pairs.append((m.in_kind, e.in_sops, m.in_sops))
                mm = m.sops + m.graded_sops - m.in_sops
                if m.residual_synapses and mm:
                    pairs.append(("membrane", e.sops + e.graded_sops - e.in_sops, mm))
                for kind, ev, mv in pairs:
                    err = abs(ev - mv) / mv
                    errs.setdefault(kind, []).append(err)
                    rows_out.append((name, res, m.name, kind, ev, mv, err))
    table = {k: {"median": float(np.median(v)), "p90": float(np.percentile(v, 90)),
                 "layers": len(v)} for k, v in sorted(errs.items())}
    return table, rows_out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--write", action="store_true", help="write costmodel/estimate_error.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    table, rows = measure(args.samples)
    print(f"{'kind':14s} {'layers':>6s} {'median':>8s} {'p90':>8s}")
    for k, v in table.items():
        print(f"{k:14s} {v['layers']:6d} {100 * v['median']:7.1f}% {100 * v['p90']:7.1f}%")
    if args.write:
        table["_source"] = (f"benchmarks/estimate_error.py, {args.samples} digits, T=4, "
                            f"tests/cvnets.py networks, random BN statistics")
        out = ROOT / "costmodel" / "estimate_error.json"
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(table, indent=1) + "\n")
        tmp.replace(out)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
