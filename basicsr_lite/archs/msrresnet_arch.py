from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from basicsr_lite.archs.arch_util import ResidualBlockNoBN, default_init_weights, make_layer
from basicsr_lite.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class MSRResNet(nn.Module):
    """Modified SRResNet (BasicSR): residual blocks without BN, predicts a residual over the
    bilinear upsampling of the input. ``upscale`` is 2, 3 or 4."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_block: int = 16, upscale: int = 4) -> None:
        super().__init__()
        if upscale not in (2, 3, 4):
            raise ValueError(f'upscale must be 2, 3 or 4; got {upscale}.')
        self.upscale = upscale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat)
        shuffle = 2 if upscale == 4 else upscale
        self.upconv1 = nn.Conv2d(num_feat, num_feat * shuffle * shuffle, 3, 1, 1)
        self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1) if upscale == 4 else None
        self.pixel_shuffle = nn.PixelShuffle(shuffle)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        init_convs = [self.conv_first, self.upconv1, self.conv_hr, self.conv_last]
        default_init_weights(init_convs + ([self.upconv2] if self.upconv2 else []), 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(self.lrelu(self.conv_first(x)))
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.upconv2 is not None:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        base = F.interpolate(x, scale_factor=self.upscale, mode='bilinear', align_corners=False)
        return out + base
