"""Where work runs: ``--device cpu|cuda|auto`` (docs/pytorch-backend.md "Devices").

``auto`` is the first CUDA GPU torch can see, else the CPU; ``cuda`` (or ``cuda:N``) without
such a GPU is a user error (SnncError, exit 2), never a silent fall-back to the CPU. Inside a
search worker the device is resolved there, so a Ray task that reserved a GPU
(``--gpus-per-task``) sees it through ``auto``.
"""

from __future__ import annotations

import torch

from snnc.compiler.core.errors import SnncError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device for `device` ("auto" | "cpu" | "cuda" | "cuda:N", or a torch.device)."""
    if isinstance(device, torch.device):
        device = str(device)
    name = (device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        index = name.partition(":")[2]
        if index and not index.isdigit():
            raise SnncError(f"--device {device}: write cuda or cuda:N (N a GPU index).")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            built = torch.version.cuda or "no CUDA (a CPU-only build)"
            raise SnncError(f"--device {device}: torch sees no CUDA GPU (torch "
                            f"{torch.__version__}, built with {built}). Use --device cpu, or "
                            f"--device auto to take a GPU only when there is one.")
        if index and int(index) >= count:
            raise SnncError(f"--device {device}: torch sees {count} GPU(s) (cuda:0.."
                            f"cuda:{count - 1}).")
        return torch.device(name)
    raise SnncError(f"--device {device}: use cpu, cuda (or cuda:N) or auto.")
