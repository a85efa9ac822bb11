"""Pieces shared by the SAFMN family (Sun et al., ICCV 2023, and the same authors' challenge
entries; sunny2109/SAFMN). Attribute names follow the authors' files so their state dicts load.

Every member pools features to a grid that is a fixed fraction of the image (``h // 8`` and
the like) and brings the result back by interpolation: the pooled sizes depend on the whole
image, so none of them tiles exactly, and sides below the largest pooling factor collapse the
grid to nothing.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from basicsr_lite.archs.constraints import NetworkNeeds


class SAFMNFamily(nn.Module):
    """Base of the family's networks: what they need of their input (``needs``)."""

    @classmethod
    def needs(cls, args: dict) -> NetworkNeeds:
        """RGB in and out (hard-coded by the authors); ``upscaling_factor`` is the scale."""
        return NetworkNeeds(in_ch=3, out_ch=3, scale=args['upscaling_factor'],
                            in_key='', out_key='',
                            scale_key='upscaling_factor')


class GRN(nn.Module):
    """Global response normalisation (ConvNeXt V2): each channel's spatial L2 norm relative to
    the mean over channels rescales it; used once after the first conv of the NTIRE2023 SAFMN."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.norm(x, p=2, dim=(2, 3), keepdim=True)
        ratio = norm / (norm.mean(dim=1, keepdim=True) + 1e-6)
        return self.gamma * (x * ratio) + self.beta + x


class SAFM(nn.Module):
    """Spatially-adaptive feature modulation (the paper's Fig. 2): the channels are cut into
    ``n_levels`` chunks; chunk 0 gets a depth-wise 3x3 at full size, chunk i > 0 is max-pooled
    to 1/2^(i + level_offset) of the image, depth-wise 3x3'd and brought back by nearest
    upsampling. A 1x1 conv fuses the chunks and GELU of it modulates the input.
    ``level_offset``: 0 in the paper, 1 in the NTIRE2023 entry (coarser grids)."""

    def __init__(self, dim: int, n_levels: int = 4, bias: bool = True,
                 level_offset: int = 0) -> None:
        super().__init__()
        self.n_levels = n_levels
        self.level_offset = level_offset
        chunk = dim // n_levels
        self.mfr = nn.ModuleList(nn.Conv2d(chunk, chunk, 3, 1, 1, groups=chunk, bias=bias)
                                 for _ in range(n_levels))
        self.aggr = nn.Conv2d(dim, dim, 1, 1, 0, bias=bias)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        out = []
        for i, part in enumerate(x.chunk(self.n_levels, dim=1)):
            if i == 0:
                out.append(self.mfr[0](part))
                continue
            factor = 2 ** (i + self.level_offset)
            pooled = F.adaptive_max_pool2d(part, (h // factor, w // factor))
            out.append(F.interpolate(self.mfr[i](pooled), size=(h, w), mode='nearest'))
        return self.act(self.aggr(torch.cat(out, dim=1))) * x


class CCM(nn.Module):
    """Convolutional channel mixer: 3x3 conv to ``dim * growth_rate``, GELU, 1x1 back (keys
    ``ccm.0`` / ``ccm.2``)."""

    def __init__(self, dim: int, growth_rate: float = 2.0, bias: bool = True) -> None:
        super().__init__()
        hidden = int(dim * growth_rate)
        self.ccm = nn.Sequential(nn.Conv2d(dim, hidden, 3, 1, 1, bias=bias), nn.GELU(),
                                 nn.Conv2d(hidden, dim, 1, 1, 0, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ccm(x)


class SimpleSAFM(nn.Module):
    """SAFMN++'s single-level modulation: a 3x3 projection split into ``chunk_dim`` channels
    that are modulated (max-pool to 1/8, depth-wise 3x3, bilinear back, GELU, times themselves)
    and the rest that pass; GELU of both, then a 1x1 conv. NTIRE2024 SAFMN++ uses
    ``chunk_dim = dim // 3``, the AIS2024 light model ``dim // 2``."""

    def __init__(self, dim: int, chunk_dim: int) -> None:
        super().__init__()
        self.split = (chunk_dim, dim - chunk_dim)
        self.proj = nn.Conv2d(dim, dim, 3, 1, 1, bias=False)
        self.dwconv = nn.Conv2d(chunk_dim, chunk_dim, 3, 1, 1, groups=chunk_dim, bias=False)
        self.out = nn.Conv2d(dim, dim, 1, 1, 0, bias=False)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        modulated, passed = self.proj(x).split(self.split, dim=1)
        gate = self.dwconv(F.adaptive_max_pool2d(modulated, (h // 8, w // 8)))
        gate = F.interpolate(gate, size=(h, w), mode='bilinear', align_corners=False)
        return self.out(self.act(torch.cat([passed, self.act(gate) * modulated], dim=1)))


class ConvMixer(nn.Module):
    """``conv2(GELU(conv1(x)))`` without biases: SAFMN++'s channel mixer (``kernel_size`` 3)
    and SAFMNv3's FFN (1)."""

    def __init__(self, dim: int, ffn_scale: float, kernel_size: int = 3) -> None:
        super().__init__()
        hidden = int(dim * ffn_scale)
        self.conv1 = nn.Conv2d(dim, hidden, kernel_size, 1, kernel_size // 2, bias=False)
        self.conv2 = nn.Conv2d(hidden, dim, 1, 1, 0, bias=False)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x)))


def to_image(dim: int, upscaling_factor: int, bias: bool = True) -> nn.Sequential:
    """The family's tail: a 3x3 conv to ``3 * s^2`` channels and a pixel shuffle (``to_img``)."""
    return nn.Sequential(nn.Conv2d(dim, 3 * upscaling_factor**2, 3, 1, 1, bias=bias),
                         nn.PixelShuffle(upscaling_factor))


def bilinear_up(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The image skip of the challenge entries (bilinear, ``align_corners=False``)."""
    return F.interpolate(x, scale_factor=scale, mode='bilinear', align_corners=False)
