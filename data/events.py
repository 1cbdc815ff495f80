"""Simulated event frames from static images (an offline stand-in for N-MNIST-like data).

The image moves along three saccades forming a triangle (as N-MNIST was recorded, Orchard et
al. 2015), sampled at `steps_per_frame` sub-steps per frame; a pixel emits an ON (OFF) event
when its log intensity rose (fell) by at least `threshold` since its last event, and its
reference moves by whole thresholds. Frame t counts the events of its window per polarity,
giving [N, T, 2, H, W]. Deterministic (no noise): results on it are labelled "simulated".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

def _shifted(x: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """Bilinear sub-pixel translation of [N, 1, H, W] images (zeros outside)."""
    n, _, h, w = x.shape
    theta = torch.tensor([[1.0, 0.0, -2 * dx / w], [0.0, 1.0, -2 * dy / h]]).expand(n, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")

def frames_from_images(x: torch.Tensor, timesteps: int, *, amplitude: float = 2.0,
                       threshold: float = 0.15, steps_per_frame: int = 4) -> torch.Tensor:
    """Event frames [N, T, 2, H, W] (ON, OFF counts) from grey images [N, 1, H, W] in [0, 1]."""
    if x.shape[1] != 1:
        x = x.mean(1, keepdim=True)
    total = timesteps * steps_per_frame
    corners = [(0.0, 0.0), (amplitude, amplitude), (-amplitude, amplitude), (0.0, 0.0)]
    eps = 0.05
    ref = torch.log(x + eps)
    frames = torch.zeros(x.shape[0], timesteps, 2, *x.shape[2:])
    for k in range(1, total + 1):
        s = 3 * k / total  # position along the three saccades
        i = min(int(s), 2)
        f = s - i
        (ax, ay), (bx, by) = corners[i], corners[i + 1]
        cur = torch.log(_shifted(x, ax + f * (bx - ax), ay + f * (by - ay)) + eps)
        diff = cur - ref
        n_on = torch.floor(diff.clamp(min=0) / threshold)
        n_off = torch.floor((-diff).clamp(min=0) / threshold)
        ref = ref + (n_on - n_off) * threshold
        t = (k - 1) // steps_per_frame
        frames[:, t, 0] += n_on[:, 0]
        frames[:, t, 1] += n_off[:, 0]
    return frames
