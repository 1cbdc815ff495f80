"""Activity measured on real data: `calibrate` runs the PyTorch backend on a few samples.

The cost model itself imports no backend; this module imports ``snnc.backends.pytorch`` only
when called. Rates of lif nodes come from the module's `record_rates`; rates of spiking
encoders are measured on the same samples (Poisson: the mean of clip(x, 0, 1), the expected
spike probability per step; events: the fraction of non-zero frame elements).
"""

from __future__ import annotations

import math
from pathlib import Path

from snnc.compiler.core.errors import SnncError
from snnc.compiler.core.ir import Graph
from snnc.costmodel.activity import Activity


def calibrate(g: Graph, samples, *, module=None, source: str = "calibration",
              note: str | None = None) -> Activity:
    """Rates measured by the PyTorch backend on `samples` (a tensor [N, ...] of real data).

    Uses ``snnc.backends.pytorch.build_module(g)`` with ``record_rates = True``; ``.rates()``
    gives per-layer per-step rates keyed by lif name, averaged here over steps. Pass a trained
    `module` and ``source="measured"`` for rates after training. Every lif gets a rate (no
    default): a layer the backend did not record is an error, not a silent prior.
    """
    import torch

    if module is None:
        from snnc.backends.pytorch import build_module

        module = build_module(g)
    module.record_rates = True
    module.eval()
    if hasattr(module, "reset_rates"):
        module.reset_rates()
    with torch.no_grad():
        module(samples)
    raw = module.rates()
    rates = {k: float(v.float().mean()) if hasattr(v, "float") else float(sum(v) / len(v))
             for k, v in raw.items()}
    rates = {k: (0.0 if math.isnan(v) else v) for k, v in rates.items()}
    for n in g.by_op("encoder"):
        kind = n.attrs.get("kind", "direct")
        if kind == "poisson":
            rates[n.name] = float(samples.clamp(0, 1).mean())
        elif kind == "events":
            rates[n.name] = float((samples != 0).float().mean())
    missing = [n.name for n in g.by_op("lif") if n.name not in rates]
    if missing:
        raise SnncError(f"graph '{g.name}': the PyTorch backend recorded no rate for lif "
                        f"node(s) {', '.join(missing[:5])}; calibration needs every layer")
    return Activity(source, rates, None, note or f"{len(samples)} samples")


def calibration_samples(data: str, g: Graph, n: int):
    """(tensor, description) of `n` samples of `data` shaped like `g`'s input.

    `data`: a snnc.data dataset name (test split; images are zero-padded or resized to the
    model's side and their channel repeated, as `snnc train` feeds them) or a .pt/.npy file.
    """
    import torch

    inp = g.input_nodes()[0].shape  # [1, C, H, W] or [1, F]
    p = Path(data)
    if p.suffix in (".pt", ".npy"):
        if not p.is_file():
            raise SnncError(f"--calibrate {data}: no such file; give a .pt or .npy tensor of "
                            f"input samples shaped [N, {', '.join(map(str, inp[1:]))}]")
        if p.suffix == ".npy":
            import numpy as np

            x = torch.from_numpy(np.load(p)).float()
        else:
            x = torch.load(p, weights_only=True).float()
        what = f"{p.name}"
    else:
        from snnc.data import load_dataset

        ds = load_dataset(data, "test", limit=n, timesteps=int(g.attrs.get("timesteps", 8)))
        x, what = ds.x, f"{data} test split"
    x = x[:n]
    events = x.dim() == len(inp) + 1 and g.by_op("encoder") and \
        g.by_op("encoder")[0].attrs.get("kind") == "events"
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
    if not events and tuple(x.shape[1:]) != tuple(inp[1:]):
        raise SnncError(f"--calibrate {data}: samples are {list(x.shape[1:])} per item but "
                        f"graph '{g.name}' takes {list(inp[1:])}; give data of that shape")
    return x, f"{len(x)} samples of {what}"
