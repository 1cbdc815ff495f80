"""Small networks for the Lava tests, compiled by snnc's real front end and pipeline, and the
PyTorch backend's reference outputs (every lif's spikes, the readout)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from snnc.backends.pytorch import build_module
from snnc.compiler.frontends.fx import from_torch
from snnc.compiler.passmanager import run_pipeline
from snnc.passes.pipeline import conversion_pipeline

T = 16
SHAPE = (1, 8, 8)


class SeqConv(nn.Module):
    """conv - conv - 2x2 average pool (a pooling neuron layer) - linear."""

    def __init__(self, bias: bool = True):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 3, padding=1, bias=bias)
        self.c2 = nn.Conv2d(6, 6, 3, padding=1, bias=bias)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(6 * 4 * 4, 10, bias=bias)

    def forward(self, x):
        x = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(torch.relu(self.pool(x)).flatten(1))


class Residual(nn.Module):
    """A basic block (two 3x3 convs) with an identity skip, then a readout layer."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.c3 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        a = torch.relu(self.c1(x))
        b = torch.relu(self.c2(a))
        c = torch.relu(self.c3(b) + a)
        return self.fc(c.flatten(1))


class Dense(nn.Module):
    """A DSC block: layer 3 reads the concatenation of layer 2 and layer 1 (paper 1)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.c3 = nn.Conv2d(8, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 8 * 8, 10)

    def forward(self, x):
        a = torch.relu(self.c1(x))
        b = torch.relu(self.c2(a))
        c = torch.relu(self.c3(torch.cat([b, a], 1)))
        return self.fc(c.flatten(1))


def compile_net(model: nn.Module, residual: str = "s2s", semantics: str = "target",
                gain: float = 2.0, seed: int = 0, leak: float = 0.874):
    """ANN -> SNN IR for loihi2 (event input, no BNTT), weights scaled by `gain` for activity."""
    torch.manual_seed(seed)
    m = model.eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(gain)
    g = from_torch(m, torch.zeros(1, *SHAPE))
    return run_pipeline(g, conversion_pipeline(residual=residual, target="loihi2", timesteps=T,
                                               encoder="events", bntt=False,
                                               semantics=semantics, leak=leak))


def events(n: int, seed: int = 0, density: float = 0.3) -> np.ndarray:
    """`n` binary event samples (n, T, C, H, W)."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, T, *SHAPE)) < density).astype(np.float32)


def torch_reference(g, x: np.ndarray) -> tuple[dict, np.ndarray]:
    """The PyTorch backend on one sample (T, C, H, W): {lif name: (T, ...) spikes} and the
    readout output u_T / T."""
    mod = build_module(g).eval()
    spikes: dict = {}
    hooks = [layer.register_forward_hook(
        lambda m, i, o, name=name: spikes.__setitem__(name, o[:, 0].detach().numpy()))
        for name, layer in mod.layers.items() if type(layer).__name__ == "LIF"]
    with torch.no_grad():
        y = mod(torch.from_numpy(x[:, None]))
    for h in hooks:
        h.remove()
    return spikes, y[0].numpy()


class DigitsNet(nn.Module):
    """A small conv net for 8x8 digits as event frames (2 polarities): conv - conv - 2x2
    average pool (a pooling neuron layer) - linear, every layer with a bias."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.c1 = nn.Conv2d(2, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, width, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(width * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(torch.relu(self.pool(x)).flatten(1))


def digits_onnx(path, seed: int = 0, width: int = 8, gain: float = 3.0):
    """Write DigitsNet (weights from `seed`, times `gain` so that the untrained SNN fires and
    gets gradients) as an ONNX file with torch's exporter."""
    torch.manual_seed(seed)
    m = DigitsNet(width).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(gain)
    torch.onnx.export(m, torch.zeros(1, 2, 8, 8), str(path), input_names=["x"],
                      output_names=["logits"])
    return path


def compile_and_train(out, timesteps: int, epochs: int, limit: int | None = None,
                      seed: int = 0, lr: float = 1e-2, gain: float = 3.0):
    """`snnc compile <DigitsNet ONNX> --target loihi2 --encoder events` then `snnc train
    --data digits` (event frames of the 8x8 digits), both through snnc's CLI. Returns the
    trained directory."""
    from pathlib import Path

    from snnc.compiler.cli import main

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = digits_onnx(out / "digits_net.onnx", seed, gain=gain)
    d = out / "digits.snnc"
    argv = ["compile", str(onnx_path), "-o", str(d), "--target", "loihi2", "--encoder",
            "events", "-T", str(timesteps), "--no-bntt", "--no-cost"]
    if main(argv) != 0:
        raise RuntimeError(f"snnc {' '.join(argv)} failed")
    argv = ["train", str(d), "--data", "digits", "--epochs", str(epochs), "--threads", "1",
            "--seed", str(seed), "--lr", str(lr)] + (["--limit", str(limit)] if limit else [])
    if main(argv) != 0:
        raise RuntimeError(f"snnc {' '.join(argv)} failed")
    return d
