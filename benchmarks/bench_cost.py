"""Cost-model benchmark (issue 5): prints figures and ratios against baselines run here.

1. `snnc.costmodel.estimate` on densenet121 (224x224 ONNX exported by torch, imported and
   converted by snnc first: not timed) against onnxruntime's `InferenceSession` creation on the
   same file (target: ratio at most 1x). Targets generic (graded spikes) and loihi1 (binary
   only: the legalize-graded pass runs on a copy, and core allocation runs).
2. The whole path a user runs, in process: `snnc cost densenet121.onnx --format json` (ONNX
   import and checks, conversion passes, estimate, JSON report) against the same session
   creation (issue 11: target at most 1x).
3. `estimate` on synthetic SNN chains (encoder, then conv-lif layers, then a readout) of 100,
   1000 and 5000 layers, and the exponent of a power-law fit of time against layers (target:
   close to 1, i.e. linear).

    .venv/bin/python benchmarks/bench_cost.py [--size 224] [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from _common import best_of, export_densenet


def chain_graph(layers: int, width: int = 8, side: int = 8):
    """An SNN-form chain: poisson encoder, `layers` x (3x3 conv -> lif), linear readout."""
    from snnc.compiler.ir import Attrs, Edge, Form, GraphBuilder, Node

    b = GraphBuilder(f"chain{layers}", Form.SNN, Attrs({"timesteps": 4}))
    shape = (1, width, side, side)
    b.add(Node("x", "input", shape=shape))
    b.add(Node("enc", "encoder", Attrs({"kind": "poisson"}), shape), ["x"])
    prev = "enc"
    conv = Attrs({"in": width, "out": width, "k": (3, 3), "stride": (1, 1),
                  "pad": (1, 1, 1, 1), "dilation": (1, 1), "groups": 1, "bias": False})
    lif = Attrs({"leak": 0.9, "vth": 1.0, "reset": "subtract"})
    for i in range(layers):
        b.add(Node(f"conv{i}", "conv2d", conv, shape), [prev])
        b.add(Node(f"lif{i}", "lif", lif, shape), [prev := f"conv{i}"])
        prev = f"lif{i}"
    b.add(Node("flat", "flatten", Attrs({"start": 1}), (1, width * side * side)), [prev])
    b.add(Node("fc", "linear", Attrs({"in": width * side * side, "out": 10, "bias": False}),
               (1, 10)), ["flat"])
    b.add(Node("out", "readout", shape=(1, 10)), [Edge("fc", "out", 0)])
    b.outputs = ["out"]
    return b.build()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="cProfile one densenet estimate")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from snnc.compiler.api import compile as snnc_compile
    from snnc.costmodel import estimate

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "densenet121.onnx"
        export_densenet(onnx_path, args.size)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1

        def session():
            ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])

        compiled = {}
        for target in ("generic", "loihi1"):  # compiled for the target, as `snnc compile` does
            c = compiled[target] = snnc_compile(onnx_path, residual="s2s", target=target,
                                                encoder="poisson")
            t_ort, t = float("inf"), float("inf")
            for _ in range(args.repeat):  # interleaved: the machine is shared
                t_ort = min(t_ort, best_of(session, 1))
                t = min(t, best_of(lambda: estimate(c.graph, target=target, rates=0.1,
                                                    ann=c.ann), 1))
            rep = estimate(c.graph, target=target, rates=0.1, ann=c.ann)
            print(f"densenet121 {args.size}x{args.size} (T={rep.timesteps}, poisson input), "
                  f"target {target}: estimate {t * 1e3:.1f} ms, onnxruntime InferenceSession "
                  f"{t_ort * 1e3:.1f} ms, ratio {t / t_ort:.2f}x (target <= 1x); "
                  f"{len(rep.rows)} layer rows, MACs {rep.totals['macs']:,}, "
                  f"cores {rep.totals['cores']}")
        c = compiled["generic"]
        t = min(best_of(lambda: estimate(c.graph, target="loihi1", rates=0.1, ann=c.ann), 1)
                for _ in range(args.repeat))
        print(f"  the generic-compiled graph costed on loihi1 (legalize-graded re-run on a "
              f"copy): {t * 1e3:.1f} ms, ratio {t / t_ort:.2f}x")
        import contextlib
        import io

        from snnc.compiler.cli import main as snnc_main

        def whole():
            with contextlib.redirect_stdout(io.StringIO()):
                assert snnc_main(["cost", str(onnx_path), "--format", "json"]) == 0
        whole()  # imports warm, as in a long-lived process
        t_w, t_ort = float("inf"), float("inf")
        for _ in range(args.repeat):
            t_ort = min(t_ort, best_of(session, 1))
            t_w = min(t_w, best_of(whole, 1))
        print(f"snnc cost densenet121.onnx --format json (whole path in process): "
              f"{t_w * 1e3:.0f} ms, onnxruntime InferenceSession {t_ort * 1e3:.0f} ms, ratio "
              f"{t_w / t_ort:.2f}x (target <= 1x)")
        if args.profile:
            import cProfile
            import pstats

            pr = cProfile.Profile()
            pr.enable()
            estimate(c.graph, target="loihi1", rates=0.1, ann=c.ann)
            pr.disable()
            pstats.Stats(pr).sort_stats("cumulative").print_stats(25)

    sizes, times = (100, 1000, 5000), []
    for n in sizes:
        g = chain_graph(n)
        t = best_of(lambda: estimate(g, target="loihi1", rates=0.1), max(1, args.repeat - 1))
        times.append(t)
        print(f"chain of {n} conv-lif layers: estimate(loihi1) {t * 1e3:.1f} ms "
              f"({t / n * 1e6:.0f} us/layer)")
    xs, ys = [math.log(n) for n in sizes], [math.log(t) for t in times]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    print(f"log-log exponent (time ~ layers^k): k = {slope:.2f} (target close to 1)")


if __name__ == "__main__":
    main()
