"""Small nets shared by the conversion tests (threshold and bias calibration)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Chain(nn.Module):
    """Three convs with average pools and a linear classifier: three lifs after conversion."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 8, 3, padding=1)
        self.c3 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        x = F.relu(self.c1(x))
        x = F.relu(self.c2(F.avg_pool2d(x, 2)))
        x = F.relu(self.c3(x))
        return self.fc(torch.flatten(F.avg_pool2d(x, 2), 1))
