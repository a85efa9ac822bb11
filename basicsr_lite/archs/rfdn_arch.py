"""RFDN (Liu et al., AIM 2020 efficient SR winner); keys of the authors' release (njulj/RFDN)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from basicsr_lite.archs.arch_util import ConcatFusionSR
from basicsr_lite.registry import ARCH_REGISTRY


class ESA(nn.Module):
    """Enhanced spatial attention: a strided, pooled, cheap branch produces a sigmoid mask."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        f = channels // 4
        self.conv1 = nn.Conv2d(channels, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv_max = nn.Conv2d(f, f, 3, padding=1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv3_ = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, channels, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        c1 = self.conv2(c1_)
        v_range = self.relu(self.conv_max(F.max_pool2d(c1, kernel_size=7, stride=3)))
        c3 = self.conv3_(self.relu(self.conv3(v_range)))
        c3 = F.interpolate(c3, size=x.shape[-2:], mode='bilinear', align_corners=False)
        return x * torch.sigmoid(self.conv4(c3 + self.conv_f(c1_)))


class RFDB(nn.Module):
    """Residual feature distillation block: 1x1 'distill' and residual 3x3 'refine' convs."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        dc = channels // 2
        self.c1_d, self.c1_r = nn.Conv2d(channels, dc, 1), nn.Conv2d(channels, channels, 3, 1, 1)
        self.c2_d, self.c2_r = nn.Conv2d(channels, dc, 1), nn.Conv2d(channels, channels, 3, 1, 1)
        self.c3_d, self.c3_r = nn.Conv2d(channels, dc, 1), nn.Conv2d(channels, channels, 3, 1, 1)
        self.c4 = nn.Conv2d(channels, dc, 3, 1, 1)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.c5 = nn.Conv2d(dc * 4, channels, 1)
        self.esa = ESA(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1, r1 = self.act(self.c1_d(x)), self.act(self.c1_r(x) + x)
        d2, r2 = self.act(self.c2_d(r1)), self.act(self.c2_r(r1) + r1)
        d3, r3 = self.act(self.c3_d(r2)), self.act(self.c3_r(r2) + r2)
        r4 = self.act(self.c4(r3))
        return self.esa(self.c5(torch.cat([d1, d2, d3, r4], dim=1)))


@ARCH_REGISTRY.register()
class RFDN(ConcatFusionSR):
    """Inputs RGB in [0, 1], scaled internally by ``img_range``: the released AIM 2020 weights
    (num_feat 50, num_block 4, x4) work on 0..255 values (Set5 x4: 32.16 dB with 255, 26.0
    with 1)."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 50,
                 num_block: int = 4, upscale: int = 4, img_range: float = 255.0) -> None:
        super().__init__(num_in_ch, num_out_ch, num_feat, num_block, upscale, RFDB, 'B')
        self.img_range = img_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x * self.img_range) / self.img_range
