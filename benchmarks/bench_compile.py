"""Compiler-core benchmark (issue 2): prints figures and ratios against baselines run here.

1. In-process import + conversion passes for densenet121 from ONNX, against onnxruntime's
   `InferenceSession` creation on the same file (target: at most 5x).
2. The whole `snnc compile` wall time (a fresh process, as a user runs it) against
   `python -c "import torch, onnx"` (target: at most 1.5x).
3. Import + passes for synthetic conv-bn-relu chains of 100, 1000 and 5000 layers, and the
   exponent of a power-law fit (target: close to 1, i.e. linear).

    .venv/bin/python benchmarks/bench_compile.py [--size 224] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import best_of, export_densenet


def chain_onnx(path: Path, layers: int, width: int = 8, side: int = 8) -> None:
    """A conv-bn-relu chain of `layers` layers as an ONNX file (built with onnx.helper)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []
    prev = "x"
    for i in range(layers):
        w = numpy_helper.from_array(rng.standard_normal((width, width, 3, 3)).astype("f4") * .1,
                                    f"w{i}")
        inits.append(w)
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], name=f"conv{i}",
                                      pads=[1, 1, 1, 1], kernel_shape=[3, 3]))
        for role, val in (("s", 1.0), ("b", 0.0), ("m", 0.0), ("v", 1.0)):
            inits.append(numpy_helper.from_array(np.full(width, val, "f4"), f"{role}{i}"))
        nodes.append(helper.make_node("BatchNormalization",
                                      [f"c{i}", f"s{i}", f"b{i}", f"m{i}", f"v{i}"], [f"n{i}"],
                                      name=f"bn{i}"))
        nodes.append(helper.make_node("Relu", [f"n{i}"], [f"r{i}"], name=f"relu{i}"))
        prev = f"r{i}"
    nodes.append(helper.make_node("GlobalAveragePool", [prev], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"))
    inits.append(numpy_helper.from_array(rng.standard_normal((10, width)).astype("f4"), "fcw"))
    inits.append(numpy_helper.from_array(np.zeros(10, "f4"), "fcb"))
    nodes.append(helper.make_node("Gemm", ["flat", "fcw", "fcb"], ["y"], name="fc", transB=1))
    graph = helper.make_graph(
        nodes, f"chain{layers}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width, side, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def import_and_passes(path: Path):
    from snnc.compiler.api import import_ann
    from snnc.compiler.passmanager import run_pipeline
    from snnc.passes.pipeline import conversion_pipeline

    return run_pipeline(import_ann(str(path)), conversion_pipeline())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224, help="densenet121 input side")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chains", default="100,1000,5000")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="snnc-bench-"))
    import onnxruntime as ort
    import torch

    torch.set_num_threads(1)
    dn = tmp / "densenet121.onnx"
    export_densenet(dn, args.size)

    so = ort.SessionOptions()
    t_ort = best_of(lambda: ort.InferenceSession(str(dn), so, providers=["CPUExecutionProvider"]),
                    args.repeat)
    import_and_passes(dn)  # warm imports once, as a long-lived process would
    t_snnc = best_of(lambda: import_and_passes(dn), args.repeat)
    print(f"[1] densenet121 {args.size}x{args.size}: snnc import+passes {t_snnc:.3f} s; "
          f"onnxruntime InferenceSession {t_ort:.3f} s; ratio {t_snnc / t_ort:.2f}x (target <= 5x)")

    py = sys.executable
    snnc = str(Path(py).with_name("snnc"))
    t_base = best_of(lambda: subprocess.run([py, "-c", "import torch, onnx"], check=True),
                     args.repeat)
    out = tmp / "out.snnc"
    example = Path(__file__).resolve().parents[1] / "models" / "examples" / "resnet20.onnx"
    cmd = [snnc, "compile", str(example), "--residual", "s2s", "--target", "loihi2", "-o",
           str(out)]
    t_cli = best_of(lambda: subprocess.run(cmd, check=True, capture_output=True), args.repeat)
    cmd_dn = [snnc, "compile", str(dn), "--residual", "s2s", "--target", "loihi2", "-o",
              str(tmp / "dn.snnc")]
    t_cli_dn = best_of(lambda: subprocess.run(cmd_dn, check=True, capture_output=True), 1)
    print(f"[2] `snnc compile` resnet20.onnx: {t_cli:.2f} s; `python -c 'import torch, onnx'`: "
          f"{t_base:.2f} s; ratio {t_cli / t_base:.2f}x (target <= 1.5x). "
          f"densenet121: {t_cli_dn:.2f} s ({t_cli_dn / t_base:.2f}x)")

    sizes = [int(s) for s in args.chains.split(",")]
    times = []
    for n in sizes:
        path = tmp / f"chain{n}.onnx"
        chain_onnx(path, n)
        t = best_of(lambda: import_and_passes(path), 1 if n >= 5000 else args.repeat)
        times.append(t)
        print(f"[3] chain of {n} conv-bn-relu layers: import+passes {t:.3f} s "
              f"({1e3 * t / n:.2f} ms/layer)")
    xs = [math.log(n) for n in sizes]
    ys = [math.log(t) for t in times]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    print(f"[3] growth exponent (log-log fit over {sizes}): {slope:.2f} (1.0 = linear)")


if __name__ == "__main__":
    main()
