"""Blocks shared by several architectures (key names match BasicSR's)."""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn
from torch.nn import init


@torch.no_grad()
def default_init_weights(modules: nn.Module | Iterable[nn.Module], scale: float = 1.0,
                         bias_fill: float = 0.0) -> None:
    """Kaiming-normal init scaled by ``scale`` (small residual branches train more stably)."""
    if isinstance(modules, nn.Module):
        modules = [modules]
    for module in modules:
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                init.kaiming_normal_(m.weight)
                m.weight.mul_(scale)
                if m.bias is not None:
                    m.bias.fill_(bias_fill)


def make_layer(block: type[nn.Module], num_blocks: int, **kwargs) -> nn.Sequential:
    return nn.Sequential(*(block(**kwargs) for _ in range(num_blocks)))


class ResidualBlockNoBN(nn.Module):
    """conv-ReLU-conv with an identity shortcut: ``x + res_scale * body(x)``."""

    def __init__(self, num_feat: int = 64, res_scale: float = 1.0,
                 pytorch_init: bool = False) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        if not pytorch_init:
            default_init_weights([self.conv1, self.conv2], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


class Upsample(nn.Sequential):
    """Conv + PixelShuffle upsampler for scales 2^n and 3."""

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: list[nn.Module] = []
        if scale >= 2 and (scale & (scale - 1)) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f'upscale {scale} is not supported: use 2^n or 3.')
        super().__init__(*layers)


def pixelshuffle_block(in_channels: int, out_channels: int, upscale: int,
                       kernel_size: int = 3) -> nn.Sequential:
    """conv to ``out_channels * upscale^2`` then PixelShuffle (keys ``0.weight``, ``0.bias``)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels * upscale**2, kernel_size, 1, kernel_size // 2),
        nn.PixelShuffle(upscale))


def channel_std(x: torch.Tensor) -> torch.Tensor:
    """Per-channel standard deviation over the spatial dims (population), shape (N, C, 1, 1)."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
