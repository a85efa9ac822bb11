"""SAFMN (Sun et al., "Spatially-Adaptive Feature Modulation for Efficient Image
Super-Resolution", ICCV 2023) and the authors' NTIRE2023 efficient-SR entry; keys of
sunny2109/SAFMN (``basicsr/archs/safmn_arch.py``, ``NTIRE2023_ESR/models/team15_SAFMN.py``)."""
from __future__ import annotations

import torch
from torch import nn

from basicsr_lite.archs.arch_util import LayerNorm2d
from basicsr_lite.archs.safmn_blocks import (CCM, GRN, SAFM, SAFMNFamily,
                                             bilinear_up, to_image)
from basicsr_lite.registry import ARCH_REGISTRY


class AttBlock(nn.Module):
    """Pre-norm transformer-style block: SAFM then CCM, each with a residual. ``norm``: the
    paper's layer norms before both (keys ``norm1`` / ``norm2``); the NTIRE2023 entry has none."""

    def __init__(self, dim: int, ffn_scale: float, norm: bool = True, bias: bool = True,
                 level_offset: int = 0) -> None:
        super().__init__()
        if norm:
            self.norm1 = LayerNorm2d(dim)
            self.norm2 = LayerNorm2d(dim)
        else:
            self.norm1 = self.norm2 = nn.Identity()
        self.safm = SAFM(dim, bias=bias, level_offset=level_offset)
        self.ccm = CCM(dim, ffn_scale, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.safm(self.norm1(x)) + x
        return self.ccm(self.norm2(x)) + x


@ARCH_REGISTRY.register()
class SAFMN(SAFMNFamily):
    """The paper's network: 3x3 conv, ``n_blocks`` AttBlocks with a global residual, 3x3 conv
    and pixel shuffle. RGB in [0, 1]. Paper sizes: dim 36, n_blocks 8, ffn_scale 2.0 (~240K
    parameters at x4); SAFMN-L: dim 128, n_blocks 16."""

    def __init__(self, dim: int, n_blocks: int = 8, ffn_scale: float = 2.0,
                 upscaling_factor: int = 4) -> None:
        super().__init__()
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1)
        self.feats = nn.Sequential(*(AttBlock(dim, ffn_scale) for _ in range(n_blocks)))
        self.to_img = to_image(dim, upscaling_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_feat(x)
        return self.to_img(self.feats(x) + x)


@ARCH_REGISTRY.register()
class SAFMN_NTIRE23(SAFMNFamily):
    """The NTIRE2023 efficient-SR entry (team 15, class ``SAFMN`` in the challenge file; not
    the paper's network): no layer norms and no biases in the blocks, SAFM pools one octave
    coarser, a GRN after the first conv, no feature residual, and a bilinear upsampling of the
    input added to the output. RGB in [0, 1]. Released: dim 36, n_blocks 8, ffn_scale 2.0, x4."""

    def __init__(self, dim: int, n_blocks: int = 8, ffn_scale: float = 2.0,
                 upscaling_factor: int = 4) -> None:
        super().__init__()
        self.scale = upscaling_factor
        self.norm = GRN(dim)
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1)
        self.feats = nn.Sequential(*(AttBlock(dim, ffn_scale, norm=False, bias=False,
                                              level_offset=1) for _ in range(n_blocks)))
        self.to_img = to_image(dim, upscaling_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = bilinear_up(x, self.scale)
        return self.to_img(self.feats(self.norm(self.to_feat(x)))) + skip

