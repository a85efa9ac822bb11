"""Blocks shared by several architectures (key names match BasicSR's)."""
from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn.functional as F
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


class ConcatFusionSR(nn.Module):
    """The IMDN / RFDN skeleton: a 3x3 conv, ``num_block`` blocks in a chain whose outputs are
    concatenated and fused (1x1 conv + LeakyReLU 0.05, key ``c``), a 3x3 conv (``LR_conv``) plus
    the first features, and a pixel-shuffle upsampler. Blocks are attributes
    ``<prefix>1 ... <prefix>N``, as in the released weights."""

    def __init__(self, num_in_ch: int, num_out_ch: int, num_feat: int, num_block: int,
                 upscale: int, block: type[nn.Module], prefix: str) -> None:
        super().__init__()
        self.block_names = [f'{prefix}{i}' for i in range(1, num_block + 1)]
        self.fea_conv = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        for name in self.block_names:
            setattr(self, name, block(num_feat))
        self.c = nn.Sequential(nn.Conv2d(num_feat * num_block, num_feat, 1),
                               nn.LeakyReLU(0.05, inplace=True))
        self.LR_conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsampler = pixelshuffle_block(num_feat, num_out_ch, upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.fea_conv(x)
        outs, out = [], fea
        for name in self.block_names:
            out = getattr(self, name)(out)
            outs.append(out)
        return self.upsampler(self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea)


class MeanShiftSR(nn.Module):
    """The EDSR / RCAN skeleton: ``(x - rgb_mean) * img_range``, a 3x3 conv, ``body`` plus a 3x3
    conv with a global skip, upsampling, a 3x3 conv, and the mean shift undone. The mean is not
    a buffer: BasicSR's weight files have no key for it."""

    def __init__(self, num_in_ch: int, num_out_ch: int, num_feat: int, upscale: int,
                 body: nn.Module, img_range: float, rgb_mean) -> None:
        super().__init__()
        if len(rgb_mean) != num_in_ch:
            raise ValueError(f'rgb_mean has {len(rgb_mean)} values but num_in_ch is {num_in_ch}.')
        self.img_range = img_range
        self.mean = torch.tensor(rgb_mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = body
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.mean.to(x)
        x = self.conv_first((x - mean) * self.img_range)
        res = self.conv_after_body(self.body(x)) + x
        return self.conv_last(self.upsample(res)) / self.img_range + mean


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of each pixel of an NCHW map (ConvNeXt's channels-first
    form; eps 1e-6), keys ``weight`` / ``bias``: the one SAFMN, OmniSR and RealPLKSR use."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class TrimmedESA(nn.Module):
    """RFANet's enhanced spatial attention as RLFN and OmniSR use it (RFDN's ``ESA`` without
    ``conv_max`` / ``conv3_`` and its ReLUs; not RFDN's: keys and operations differ): a strided,
    max-pooled branch, upsampled back, gives a sigmoid mask. The stride-2 conv and the 7x7 /
    stride-3 max pool need inputs of at least 15 x 15."""

    def __init__(self, esa_channels: int, n_feats: int) -> None:
        super().__init__()
        f = esa_channels
        self.conv1 = nn.Conv2d(n_feats, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        c3 = self.conv3(F.max_pool2d(self.conv2(c1_), kernel_size=7, stride=3))
        c3 = F.interpolate(c3, size=x.shape[-2:], mode='bilinear', align_corners=False)
        return x * torch.sigmoid(self.conv4(c3 + self.conv_f(c1_)))
