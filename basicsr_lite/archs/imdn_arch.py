"""IMDN (Hui et al., ACM MM 2019); state-dict keys of the authors' release (Zheng222/IMDN)."""
from __future__ import annotations

import torch
from torch import nn

from basicsr_lite.archs.arch_util import ConcatFusionSR, channel_std
from basicsr_lite.registry import ARCH_REGISTRY


class ContrastChannelAttention(nn.Module):
    """Channel attention driven by each channel's contrast (std + mean)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1), nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(channel_std(x) + x.mean(dim=(2, 3), keepdim=True))


class IMDModule(nn.Module):
    """Information multi-distillation block: three 3x3 convs each split off a quarter of their
    channels; the distilled parts are fused by CCA + 1x1 conv, plus the input."""

    def __init__(self, channels: int, distillation_rate: float = 0.25) -> None:
        super().__init__()
        self.distilled = int(channels * distillation_rate)
        self.remaining = channels - self.distilled
        self.c1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.c2 = nn.Conv2d(self.remaining, channels, 3, 1, 1)
        self.c3 = nn.Conv2d(self.remaining, channels, 3, 1, 1)
        self.c4 = nn.Conv2d(self.remaining, self.distilled, 3, 1, 1)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.c5 = nn.Conv2d(self.distilled * 4, channels, 1)
        self.cca = ContrastChannelAttention(self.distilled * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = (self.distilled, self.remaining)
        d1, r1 = torch.split(self.act(self.c1(x)), split, dim=1)
        d2, r2 = torch.split(self.act(self.c2(r1)), split, dim=1)
        d3, r3 = torch.split(self.act(self.c3(r2)), split, dim=1)
        out = torch.cat([d1, d2, d3, self.c4(r3)], dim=1)
        return self.c5(self.cca(out)) + x


@ARCH_REGISTRY.register()
class IMDN(ConcatFusionSR):
    """Inputs RGB in [0, 1]. The released weights: num_feat 64, num_block 6, x2/x3/x4."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_block: int = 6, upscale: int = 4) -> None:
        super().__init__(num_in_ch, num_out_ch, num_feat, num_block, upscale, IMDModule, 'IMDB')
