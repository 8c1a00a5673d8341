"""Small models obeying the model contract (``model(x, present, cond) -> logits``), for tests
that must not depend on the real architectures."""

from __future__ import annotations

import torch
from torch import nn


class StandIn(nn.Module):
    """A few convolutions obeying the model contract: model(x, present, cond) -> logits."""

    arch = "standin"

    def __init__(self, group_channels=(4, 2), n_classes=2, cond_dim=0, width=8, dropout=0.2):
        super().__init__()
        self.group_channels = tuple(group_channels)
        self.n_classes, self.cond_dim = n_classes, cond_dim
        self.multiple, self.size = 4, "tiny"
        self.inp = nn.Conv2d(sum(self.group_channels), width, 3, padding=1)
        self.gate = nn.Linear(len(self.group_channels) + cond_dim, width)
        self.down = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(width, width, 2, stride=2)
        self.drop = nn.Dropout2d(dropout)
        self.head = nn.Conv2d(2 * width, n_classes, 1)

    def forward(self, x, present, cond=None):
        h = torch.relu(self.inp(x))
        v = present if cond is None else torch.cat([present, cond], 1)
        h = h + self.gate(v)[:, :, None, None]
        d = self.up(torch.relu(self.down(h)))
        return self.head(self.drop(torch.cat([h, d], 1)))


class BrightStandIn(StandIn):
    """Fully convolutional stand-in for the model contract; glacier where red is bright."""

    arch = "bright-standin"

    def __init__(self, group_channels=(4, 2), n_classes=2, cond_dim=0, width=8, dropout=0.3):
        super().__init__(group_channels, n_classes, cond_dim, width, dropout)

    def forward(self, x, present, cond=None):
        out = super().forward(x, present, cond)
        bias = torch.cat([torch.zeros_like(x[:, :1]), 2.0 * x[:, :1] - 2.0]
                         + [torch.zeros_like(x[:, :1])] * (self.n_classes - 2), 1)
        return out + bias
