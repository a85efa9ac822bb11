"""PLKSR (Lee, Yun and Ro, "Partial Large Kernel CNNs for Efficient Super-Resolution", 2024;
authors' code dslisleedh/PLKSR ``plksr/archs/plksr_arch.py``).

A plain CNN: a 3x3 conv, ``n_blocks`` PLK blocks (channel mixer, a large kernel on a quarter of
the channels, element-wise attention, 1x1 refine, residual), a 3x3 conv to ``3 * s^2`` channels
plus the input repeated ``s^2`` times, pixel shuffle. No normalisation and no global statistics,
so it tiles exactly. Keys match the authors' files (including their ``channe_mixer`` spelling).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn.init import trunc_normal_

from basicsr_lite.archs.constraints import NetworkNeeds
from basicsr_lite.archs.plk_blocks import (EA, ChannelMixer, PLKConv2d, RectSparsePLKConv2d,
                                           SparsePLKConv2d, repeat_channels)
from basicsr_lite.registry import ARCH_REGISTRY

LK_TYPES = ('PLK', 'SparsePLK', 'RectSparsePLK')


class PLKBlock(nn.Module):
    """channel mixer -> partial large kernel -> element-wise attention -> 1x1 refine, + input."""

    def __init__(self, dim: int, ccm_type: str, max_kernel_size: int, split_ratio: float,
                 lk_type: str = 'PLK', use_max_kernel: bool = False,
                 sparse_kernels: Sequence[int] = (5, 5, 5),
                 sparse_dilations: Sequence[int] = (2, 3, 4),
                 with_idt: bool = False, use_ea: bool = True) -> None:
        super().__init__()
        self.channe_mixer = ChannelMixer(dim, ccm_type, nn.GELU)
        pdim = int(dim * split_ratio)
        if lk_type == 'PLK':
            self.lk = PLKConv2d(pdim, max_kernel_size, with_idt)
        elif lk_type == 'SparsePLK':
            self.lk = SparsePLKConv2d(pdim, max_kernel_size, sparse_kernels, sparse_dilations,
                                      use_max_kernel, with_idt)
        elif lk_type == 'RectSparsePLK':
            self.lk = RectSparsePLKConv2d(pdim, max_kernel_size)
        else:
            raise ValueError(f'Unknown LK type: {lk_type!r}; use one of {LK_TYPES}.')
        self.attn = EA(dim) if use_ea else nn.Identity()
        self.refine = nn.Conv2d(dim, dim, 1, 1, 0)
        trunc_normal_(self.refine.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.refine(self.attn(self.lk(self.channe_mixer(x)))) + x


@ARCH_REGISTRY.register()
class PLKSR(nn.Module):
    """Inputs RGB in [0, 1]. Paper models (x2/x3/x4): PLKSR dim 64, n_blocks 28, kernel_size 17,
    DCCM, EA on (7,386,096 parameters at x4); PLKSR-tiny n_blocks 12, kernel_size 13, EA off
    (2,370,544 at x4). ``use_pa`` is the older name of ``use_ea`` that the authors' released
    DF2K option files still carry (``use_pa: false`` for the tiny model); when given it wins.
    ``is_coreml`` is accepted for their option files: the channel repeat here is always the
    export-friendly form, with the same values."""

    @classmethod
    def needs(cls, args: dict) -> NetworkNeeds:
        return NetworkNeeds(in_ch=3, out_ch=3, scale=args['upscaling_factor'],
                            scale_key='upscaling_factor')

    def __init__(self, dim: int = 64, n_blocks: int = 28, upscaling_factor: int = 4,
                 ccm_type: str = 'DCCM', kernel_size: int = 17, split_ratio: float = 0.25,
                 lk_type: str = 'PLK', use_max_kernel: bool = False,
                 sparse_kernels: Sequence[int] = (5, 5, 5, 5),
                 sparse_dilations: Sequence[int] = (1, 2, 3, 4), with_idt: bool = False,
                 use_ea: bool = True, is_coreml: bool = False,
                 use_pa: bool | None = None) -> None:
        super().__init__()
        if use_pa is not None:
            use_ea = use_pa
        self.upscaling_factor = upscaling_factor
        blocks = [PLKBlock(dim, ccm_type, kernel_size, split_ratio, lk_type, use_max_kernel,
                           sparse_kernels, sparse_dilations, with_idt, use_ea)
                  for _ in range(n_blocks)]
        self.feats = nn.Sequential(nn.Conv2d(3, dim, 3, 1, 1), *blocks,
                                   nn.Conv2d(dim, 3 * upscaling_factor**2, 3, 1, 1))
        trunc_normal_(self.feats[0].weight, std=0.02)
        trunc_normal_(self.feats[-1].weight, std=0.02)
        self.to_img = nn.PixelShuffle(upscaling_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The network learns the residual over each LR pixel copied to its s x s output block.
        return self.to_img(self.feats(x) + repeat_channels(x, self.upscaling_factor**2))
