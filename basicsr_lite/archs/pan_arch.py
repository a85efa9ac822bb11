"""PAN (Zhao et al., ECCV-W 2020); keys of the authors' release (zhaohengyuan1/PAN)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from basicsr_lite.archs.arch_util import make_layer
from basicsr_lite.registry import ARCH_REGISTRY


class PixelAttention(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))


class PAConv(nn.Module):
    """3x3 conv gated by a pixel-attention map, then another 3x3 conv."""

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.k2 = nn.Conv2d(channels, channels, 1)
        self.k3 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.k4 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.k4(self.k3(x) * torch.sigmoid(self.k2(x)))


class SCPA(nn.Module):
    """Self-calibrated block with pixel attention: two half-width branches, one plain 3x3 conv,
    one PAConv, concatenated, fused by a 1x1 conv, plus the input."""

    def __init__(self, num_feat: int, reduction: int = 2) -> None:
        super().__init__()
        width = num_feat // reduction
        self.conv1_a = nn.Conv2d(num_feat, width, 1, bias=False)
        self.conv1_b = nn.Conv2d(num_feat, width, 1, bias=False)
        self.k1 = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, bias=False))
        self.PAConv = PAConv(width)
        self.conv3 = nn.Conv2d(width * reduction, num_feat, 1, bias=False)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_a = self.lrelu(self.k1(self.lrelu(self.conv1_a(x))))
        out_b = self.lrelu(self.PAConv(self.lrelu(self.conv1_b(x))))
        return self.conv3(torch.cat([out_a, out_b], dim=1)) + x


@ARCH_REGISTRY.register()
class PAN(nn.Module):
    """Inputs RGB in [0, 1]; the output adds a bilinear upsampling of the input. The released
    weights: num_feat 40, unf 24, num_block 16, x2/x3/x4."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 40,
                 unf: int = 24, num_block: int = 16, upscale: int = 4) -> None:
        super().__init__()
        if upscale not in (2, 3, 4):
            raise ValueError(f'upscale must be 2, 3 or 4; got {upscale}.')
        self.upscale = upscale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.SCPA_trunk = make_layer(SCPA, num_block, num_feat=num_feat)
        self.trunk_conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upconv1 = nn.Conv2d(num_feat, unf, 3, 1, 1)
        self.att1 = PixelAttention(unf)
        self.HRconv1 = nn.Conv2d(unf, unf, 3, 1, 1)
        if upscale == 4:
            self.upconv2 = nn.Conv2d(unf, unf, 3, 1, 1)
            self.att2 = PixelAttention(unf)
            self.HRconv2 = nn.Conv2d(unf, unf, 3, 1, 1)
        self.conv_last = nn.Conv2d(unf, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def _up(self, fea: torch.Tensor, factor: int, upconv, att, hrconv) -> torch.Tensor:
        fea = upconv(F.interpolate(fea, scale_factor=factor, mode='nearest'))
        return self.lrelu(hrconv(self.lrelu(att(fea))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.SCPA_trunk(fea))
        if self.upscale == 4:
            fea = self._up(fea, 2, self.upconv1, self.att1, self.HRconv1)
            fea = self._up(fea, 2, self.upconv2, self.att2, self.HRconv2)
        else:
            fea = self._up(fea, self.upscale, self.upconv1, self.att1, self.HRconv1)
        base = F.interpolate(x, scale_factor=self.upscale, mode='bilinear', align_corners=False)
        return self.conv_last(fea) + base
