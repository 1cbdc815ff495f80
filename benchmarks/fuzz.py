"""The big fuzzing run (docs/frontends.md, "Validation and limits"; the CI part is
tests/fuzz/test_fuzz.py): thousands of seeded mutations of ONNX files exported by both torch
exporters from small nets, pytorchcv-style miniatures and zoo models, each compiled (T=2),
priced and run forward in worker processes capped at --cap of address space
(resource.setrlimit). Prints the counts per outcome (clean refusals, accepted, crashes, hangs,
memory blow-ups), the crash signatures, and the accepted files onnxruntime rejects; writes every
outcome to --out as JSON lines. Target: 0 crashes, 0 hangs, 0 blow-ups.

    .venv/bin/python benchmarks/fuzz.py [--n 2000] [--seed 0] [--workers 2] [--cap 6G]
        [--timeout 120] [--keep DIR] [--out fuzz.jsonl] [--baseline-path DIR]

--baseline-path runs the same files against another checkout's snnc (a folder holding an
`snnc` package, e.g. one made like scripts' .snncpath) to compare before/after.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASES = [(n, e) for n in ("tiny_cnn", "mlp", "mini_mobilenet", "mini_densenet",
                          "zoo:resnet20", "zoo:mobilenetv2@32")
         for e in ("torchscript", "dynamo")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="mutated files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cap", default="6G", help="address-space cap per worker")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per file")
    ap.add_argument("--keep", type=Path, default=None, help="keep the files in DIR")
    ap.add_argument("--out", type=Path, default=None, help="JSON lines, one per file")
    ap.add_argument("--baseline-path", default=None)
    args = ap.parse_args()

    from snnc.compiler.core.limits import fmt, parse_size
    from tests.fuzz import corpus, runner

    cap = parse_size(args.cap)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        t0 = time.perf_counter()
        bases = corpus.export_bases(root / "bases", BASES)
        t1 = time.perf_counter()
        files = corpus.generate(bases, args.n, args.seed, root / "mutants")
        t2 = time.perf_counter()
        done = [0]

        def progress(r):
            done[0] += 1
            if done[0] % 250 == 0:
                print(f"  {done[0]}/{len(files)} files", flush=True)

        results = runner.run_many([p for _, _, p in files], workers=args.workers,
                                  cap_bytes=cap, timeout=args.timeout, progress=progress,
                                  pythonpath=args.baseline_path)
        t3 = time.perf_counter()
    s = runner.summary(results)
    c = Counter({"refused": 0, "accepted": 0, "forward_refused": 0, "crash": 0, "hang": 0,
                 "blowup": 0, "bad_message": 0, **s["counts"]})
    print(f"fuzz: {s['files']} mutated files from {len(bases)} exports, seed {args.seed}, "
          f"{args.workers} workers capped at {fmt(cap)}, timeout {args.timeout:g} s")
    print(f"  exports {t1 - t0:.1f} s, generation {t2 - t1:.1f} s, run {t3 - t2:.1f} s "
          f"({(t3 - t2) / max(1, len(files)) * args.workers:.2f} s per file per worker)")
    for k in ("refused", "accepted", "forward_refused", "crash", "hang", "blowup",
              "bad_message"):
        print(f"  {k:16s} {c[k]}")
    print(f"  accepted but onnxruntime rejects: {s['ort_rejects_accepted']}; accepted but the "
          f"imported graph differs from onnxruntime: {s['ort_differs']} (not compared, input "
          f"too large: {s['ort_skipped']})")
    kinds = Counter(k.split("+")[0] for _, k, _ in files)
    print("  mutation classes (first of each chain): "
          + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
    acc = Counter(k.split("+")[0] for (_, k, _), r in zip(files, results)
                  if r["outcome"] == "accepted")
    print("  accepted by class: " + ", ".join(f"{k} {v}" for k, v in acc.most_common()))
    for sig, n in sorted(s["signatures"].items(), key=lambda kv: -kv[1]):
        print(f"  {n:5d} x {sig}")
    if args.out:
        with open(args.out, "w") as f:
            for (label, kind, _), r in zip(files, results):
                f.write(json.dumps({"base": label, "mutation": kind, **r}) + "\n")
    bad = c["crash"] + c["hang"] + c["blowup"] + c["bad_message"] + c["forward_refused"]
    print("fuzz: OK" if not bad else f"fuzz: {bad} problem file(s)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
