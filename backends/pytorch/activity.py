"""Activity recorded by the PyTorch backend: what every synapse of the SNN receives.

`record_activity(g, samples)` runs the SNN module on real samples, batch by batch, and keeps,
for every *synaptic input* (docs/costmodel.md "Measured mode"), three maps shaped like one
sample of that input:

* ``events``: how many times each element was non-zero, summed over samples and time steps;
* ``graded_events``: the same, counted only in the (batch, step) calls whose input held a value
  outside {-1, 0, 1} (NeuroBench then counts that call as MACs, not ACs);
* ``values``: the sum of the element's values (sinabs counts value x fan-out).

Synaptic inputs are the first input of every conv2d / linear node (spikes, counts of an S2S
sum, pooled or concatenated values, a direct frame, a current read by a V2V projection), keyed
by the node's name, and every one-to-one membrane input (an S2M or V2V edge without
projection), keyed ``"<lif>/<source>"``. Firing rates of lif nodes and of spiking encoders come
along. Memory stays one sample-sized map per input whatever the number of samples; all counting
is tensor reductions (no per-event Python loop). The result is plain data: the cost model turns
it into SOPs with its connection maps (it imports no backend).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from snnc.compiler.core.errors import SnncError
from snnc.compiler.core.ir import EdgeKind, Graph


@dataclass
class InputRecord:
    """The recorded maps of one synaptic input (see the module doc)."""

    events: np.ndarray
    graded_events: np.ndarray
    values: np.ndarray


@dataclass
class Recording:
    """What :func:`record_activity` measured: per-layer rates and synaptic input maps."""

    samples: int
    timesteps: int
    rates: dict[str, float] = field(default_factory=dict)
    inputs: dict[str, InputRecord] = field(default_factory=dict)
    note: str = ""


class _Recorder:
    """The module observer: accumulates the maps of every synaptic input (torch, on CPU)."""

    def __init__(self, g: Graph, steps: int):
        self.g, self.steps = g, steps
        self.acc: dict[str, list[torch.Tensor]] = {}
        self.spikes: dict[str, torch.Tensor] = {}
        self.size: dict[str, int] = {}

    def __call__(self, node, ins, out) -> None:
        if node.op in ("conv2d", "linear"):
            self._add(node.name, ins[0])
        elif node.op == "lif":
            edges = self.g.inputs_of(node.name)
            for e, x in zip(edges[1:], ins[1:]):
                if e.kind in (EdgeKind.S2M, EdgeKind.V2V) and e.projection is None:
                    self._add(f"{node.name}/{e.src}", x)
        if node.op == "lif" or (node.op == "encoder" and
                                node.attrs.get("kind", "direct") != "direct"):
            self._rate(node.name, out)

    def _add(self, key: str, x: torch.Tensor) -> None:
        """x: [T', B, ...] with T' = T, or 1 when the value is the same at every step."""
        x = x.detach()
        rep = self.steps if x.shape[0] == 1 else 1
        nz = x != 0
        graded = (nz & (x.abs() != 1)).flatten(1).any(1)  # [T']: a call NeuroBench calls MAC
        ev = nz.sum((0, 1), dtype=torch.int64) * rep
        gev = nz[graded].sum((0, 1), dtype=torch.int64) * rep
        val = x.double().sum((0, 1)) * rep
        if key in self.acc:
            a = self.acc[key]
            a[0] += ev
            a[1] += gev
            a[2] += val
        else:
            self.acc[key] = [ev, gev, val]

    def _rate(self, name: str, out: torch.Tensor) -> None:
        rep = self.steps if out.shape[0] == 1 else 1
        s = out.detach().double().sum() * rep
        self.spikes[name] = self.spikes.get(name, 0) + s
        self.size[name] = self.size.get(name, 0) + math.prod(out.shape[1:]) * self.steps


def record_activity(g: Graph, samples: torch.Tensor, *, module=None, batch_size: int = 16,
                    note: str = "") -> Recording:
    """Run the SNN of `g` (or the trained `module`) on `samples` and record its activity.

    `samples`: [N, ...] (direct / Poisson encoders) or [T, N, ...] (event frames). Runs in
    batches of `batch_size` under no_grad; returns a :class:`Recording` (module doc). Every lif
    gets a rate: a layer the module did not run is an error, not a silent prior.
    """
    if module is None:
        from snnc.backends.pytorch import build_module

        module = build_module(g)
    module.eval()
    events = samples.dim() == len(g.input_nodes()[0].shape) + 1
    n = samples.shape[1] if events else samples.shape[0]
    rec = _Recorder(module.graph, module.timesteps)
    module.observer = rec
    try:
        with torch.no_grad():
            for i in range(0, n, max(1, batch_size)):
                module(samples[:, i:i + batch_size] if events else samples[i:i + batch_size])
    finally:
        module.observer = None
    rates = {k: float(v / rec.size[k]) for k, v in rec.spikes.items()}
    missing = [x.name for x in g.by_op("lif") if x.name not in rates]
    if missing:
        raise SnncError(f"graph '{g.name}': the PyTorch backend recorded no activity for lif "
                        f"node(s) {', '.join(missing[:5])}; the measured mode needs every layer")
    inputs = {k: InputRecord(*(t.cpu().numpy() for t in v)) for k, v in rec.acc.items()}
    return Recording(n, module.timesteps, rates, inputs, note or f"{n} samples")


def calibration_samples(data, g: Graph, n: int):
    """(tensor, description) of `n` samples of `data` shaped like `g`'s input.

    `data`: what snnc.data.load_dataset reads (a name, a DataSpec with --keys/--layout/--mean/
    --std, a torch Dataset/DataLoader; test split; images are zero-padded or resized to the
    model's side and their channel repeated, as `snnc train` feeds them) or a .pt/.npy file.
    Event data come back time-major [T, N, ...].
    """
    from snnc.data.files import DataSpec
    from snnc.data.torchdata import describe, is_torch_data

    inp = g.input_nodes()[0].shape  # [1, C, H, W] or [1, F]
    source = describe(data) if is_torch_data(data) else DataSpec.of(data).source
    p = Path(source)
    if p.suffix in (".pt", ".npy"):
        if not p.is_file():
            raise SnncError(f"--calibrate {source}: no such file; give a .pt or .npy tensor of "
                            f"input samples shaped [N, {', '.join(map(str, inp[1:]))}]")
        if p.suffix == ".npy":
            x = torch.from_numpy(np.load(p, allow_pickle=False)).float()
        else:
            x = torch.load(p, weights_only=True).float()
        what = f"{p.name}"
    else:
        from snnc.data import load_dataset

        enc = g.by_op("encoder")
        if enc and enc[0].attrs.get("kind") == "events" and source in ("digits", "mnist",
                                                                        "fashion-mnist"):
            from dataclasses import replace

            source += "-events"  # as `snnc train` feeds an events-encoded graph
            data = replace(DataSpec.of(data), source=source)
        ds = load_dataset(data, "test", limit=n, timesteps=int(g.attrs.get("timesteps", 8)))
        x, what = ds.x, f"{source} test split"
    x = x[:n]
    enc = g.by_op("encoder")
    events = x.dim() == len(inp) + 1 and enc and enc[0].attrs.get("kind") == "events"
    if events:
        x = x.transpose(0, 1)  # [N, T, ...] -> [T, N, ...]
    elif len(inp) == 4 and x.dim() == 4 and tuple(x.shape[1:]) != tuple(inp[1:]):
        src = tuple(x.shape[1:])
        if x.shape[1] != inp[1]:
            x = x[:, :1].repeat(1, inp[1], 1, 1)
        if x.shape[-1] < inp[-1] and x.shape[-2] < inp[-2]:
            ph, pw = inp[-2] - x.shape[-2], inp[-1] - x.shape[-1]
            x = torch.nn.functional.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        elif tuple(x.shape[-2:]) != tuple(inp[-2:]):
            x = torch.nn.functional.interpolate(x, size=tuple(inp[-2:]), mode="bilinear",
                                                align_corners=False)
        what += f", {src} adapted to {tuple(inp[1:])}"
    per = x.shape[2:] if events else x.shape[1:]
    if tuple(per) != tuple(inp[1:]):
        raise SnncError(f"--calibrate {source}: samples are {list(per)} per item but "
                        f"graph '{g.name}' takes {list(inp[1:])}; give data of that shape")
    return x, f"{x.shape[1] if events else len(x)} samples of {what}"
