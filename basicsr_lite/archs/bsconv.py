"""Blueprint separable convolutions (Haase & Amthor, CVPR 2020) as BSRN and LKDN use them.

A blueprint conv is a pointwise (1x1) conv followed by a depthwise kxk conv: the opposite order
of a depthwise separable conv. Key names (``pw``, ``dw``, ``pw1``, ``pw2``) follow the authors'
repositories (xiaom233/BSRN ``basicsr/archs/BSRN_arch.py``, stella-von/LKDN
``basicsr/archs/lkdn_blocks.py``), so their weight files load strictly.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn


def _depthwise(channels: int, kernel_size: int, stride: int, padding: int, dilation: int,
               bias: bool, padding_mode: str) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, kernel_size, stride, padding, dilation,
                     groups=channels, bias=bias, padding_mode=padding_mode)


class BSConvU(nn.Module):
    """Unconstrained blueprint conv: 1x1 conv (no bias) mixes channels, then a depthwise kxk
    conv filters each output channel."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: int = 1, dilation: int = 1, bias: bool = True,
                 padding_mode: str = 'zeros') -> None:
        super().__init__()
        self.pw = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.dw = _depthwise(out_channels, kernel_size, stride, padding, dilation, bias,
                             padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dw(self.pw(x))


class BSConvS(nn.Module):
    """Subspace blueprint conv: the 1x1 mixing goes through ``mid = clamp(ceil(p * in))``
    channels (two bias-free 1x1 convs), then a depthwise kxk conv."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: int = 1, dilation: int = 1, bias: bool = True,
                 padding_mode: str = 'zeros', p: float = 0.25,
                 min_mid_channels: int = 4) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f'BSConvS p must be in [0, 1], got {p}.')
        mid = min(in_channels, max(min_mid_channels, math.ceil(p * in_channels)))
        self.pw1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.pw2 = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.dw = _depthwise(out_channels, kernel_size, stride, padding, dilation, bias,
                             padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dw(self.pw2(self.pw1(x)))


class DepthWiseConv(nn.Module):
    """Depthwise separable conv (the usual order: depthwise kxk, then a bias-free 1x1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: int = 1, dilation: int = 1, bias: bool = True,
                 padding_mode: str = 'zeros') -> None:
        super().__init__()
        self.dw = _depthwise(in_channels, kernel_size, stride, padding, dilation, bias,
                             padding_mode)
        self.pw = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


ConvFactory = Callable[..., nn.Module]

# BSRN's ``conv`` option; 'Conv2d' stands for the authors' fall-through to nn.Conv2d, whose
# default padding is 0 where the blueprint convs default to 1 (ESA's convs then shrink).
BSRN_CONVS: dict[str, ConvFactory] = {
    'BSConvU': BSConvU, 'BSConvS': BSConvS, 'DepthWiseConv': DepthWiseConv, 'Conv2d': nn.Conv2d}


def conv_kwargs(conv: ConvFactory, p: float) -> dict:
    """The extra arguments the authors pass to a 3x3 ``conv``: BSConvS gets ``p`` (its default
    padding 1), every other conv gets ``padding=1``."""
    return {'p': p} if conv is BSConvS else {'padding': 1}


def esa_kwargs(conv: ConvFactory, p: float) -> dict:
    """The extra arguments of ESA's 3x3 convs: only BSConvS gets ``p``; no padding is passed,
    so each conv keeps its own default (1 for blueprint convs, 0 for nn.Conv2d)."""
    return {'p': p} if conv is BSConvS else {}


def pick_conv(name: str, choices: dict[str, ConvFactory], arch: str) -> ConvFactory:
    if name not in choices:
        raise ValueError(f"{arch}: conv '{name}' is not supported; use one of "
                         f"{', '.join(choices)}.")
    return choices[name]
