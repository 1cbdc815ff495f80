"""Accuracy of a compiled network, ANN and SNN, without changing anything (`snnc eval`).

    res = compiled.evaluate("fashion-mnist", timesteps=[1, 2, 4, 8, 16, 32, 64])
    res["ann_accuracy"], res["snn_accuracy"], res["by_timesteps"]

The SNN runs once, at the largest T asked for, with a per-step readout: the readout of a run of
length t is u_t / t (paper 2 eq. 19) and the network is causal, so one run gives the accuracy at
every shorter T. A BNTT layer compiled for fewer steps reuses its last step's statistics beyond
them (exact for the identity BNTT of an eval-mode export). docs/pytorch-backend.md "Evaluation".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import torch

from snnc.compiler.core.errors import SnncError
from snnc.compiler.core.ir import Graph


def batches(graph: Graph, data: Any, *, limit: int | None, batch_size: int,
            timesteps: int = 8) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) batches of `data`: a dataset name or path or a snnc.data DataSpec (its test split,
    shaped like the graph's input as `snnc train` does), a torch Dataset or DataLoader (read
    by snnc.data's rules: uint8 / 255, layout detected, shaped the same way), an (x, y) pair
    of tensors, or another iterable of (x, y) batches."""
    from snnc.data.files import DataSpec
    from snnc.data.torchdata import is_torch_data

    if is_torch_data(data):
        x, y = _test_split(graph, data, limit, timesteps)
    elif isinstance(data, (str, DataSpec)) or hasattr(data, "__fspath__"):
        x, y = _test_split(graph, DataSpec.of(data), limit, timesteps)
    elif isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        x, y = data[0][:limit], data[1][:limit]
    else:
        seen = 0
        for xb, yb in data:
            if limit is not None and seen >= limit:
                return
            if limit is not None:
                xb, yb = xb[:limit - seen], yb[:limit - seen]
            seen += len(yb)
            yield xb, yb
        return
    for i in range(0, len(y), batch_size):
        yield x[i:i + batch_size], y[i:i + batch_size]


def _test_split(graph: Graph, spec, limit: int | None, timesteps: int):
    from dataclasses import replace as _replace

    from snnc.data import load_dataset

    shape = graph.input_nodes()[0].shape
    from snnc.data.torchdata import describe, is_torch_data

    events = any(n.op == "encoder" and n.attrs.get("kind") == "events" for n in graph.nodes)
    source = describe(spec) if is_torch_data(spec) else spec.source
    if events and source in ("digits", "mnist", "fashion-mnist"):
        spec = _replace(spec, source=spec.source + "-events")
    ds = load_dataset(spec, "test", limit=limit, size=shape[-1] if len(shape) == 4 else None,
                      channels=shape[1] if len(shape) == 4 else 1, timesteps=timesteps)
    x = ds.x.flatten(1) if len(shape) == 2 else ds.x
    got = tuple(x.shape[2:] if x.dim() == len(shape) + 1 else x.shape[1:])
    if got != tuple(shape[1:]):
        raise SnncError(f"dataset '{source}' gives samples of shape {list(got)} but graph "
                        f"'{graph.name}' takes {list(shape[1:])} (its input node); pick a "
                        f"matching dataset.")
    return x, ds.y


def extend_bntt(g: Graph, steps: int) -> Graph:
    """`g` with every bntt's per-step rows extended to `steps` by repeating its last row (a
    copy: the graph given is not changed)."""
    if g.params is None or not g.by_op("bntt"):
        return g
    b = g.edit()
    for n in g.by_op("bntt"):
        t = int(n.attrs.get("timesteps", g.attrs.get("timesteps", 1)))
        if t >= steps:
            continue
        for key in n.params:
            p = g.params[key]
            b.set_param(key, torch.cat([p, p[-1:].expand(steps - t, *p.shape[1:])]))
        b.replace_node(replace(n, attrs=n.attrs.set(timesteps=steps)))
    return b.build()


def _fitting_batch(module, batch_size: int) -> int:
    """`batch_size`, lowered so that one forward stays under the memory limit
    (snnc.compiler.core.limits; at least 1)."""
    from snnc.compiler.core.limits import memory_limit

    per = max(1, module._per_sample[0] - module._fixed)
    return max(1, min(int(batch_size), (memory_limit() - module._fixed) // per))


def evaluate(compiled, data: Any, *, timesteps: int | Sequence[int] | None = None,
             limit: int | None = None, batch_size: int = 200, ann: bool = True,
             rates: bool = True, device="auto") -> dict:
    """ANN and SNN top-1 accuracy of `compiled` on `data` (see `batches`); with several
    `timesteps`, the SNN's accuracy at each; the SNN runs on `device` (docs/pytorch-backend.md
    "Devices"; the ANN interpreter on the CPU). Returns {"ann_accuracy", "snn_accuracy" (at the
    compiled T, or the largest asked), "timesteps", "by_timesteps" {T: acc}, "rates" {lif: mean
    rate}, "samples"}. Nothing in `compiled` changes."""
    from snnc.backends.pytorch.module import build_module
    from snnc.compiler.core.interpret import interpret
    from snnc.data.device import resolve_device

    dev = resolve_device(device)
    # the weights the directory holds now (trained ones when `snnc train` wrote them)
    g = compiled._module.to_graph() if compiled._module is not None else compiled.graph
    compiled_t = int(g.attrs.get("timesteps", compiled.options.timesteps))
    ts = sorted({int(t) for t in ([compiled_t] if timesteps is None else
                                  [timesteps] if isinstance(timesteps, int) else timesteps)})
    if not ts or ts[0] < 1:
        raise SnncError(f"--timesteps needs positive integers (got {timesteps}).")
    steps = max(ts)
    module = build_module(extend_bntt(g, steps), compact=True, timesteps=steps).to(dev).eval()
    module.per_step_readout = True
    module.record_rates = rates
    batch_size = _fitting_batch(module, batch_size)
    hits = torch.zeros(steps, dtype=torch.long)
    ann_hits, n = 0, 0
    with torch.no_grad():
        for x, y in batches(g, data, limit=limit, batch_size=batch_size, timesteps=steps):
            xs = x.transpose(0, 1).contiguous() if x.dim() == len(g.input_nodes()[0].shape) + 1 \
                else x
            out = module(xs.to(dev))
            out = out[0] if isinstance(out, tuple) else out
            hits += (out.argmax(-1).cpu() == y.cpu().view(1, -1)).sum(1)
            if ann and compiled.ann is not None and x.dim() == len(g.input_nodes()[0].shape):
                a = interpret(compiled.ann, x.cpu())
                a = a[0] if isinstance(a, tuple) else a
                ann_hits += int((a.argmax(-1) == y.cpu()).sum())
            n += len(y)
    if n == 0:
        raise SnncError("evaluation got no samples.")
    by_t = {t: hits[t - 1].item() / n for t in ts}
    main_t = compiled_t if compiled_t in by_t else steps
    rate = {k: float(v.mean()) for k, v in module.rates().items()} if rates else {}
    return {"ann_accuracy": ann_hits / n if ann and ann_hits is not None and
            x.dim() == len(g.input_nodes()[0].shape) else None,
            "snn_accuracy": by_t[main_t], "timesteps": main_t, "by_timesteps": by_t,
            "rates": rate, "samples": n}
