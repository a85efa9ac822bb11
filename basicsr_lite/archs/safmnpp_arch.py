"""SAFMN++ and its descendants, the SAFMN authors' challenge entries: SAFMN++ (NTIRE2024
efficient SR, sunny2109/SAFMN ``NTIRE2024_ESR/models/team23_safmnpp.py``), its light version for
the AIS2024 real-time 4K SR challenge (``AIS2024-RTSR/light_safmnpp_arch.py``) and SAFMNv3
(NTIRE2025 efficient SR, Amazingren/NTIRE2025_ESR ``models/team19_SAFMNv3.py``). All are
bias-free and take RGB in [0, 1]."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from basicsr_lite.archs.safmn_blocks import (ConvMixer, SAFMNFamily, SimpleSAFM, bilinear_up,
                                             to_image)
from basicsr_lite.registry import ARCH_REGISTRY


class PPBlock(nn.Module):
    """``conv2(conv1(x)) + x``: a modulation then a channel mixer (SAFMN++ / SAFMNv3 AttBlock)."""

    def __init__(self, conv1: nn.Module, conv2: nn.Module) -> None:
        super().__init__()
        self.conv1 = conv1
        self.conv2 = conv2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


@ARCH_REGISTRY.register()
class SAFMNPP(SAFMNFamily):
    """SAFMN++: bias-free 3x3 conv, ``n_blocks`` residual blocks (SimpleSAFM on a third of the
    channels + 3x3/1x1 mixer), 3x3 conv + pixel shuffle, plus a bilinear upsampling of the
    input. Released (NTIRE2024): dim 36, n_blocks 6, ffn_scale 1.5, x4. ``use_se`` is in the
    authors' signature but builds nothing there; only False is accepted here."""

    def __init__(self, dim: int, n_blocks: int = 8, ffn_scale: float = 2.0, use_se: bool = False,
                 upscaling_factor: int = 4) -> None:
        super().__init__()
        if use_se:
            raise ValueError('use_se: the authors\' SAFMN++ builds no SE layer; use False.')
        self.scale = upscaling_factor
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1, bias=False)
        self.feats = nn.Sequential(*(PPBlock(SimpleSAFM(dim, dim // 3), ConvMixer(dim, ffn_scale))
                                     for _ in range(n_blocks)))
        self.to_img = to_image(dim, upscaling_factor, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_img(self.feats(self.to_feat(x))) + bilinear_up(x, self.scale)


class LightMixer(nn.Module):
    """The light model's channel mixer: 3x3 conv, GELU, 1x1 conv (keys ``conv.0`` / ``conv.2``)."""

    def __init__(self, dim: int, ffn_scale: float) -> None:
        super().__init__()
        hidden = int(dim * ffn_scale)
        self.conv = nn.Sequential(nn.Conv2d(dim, hidden, 3, 1, 1, bias=False), nn.GELU(),
                                  nn.Conv2d(hidden, dim, 1, 1, 0, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class VISBlock(PPBlock):
    """The light model's block: SimpleSAFM on half the channels, then the mixer, with no
    residual of its own."""

    def __init__(self, dim: int, ffn_scale: float) -> None:
        super().__init__(SimpleSAFM(dim, dim // 2), LightMixer(dim, ffn_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


@ARCH_REGISTRY.register()
class SAFMN_VIS24(SAFMNFamily):
    """Light SAFMN++ for AIS2024 real-time SR (AVIF-compressed 540p to 4K): blocks without
    residuals, one feature residual around all of them, no image skip. Released: dim 32,
    n_blocks 2, ffn_scale 1.5, x4."""

    def __init__(self, dim: int = 8, n_blocks: int = 1, ffn_scale: float = 2.0,
                 upscaling_factor: int = 4) -> None:
        super().__init__()
        self.scale = upscaling_factor
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1, bias=False)
        self.feats = nn.Sequential(*(VISBlock(dim, ffn_scale) for _ in range(n_blocks)))
        self.to_img = to_image(dim, upscaling_factor, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_feat(x)
        return self.to_img(self.feats(x) + x)


class SimpleSAFMv3(nn.Module):
    """SAFMNv3's modulation: two 3x3 convs make the ``split_dim`` modulated channels and the
    rest; the modulated ones are max-pooled to 1/8, depth-wise 3x3'd, offset by their own
    spatial variance (unbiased, over the whole image), mixed by a 1x1 conv, brought back
    bilinearly and GELU-gate themselves; GELU of both, then a 1x1 conv."""

    def __init__(self, dim: int, split_dim: int = 12) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, split_dim, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(dim, dim - split_dim, 3, 1, 1, bias=False)
        self.conv3 = nn.Conv2d(split_dim, split_dim, 1, 1, 0, bias=False)
        self.dwconv = nn.Conv2d(split_dim, split_dim, 3, 1, 1, groups=split_dim, bias=False)
        self.out = nn.Conv2d(dim, dim, 1, 1, 0, bias=False)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        modulated, passed = self.conv1(x), self.conv2(x)
        gate = self.dwconv(F.adaptive_max_pool2d(modulated, (h // 8, w // 8)))
        gate = self.conv3(gate + torch.var(modulated, dim=(-2, -1), keepdim=True))
        gate = F.interpolate(gate, size=(h, w), mode='bilinear', align_corners=False)
        return self.out(self.act(torch.cat([passed, self.act(gate) * modulated], dim=1)))


@ARCH_REGISTRY.register()
class SAFMN_NTIRE25(SAFMNFamily):
    """SAFMNv3 (NTIRE2025 efficient SR, team 19): SAFMN++'s layout with SimpleSAFMv3 (12
    modulated channels, as the authors fix it) and a 1x1/1x1 FFN. Released: dim 40,
    num_blocks 6, ffn_scale 1.5, x4."""

    def __init__(self, dim: int, num_blocks: int = 8, ffn_scale: float = 2.0,
                 upscaling_factor: int = 4) -> None:
        super().__init__()
        self.num_blocks = num_blocks
        self.scale = upscaling_factor
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1, bias=False)
        self.feats = nn.Sequential(*(PPBlock(SimpleSAFMv3(dim), ConvMixer(dim, ffn_scale, 1))
                                     for _ in range(num_blocks)))
        self.to_img = to_image(dim, upscaling_factor, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_img(self.feats(self.to_feat(x))) + bilinear_up(x, self.scale)
