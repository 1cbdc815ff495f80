"""Cost-model benchmark (issue 5): prints figures and ratios against baselines run here.

1. `snnc.costmodel.estimate` on densenet121 (224x224 ONNX exported by torch, imported and
   converted by snnc first: not timed) against onnxruntime's `InferenceSession` creation on the
   same file (target: ratio at most 1x). Targets generic (graded spikes) and loihi1 (binary
   only: the legalize-graded pass runs on a copy, and core allocation runs).
2. The whole path a user runs, in process: `snnc cost densenet121.onnx --format json` (ONNX
   import and checks, conversion passes, estimate, JSON report) against the same session
   creation (issue 11: target at most 1x), twice: as a user runs both (torch's default
   threads, onnxruntime's default SessionOptions) and one thread each, on the file of each
   of torch's exporters (`--exporter`): TorchScript (weights inline) and dynamo (torch's
   default: weights in a .data file). Last measured (`--whole-only --repeat 15`, sixteen
   runs on a 2-core machine; docs/costmodel.md "Speed", twelfth round): TorchScript wall
   0.92x-0.96x as a user runs both, CPU 1.08x-1.15x one thread each; dynamo 0.98x-1.00x and
   1.32x-1.36x (eleventh round 1.02x-1.06x and 1.38x-1.41x; tenth 1.04x-1.06x; ninth
   1.11x-1.13x; 1.55x and 1.74x before it). Earlier rounds on the TorchScript file:
   0.92x-0.98x (eleventh), 0.94x (tenth), 0.93x-0.95x (ninth),
   0.94x-0.99x, 0.96x-1.01x and
   0.93x-0.97x as a user runs both; on the sixth round's machine, before that round's
   changes, 1.23x-1.27x. Optionally counted instead of
   timed (the same on every run): `--instructions` (valgrind's callgrind, both sides, one
   thread: snnc 401.0 M, onnxruntime 436.4 M, 0.92x) and `--bytecodes` (snnc's Python
   bytecodes per stage: 3.627 M per whole path on the TorchScript file, 3.407 M on the dynamo
   one; not a time).
3. `estimate` on synthetic SNN chains (encoder, then conv-lif layers, then a readout) of 100,
   1000 and 5000 layers, and the exponent of a power-law fit of time against layers (target:
   close to 1, i.e. linear).

    .venv/bin/python benchmarks/bench_cost.py [--size 224] [--repeat 5] [--breakdown]
                                              [--profile] [--whole-only] [--bytecodes]
                                              [--instructions [N]]

Interleaved runs in one process, wall and CPU time (this process's, all its threads; the
machine may be shared): medians, and for the whole path the median and range of the per-round
ratios. Sections 1 and 3 run snnc on one thread (torch.set_num_threads(1)) against
onnxruntime with 1 intra/inter-op thread.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import tempfile
from pathlib import Path

from _common import best_of, export_densenet, medians


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


def _stages() -> list:
    """(module, function name, label) of the whole path's stages, as timed by `breakdown`."""
    from snnc.compiler import api, costcmd
    from snnc.compiler.core import passmanager
    from snnc.compiler.frontends import onnx as fonnx

    return [(fonnx, "_load", "ONNX read + checks (file, external data, checker, "
                             "inference, arrays, shapes)"),
            (fonnx, "check_onnx", "  of which onnx checker + shape inference"),
            (fonnx, "_convert", "ONNX -> IR (converters; verified with the annotation)"),
            (api, "import_ann", "import total (+ node checks, annotate-skips)"),
            (passmanager, "run_pipeline", "conversion passes (incl. verify)"),
            (api, "cost_report", "cost report"),
            (costcmd, "_print", "JSON output")]


@contextlib.contextmanager
def _metered(clock):
    """Each of `_stages()` wrapped so that the dict it yields sums, per label, `clock()`'s
    advance over the stage's outermost calls (a stage called inside itself counts once);
    the functions are put back on the way out."""
    import functools

    spent: dict = {}
    depth: dict = {}
    saved = []
    for mod, name, label in _stages():
        fn = getattr(mod, name)
        saved.append((mod, name, fn))

        def metered(*a, _fn=fn, _label=label, **k):
            d = depth.get(_label, 0)
            depth[_label] = d + 1
            start = clock()
            try:
                return _fn(*a, **k)
            finally:
                depth[_label] = d
                if not d:
                    spent[_label] = spent.get(_label, 0) + clock() - start
        setattr(mod, name, functools.wraps(fn)(metered))
    try:
        yield spent
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)


def bytecodes(whole) -> None:
    """Python bytecode instructions executed by one call of `whole`, in all and per stage
    (inclusive): a count, the same on every run (sys.settrace with per-opcode events, so
    slow: ~30 s). Where the interpreted work is, which time on a shared machine blurs; C
    work (onnx's checks, numpy, protobuf) does not count, so fewer bytecodes is not less
    time: moving a loop into `map(operator.attrgetter(...))` cut them 17 % and made the
    whole path slower (docs/costmodel.md "Speed", sixth round)."""
    import sys

    count = [0]

    def tracer(frame, event, arg):
        frame.f_trace_opcodes = True
        if event == "opcode":
            count[0] += 1
        return tracer

    with _metered(lambda: count[0]) as spent:
        sys.settrace(tracer)
        try:
            whole()
        finally:
            sys.settrace(None)
    print(f"Python bytecodes per whole path (one call, sys.settrace): {count[0]:,}")
    for _, _, label in _stages():
        n = spent.get(label, 0)
        print(f"  {label:72s} {n:10,} ({100 * n / count[0]:4.1f} %)")


def breakdown(whole, repeat: int) -> None:
    """CPU-time medians of the stages of `whole` (each stage's function wrapped in a timer)."""
    import statistics
    import time

    runs = []
    with _metered(time.process_time) as spent:
        for _ in range(repeat):
            spent.clear()
            t = time.process_time()
            whole()
            runs.append({**spent, "whole path": time.process_time() - t})
    for label in runs[0]:
        print(f"  {label:72s} {statistics.median(r[label] for r in runs) * 1e3:6.1f} ms CPU")


def whole_vs(whole, session, repeat: int, label: str, exporter: str = "torchscript") -> None:
    """Interleaved rounds of `whole` and `session`: medians, and the median and range of the
    per-round ratios (wall and this process's CPU time)."""
    import statistics
    import time

    wall: dict = {"snnc": [], "ort": []}
    cpu: dict = {"snnc": [], "ort": []}
    for _ in range(repeat):
        for k, fn in (("snnc", whole), ("ort", session)):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    med = statistics.median

    def ratios(d):
        r = [a / b for a, b in zip(d["snnc"], d["ort"])]
        return f"{med(r):.2f}x ({min(r):.2f}-{max(r):.2f})"
    print(f"snnc cost densenet121.onnx --format json (whole path in process; {EXPORTERS[exporter]})"
          f" vs onnxruntime InferenceSession creation on the same file, {label}, {repeat} "
          f"interleaved rounds: "
          f"snnc {med(wall['snnc']) * 1e3:.0f} ms wall / {med(cpu['snnc']) * 1e3:.0f} ms CPU, "
          f"onnxruntime {med(wall['ort']) * 1e3:.0f} / {med(cpu['ort']) * 1e3:.0f} ms (medians);"
          f" per-round ratio median (range): wall {ratios(wall)}, CPU {ratios(cpu)} "
          f"(target <= 1x)")


EXPORTERS = {"torchscript": "TorchScript exporter, weights inline",
             "dynamo": "dynamo exporter, torch's default: weights in a .data file"}


def _whole_path(onnx_path: str):
    """The whole path a user runs, in process: `snnc cost ONNX --format json`, its report
    written to a buffer."""
    import io

    from snnc.compiler.cli import main as snnc_main

    def whole():
        with contextlib.redirect_stdout(io.StringIO()):
            assert snnc_main(["cost", onnx_path, "--format", "json"]) == 0
    return whole


def _ort_session(onnx_path: str, one_thread: bool):
    """A call creating onnxruntime's `InferenceSession` on `onnx_path`: with 1 intra/inter-op
    thread, or with the default SessionOptions (intra-op threads = the machine's cores)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if one_thread:
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1

    def session():
        ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    return session


def _count_child(kind: str, runs: int, onnx_path: str) -> None:
    """`--instructions`' child (run under valgrind): one warm call of `kind` ("snnc": the
    whole path, "ort": a one-thread session), then `runs` more. The parent subtracts a child
    with runs=0, which leaves the instructions of `runs` calls."""
    import torch

    torch.set_num_threads(1)
    call = _whole_path(onnx_path) if kind == "snnc" else _ort_session(onnx_path, True)
    for _ in range(runs + 1):
        call()


def instructions(onnx_path: Path, runs: int) -> None:
    """Instructions executed per call, counted by valgrind's callgrind: the whole path (one
    thread) and onnxruntime's one-thread session creation, and their ratio. Unlike time, the
    count is the same on every run whatever else the machine does (PYTHONHASHSEED=0 fixes
    the hashes, OPENBLAS_NUM_THREADS=1 the BLAS threads' spinning), so it shows a change that
    the timed ratios' spread on a shared machine hides.
    It is not a time: snnc's interpreted Python retires fewer instructions per cycle than
    onnxruntime's C++ (docs/costmodel.md "Speed"). Each count is (a child making 1 + `runs`
    calls) - (a child making 1), over `runs`: imports and the first call cancel out."""
    import os
    import re
    import shutil
    import subprocess
    import sys

    if shutil.which("valgrind") is None:
        sys.exit("--instructions needs valgrind on PATH (Debian/Ubuntu: apt install valgrind)")
    # fixed hashes; and no OpenBLAS worker threads, whose spinning after the weight thread's
    # dot product lasts a time, not a count (it made counts vary by a few per cent)
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"}

    def collected(kind: str, n: int) -> int:
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
               os.path.abspath(__file__), "--count-child", kind, str(n), str(onnx_path)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode or found is None:
            sys.exit(f"callgrind run failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
        return int(found.group(1))

    per = {}
    for kind, label in (("snnc", "snnc cost densenet121.onnx --format json, whole path"),
                        ("ort", "onnxruntime InferenceSession creation, one thread")):
        print(f"counting {label} under callgrind (about 2 minutes per child) ...", flush=True)
        per[kind] = (collected(kind, runs) - collected(kind, 0)) / runs
        print(f"  {per[kind] / 1e6:.1f} M instructions per call", flush=True)
    print(f"instructions per call, one thread each: snnc {per['snnc'] / 1e6:.1f} M, onnxruntime "
          f"{per['ort'] / 1e6:.1f} M, ratio {per['snnc'] / per['ort']:.2f}x (callgrind, "
          f"{runs} calls after a warm one; a count, not a time)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--breakdown", action="store_true",
                    help="CPU-time medians of the whole path's stages")
    ap.add_argument("--profile", action="store_true", help="cProfile one densenet estimate")
    ap.add_argument("--whole-only", action="store_true",
                    help="only the whole path (2.) and its breakdown")
    ap.add_argument("--instructions", type=int, nargs="?", const=2, default=None,
                    metavar="RUNS",
                    help="also count the instructions per call of the whole path and of a "
                         "one-thread onnxruntime session under valgrind's callgrind "
                         "(deterministic; RUNS calls after a warm one, default 2; minutes)")
    ap.add_argument("--bytecodes", action="store_true",
                    help="count the Python bytecodes one whole path executes, per stage "
                         "(deterministic; ~30 s)")
    ap.add_argument("--exporter", choices=("torchscript", "dynamo", "both"), default="both",
                    help="the whole path (2.) on densenet121 as exported by torch's TorchScript "
                         "exporter, by its dynamo exporter (the default; weights in a .data "
                         "file) or both (default); sections 1 and 3 and --instructions use the "
                         "TorchScript file")
    ap.add_argument("--count-child", nargs=3, metavar=("KIND", "RUNS", "ONNX"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.count_child:
        kind, runs, path = args.count_child
        _count_child(kind, int(runs), path)
        return

    import torch

    from snnc.compiler.api import compile as snnc_compile
    from snnc.costmodel import estimate

    default_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "densenet121.onnx"
        export_densenet(onnx_path, args.size)
        session = _ort_session(str(onnx_path), True)

        compiled = {}
        # compiled for the target, as `snnc compile` does
        for target in () if args.whole_only else ("generic", "loihi1"):
            c = compiled[target] = snnc_compile(onnx_path, residual="s2s", target=target,
                                                encoder="poisson")
            m = medians({"ort": session, "est": lambda: estimate(
                c.graph, target=target, rates=0.1, ann=c.ann)}, args.repeat)
            t_ort, t = m["ort"][0], m["est"][0]
            rep = estimate(c.graph, target=target, rates=0.1, ann=c.ann)
            print(f"densenet121 {args.size}x{args.size} (T={rep.timesteps}, poisson input), "
                  f"target {target}: estimate {t * 1e3:.1f} ms, onnxruntime InferenceSession "
                  f"{t_ort * 1e3:.1f} ms (wall medians), ratio {t / t_ort:.2f}x (target <= 1x); "
                  f"{len(rep.rows)} layer rows, MACs {rep.totals['macs']:,}, "
                  f"cores {rep.totals['cores']}")
        if not args.whole_only:
            c = compiled["generic"]
            m = medians({"ort": session, "est": lambda: estimate(
                c.graph, target="loihi1", rates=0.1, ann=c.ann)}, args.repeat)
            t, t_ort = m["est"][0], m["ort"][0]
            print(f"  the generic-compiled graph costed on loihi1 (legalize-graded re-run on a "
                  f"copy): {t * 1e3:.1f} ms, ratio {t / t_ort:.2f}x")
        for exporter in ("torchscript", "dynamo") if args.exporter == "both" else \
                (args.exporter,):
            path = onnx_path
            if exporter == "dynamo":
                path = Path(tmp) / "dynamo" / "densenet121.onnx"
                path.parent.mkdir()
                export_densenet(path, args.size, "dynamo")
            whole = _whole_path(str(path))
            whole()  # imports warm, as in a long-lived process
            for label, threads, base in (
                    ("as a user runs both (torch's and onnxruntime's default threads)",
                     default_threads, _ort_session(str(path), False)),
                    ("one thread each (torch.set_num_threads(1); onnxruntime 1 intra/inter-op)",
                     1, _ort_session(str(path), True))):
                torch.set_num_threads(threads)
                whole_vs(whole, base, args.repeat, label, exporter)
            torch.set_num_threads(1)
            if args.breakdown:
                breakdown(whole, args.repeat)
            if args.bytecodes:
                bytecodes(whole)
        if args.instructions is not None:
            instructions(onnx_path, max(1, args.instructions))
        if args.profile and not args.whole_only:
            import cProfile
            import pstats

            pr = cProfile.Profile()
            pr.enable()
            estimate(c.graph, target="loihi1", rates=0.1, ann=c.ann)
            pr.disable()
            pstats.Stats(pr).sort_stats("cumulative").print_stats(25)

    if args.whole_only:
        return
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
