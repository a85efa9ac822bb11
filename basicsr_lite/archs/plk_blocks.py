"""Blocks shared by PLKSR and RealPLKSR (Lee et al., "Partial Large Kernel CNNs for Efficient
Super-Resolution", 2024; authors' code dslisleedh/PLKSR ``plksr/archs/plksr_arch.py``; RealPLKSR
from neosr / traiNNer-redux). Attribute names follow the authors' so that state-dict keys match
their files and spandrel's loader.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn.init import trunc_normal_

# (first kernel, second kernel) of the channel mixers: CCM, inverted CCM, doubled CCM.
MIXER_KERNELS = {'CCM': (3, 1), 'ICCM': (1, 3), 'DCCM': (3, 3)}


class ChannelMixer(nn.Sequential):
    """conv (dim -> 2 dim) - activation - conv (2 dim -> dim): the block's local texture path.
    PLKSR uses GELU, RealPLKSR Mish (its DCCM only). Keys ``0.*`` and ``2.*``."""

    def __init__(self, dim: int, ccm_type: str = 'DCCM',
                 act: type[nn.Module] = nn.GELU) -> None:
        if ccm_type not in MIXER_KERNELS:
            raise ValueError(f'Unknown CCM type: {ccm_type!r}; use one of {sorted(MIXER_KERNELS)}.')
        k1, k2 = MIXER_KERNELS[ccm_type]
        super().__init__(nn.Conv2d(dim, dim * 2, k1, 1, k1 // 2), act(),
                         nn.Conv2d(dim * 2, dim, k2, 1, k2 // 2))
        trunc_normal_(self[-1].weight, std=0.02)


class _PartialConv(nn.Module):
    """Runs ``convolve`` on the first ``idx`` channels only; the rest pass through unchanged.

    Training (or whenever autograd records) splits and concatenates; pure inference writes the
    result back into the input, as the authors' eval path does, to skip the concatenated copy.
    Both give the same values."""
    idx: int

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            head, tail = torch.split(x, [self.idx, x.size(1) - self.idx], dim=1)
            return torch.cat([self.convolve(head), tail], dim=1)
        x[:, :self.idx] = self.convolve(x[:, :self.idx])
        return x


class PLKConv2d(_PartialConv):
    """Partial large kernel conv: one ``kernel_size`` conv over ``dim`` (= split_ratio * width)
    channels; ``with_idt`` adds its input (the authors' re-parameterisable identity)."""

    def __init__(self, dim: int, kernel_size: int, with_idt: bool = False) -> None:
        super().__init__()
        self.with_idt = with_idt
        self.conv = nn.Conv2d(dim, dim, kernel_size, 1, kernel_size // 2)
        trunc_normal_(self.conv.weight, std=0.02)
        self.idx = dim

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + x if self.with_idt else self.conv(x)


class SparsePLKConv2d(_PartialConv):
    """The RepLKNet / UniRepLKNet-style ablation: dilated small kernels summed (plus, with
    ``use_max_kernel``, one conv as large as the largest dilated footprint). Keys ``convs.i``."""

    def __init__(self, dim: int, max_kernel_size: int, sub_kernel_sizes: Sequence[int],
                 dilations: Sequence[int], use_max_kernel: bool, with_idt: bool) -> None:
        super().__init__()
        footprints = [(k - 1) * d + 1 for k, d in zip(sub_kernel_sizes, dilations)]
        self.max_kernel_size = max([max_kernel_size, *footprints])
        self.use_max_kernel = use_max_kernel
        self.with_idt = with_idt
        convs = [nn.Conv2d(dim, dim, k, 1, (k // 2) * d, dilation=d)
                 for k, d in zip(sub_kernel_sizes, dilations)]
        if use_max_kernel:
            convs.append(nn.Conv2d(dim, dim, self.max_kernel_size, 1, self.max_kernel_size // 2))
        self.convs = nn.ModuleList(convs)
        for conv in self.convs:
            trunc_normal_(conv.weight, std=0.02)
        self.idx = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The authors' sparse layer always splits and concatenates (no in-place path).
        head, tail = torch.split(x, [self.idx, x.size(1) - self.idx], dim=1)
        return torch.cat([self.convolve(head), tail], dim=1)

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.with_idt else 0.0
        for conv in self.convs:
            out = out + conv(x)
        return out


class RectSparsePLKConv2d(_PartialConv):
    """The SLaK-style ablation: an m x n, an n x m and an n x n conv summed (n = m // 3)."""

    def __init__(self, dim: int, kernel_size: int) -> None:
        super().__init__()
        m, n = kernel_size, kernel_size // 3
        self.idx = dim
        self.mn_conv = nn.Conv2d(dim, dim, (m, n), 1, (m // 2, n // 2))
        self.nm_conv = nn.Conv2d(dim, dim, (n, m), 1, (n // 2, m // 2))
        self.nn_conv = nn.Conv2d(dim, dim, (n, n), 1, (n // 2, n // 2))
        for conv in (self.mn_conv, self.nm_conv, self.nn_conv):
            trunc_normal_(conv.weight, std=0.02)

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        return self.mn_conv(x) + self.nm_conv(x) + self.nn_conv(x)


class EA(nn.Module):
    """Element-wise attention: ``x * sigmoid(conv3x3(x))``, a per-pixel, per-channel gate that
    stands in for a transformer's instance-dependent weights. Keys ``f.0.*``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1), nn.Sigmoid())
        trunc_normal_(self.f[0].weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.f(x)


def repeat_channels(x: torch.Tensor, repeats: int) -> torch.Tensor:
    """``torch.repeat_interleave(x, repeats, dim=1)`` (each channel ``repeats`` times in a row)
    as expand + reshape, the form the authors use for CoreML; same values, exports anywhere."""
    n, c, h, w = x.shape
    return x.unsqueeze(2).expand(n, c, repeats, h, w).reshape(n, c * repeats, h, w)
