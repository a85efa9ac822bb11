"""RCAN (Zhang et al., ECCV 2018), BasicSR's variant and keys."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from basicsr_lite.archs.arch_util import MeanShiftSR, make_layer
from basicsr_lite.registry import ARCH_REGISTRY


class ChannelAttention(nn.Module):
    def __init__(self, num_feat: int, squeeze_factor: int = 16) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(num_feat, num_feat // squeeze_factor, 1),
            nn.ReLU(inplace=True), nn.Conv2d(num_feat // squeeze_factor, num_feat, 1),
            nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class RCAB(nn.Module):
    """Residual channel attention block."""

    def __init__(self, num_feat: int, squeeze_factor: int = 16, res_scale: float = 1.0) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.rcab = nn.Sequential(
            nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU(True),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1), ChannelAttention(num_feat, squeeze_factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rcab(x) * self.res_scale + x


class ResidualGroup(nn.Module):
    def __init__(self, num_feat: int, num_block: int, squeeze_factor: int = 16,
                 res_scale: float = 1.0) -> None:
        super().__init__()
        self.residual_group = make_layer(RCAB, num_block, num_feat=num_feat,
                                         squeeze_factor=squeeze_factor, res_scale=res_scale)
        self.conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.residual_group(x)) + x


@ARCH_REGISTRY.register()
class RCAN(MeanShiftSR):
    """Inputs RGB in [0, 1]; internally ``(x - rgb_mean) * img_range`` like EDSR."""

    def __init__(self, num_in_ch: int, num_out_ch: int, num_feat: int = 64, num_group: int = 10,
                 num_block: int = 16, squeeze_factor: int = 16, upscale: int = 4,
                 res_scale: float = 1.0, img_range: float = 255.0,
                 rgb_mean: Sequence[float] = (0.4488, 0.4371, 0.4040)) -> None:
        body = make_layer(ResidualGroup, num_group, num_feat=num_feat, num_block=num_block,
                          squeeze_factor=squeeze_factor, res_scale=res_scale)
        super().__init__(num_in_ch, num_out_ch, num_feat, upscale, body, img_range, rgb_mean)
