"""Paper 1's single-block network (sec. III-A): a stem, one block of 4 conv layers, a head.

Used by the tests and benchmarks/bench_search.py. The max-pool after the stem ends the stem's
run of layers, so :func:`snnc.compiler.core.blocks.find_blocks` sees exactly one 4-layer block.
"""

from __future__ import annotations

from torch import nn


class SingleBlockNet(nn.Module):
    """stem conv-BN-ReLU-maxpool, `depth` x (conv3x3-BN-ReLU), global pool, linear.

    `stem_stride` 2 shrinks the block's maps 4x (7x7 on 28x28 inputs) for fast searches."""

    def __init__(self, channels: int = 8, depth: int = 4, in_channels: int = 1,
                 num_classes: int = 10, input_size: int = 28, stem_stride: int = 1):
        super().__init__()
        c = channels
        self.input_shape = (in_channels, input_size, input_size)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, stem_stride, 1), nn.BatchNorm2d(c),
                                  nn.ReLU(), nn.MaxPool2d(2))
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Conv2d(c, c, 3, 1, 1), nn.BatchNorm2d(c), nn.ReLU()]
        self.block = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    def forward(self, x):
        """Logits [N, num_classes]."""
        return self.head(self.block(self.stem(x)))
