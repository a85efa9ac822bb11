"""SRVGGNetCompact (Real-ESRGAN's compact model), BasicSR / Real-ESRGAN keys."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from basicsr_lite.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class SRVGGNetCompact(nn.Module):
    """A plain stack of 3x3 convs and activations at low resolution, a pixel shuffle at the end,
    plus a nearest-neighbour upsampling of the input."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_conv: int = 16, upscale: int = 4, act_type: str = 'prelu') -> None:
        super().__init__()
        if act_type not in ('relu', 'prelu', 'leakyrelu'):
            raise ValueError(f"act_type must be 'relu', 'prelu' or 'leakyrelu'; got '{act_type}'.")
        self.upscale = upscale

        def activation() -> nn.Module:
            if act_type == 'relu':
                return nn.ReLU(inplace=True)
            if act_type == 'prelu':
                return nn.PReLU(num_parameters=num_feat)
            return nn.LeakyReLU(negative_slope=0.1, inplace=True)

        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), activation()]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), activation()]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        base = F.interpolate(x, scale_factor=self.upscale, mode='nearest')
        return self.upsampler(out) + base
