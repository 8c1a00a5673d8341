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


def save_optical_standin(path, rgb, nir, *, onnx: bool = False):
    """A model file of a :class:`BrightStandIn` for an ``optical`` group red, green, blue, nir.

    Normalisation statistics come from the scene ``rgb`` + ``nir`` (e.g. the ``optical_scene``
    fixture); ``onnx`` adds the ONNX graph (needed by the ONNX Runtime backend). Returns the
    path of the saved ``.gkm``.
    """
    import numpy as np
    import rasterio

    from glacierkit.dl.bundle import bundle_from_model, register_arch, save_bundle
    from glacierkit.dl.export import export_onnx
    from glacierkit.dl.sources import NormStats, SourceLayout, prepare_channels

    register_arch("bright-standin", BrightStandIn)
    layout = SourceLayout.standard(("red", "green", "blue", "nir"))
    with rasterio.open(rgb) as a, rasterio.open(nir) as b:
        raw = np.concatenate([a.read(), b.read()]).astype(np.float32)
    norm = NormStats.fit([prepare_channels(layout, [raw], pixel_size=(30.0, 30.0))],
                         names=layout.names)
    torch.manual_seed(0)
    model = BrightStandIn(group_channels=(4,)).eval()
    graph = (export_onnx(model, group_channels=(4,), cond_dim=0, example_size=(32, 32))
             if onnx else None)
    bundle = bundle_from_model(
        model, layout=layout.to_dict(), norm=norm.to_dict(), classes=["background", "glacier"],
        tile={"size": 64, "overlap": 16}, training={"group_dropout": 0.0},
        model_kwargs={"group_channels": [4], "n_classes": 2, "cond_dim": 0}, onnx_bytes=graph)
    return save_bundle(path, bundle)

