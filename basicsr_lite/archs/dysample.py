"""DySample (Liu, Lu, Fu and Cao, "Learning to Upsample by Learning to Sample", ICCV 2023;
tiny-smart/dysample), in the form RealPLKSR uses it (neosr / traiNNer-redux; spandrel's
``__arch_helpers/dysample.py``): the "lp" variant with a dynamic scope and an optional 1x1 conv
after sampling. Keys: ``end_conv.*`` (when ``end_convolution``), ``offset.*``, ``scope.weight``
and the ``init_pos`` buffer.

Upsampling is point sampling: each output pixel bilinearly samples the input at its own position
plus a learned offset (``offset(x) * sigmoid(scope(x)) * 0.5`` input pixels, around the fixed
sub-pixel layout ``init_pos``). The offsets are unbounded and the border is clamped, so tiled
inference does not equal untiled inference in general.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.init import trunc_normal_


def initial_positions(scale: int, groups: int) -> torch.Tensor:
    """The sub-pixel centres of an ``scale x scale`` output block relative to its input pixel,
    in input pixels: ``(i - (scale - 1) / 2) / scale``; shape ``(1, 2 * groups * scale^2, 1, 1)``
    ordered (x/y, group, row, column); x varies along the columns, y along the rows."""
    h = (torch.arange(scale, dtype=torch.float32) - (scale - 1) / 2) / scale
    xy = torch.stack([h.expand(scale, scale), h[:, None].expand(scale, scale)])
    return xy[:, None].expand(2, groups, scale, scale).reshape(1, -1, 1, 1).clone()


class DySample(nn.Module):
    """``in_channels`` must be a multiple of ``groups`` (each group of channels shares one set of
    sampling points). Output: ``scale`` times larger, with ``out_ch`` channels after the end
    conv, else the input's ``in_channels``."""

    def __init__(self, in_channels: int, out_ch: int, scale: int = 2, groups: int = 4,
                 end_convolution: bool = True) -> None:
        super().__init__()
        if in_channels < groups or in_channels % groups:
            raise ValueError(f'DySample: in_channels ({in_channels}) must be a positive multiple '
                             f'of groups ({groups}).')
        self.scale = scale
        self.groups = groups
        self.end_convolution = end_convolution
        if end_convolution:
            self.end_conv = nn.Conv2d(in_channels, out_ch, kernel_size=1)
        points = 2 * groups * scale**2
        self.offset = nn.Conv2d(in_channels, points, 1)
        self.scope = nn.Conv2d(in_channels, points, 1, bias=False)
        trunc_normal_(self.offset.weight, std=0.02)
        nn.init.constant_(self.scope.weight, 0.0)  # start at half the offset range
        self.register_buffer('init_pos', initial_positions(scale, groups))

    def sampling_grid(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised sampling coordinates for ``grid_sample``: ``(N * groups, sH, sW, 2)``."""
        offset = self.offset(x) * self.scope(x).sigmoid() * 0.5 + self.init_pos
        n, _, h, w = offset.shape
        offset = offset.view(n, 2, -1, h, w)
        # Pixel centres (x, y) in input pixels; computed in float32 then cast, as the authors do.
        cx = (torch.arange(w, device=x.device) + 0.5).to(x.dtype)
        cy = (torch.arange(h, device=x.device) + 0.5).to(x.dtype)
        centres = torch.stack([cx.expand(h, w), cy[:, None].expand(h, w)])[None, :, None]
        # (w, h) as a product rather than torch.tensor([w, h]): a traced ONNX graph then keeps
        # the size dynamic instead of baking in the export size.
        size = torch.stack([cx.new_ones(()) * w, cy.new_ones(()) * h]).view(1, 2, 1, 1, 1)
        coords = 2 * (centres + offset) / size - 1
        coords = F.pixel_shuffle(coords.reshape(n, -1, h, w), self.scale)
        coords = coords.view(n, 2, -1, self.scale * h, self.scale * w)
        return coords.permute(0, 2, 3, 4, 1).contiguous().flatten(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        out = F.grid_sample(x.reshape(n * self.groups, -1, h, w), self.sampling_grid(x),
                            mode='bilinear', align_corners=False, padding_mode='border')
        out = out.view(n, -1, self.scale * h, self.scale * w)
        return self.end_conv(out) if self.end_convolution else out
