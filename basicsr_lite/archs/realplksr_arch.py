"""RealPLKSR: the community's real-world variant of PLKSR (neosr ``realplksr_arch.py``; layer
norm and DySample added by umzi2 in traiNNer-redux; spandrel's ``PLKSR/__arch/RealPLKSR.py`` loads
it). Differences from PLKSR (``plksr_arch.py``): the DCCM mixer uses Mish, each block ends with
GroupNorm (or starts with a channel LayerNorm when ``layer_norm``), a Dropout2d sits before the
last conv, and the upsampler may be DySample (``dysample``) instead of pixel shuffle.

GroupNorm normalises over the whole image, so without ``layer_norm`` the output depends on
image-global statistics (no exact tiling), and spandrel marks that form fp16-unsafe.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.init import trunc_normal_

from basicsr_lite.archs.arch_util import LayerNorm2d
from basicsr_lite.archs.constraints import NetworkNeeds
from basicsr_lite.archs.dysample import DySample
from basicsr_lite.archs.plk_blocks import EA, ChannelMixer, PLKConv2d, repeat_channels
from basicsr_lite.registry import ARCH_REGISTRY


class RealPLKBlock(nn.Module):
    """[layer norm] -> DCCM (Mish) -> partial large kernel -> EA -> 1x1 refine -> [group norm],
    + input."""

    def __init__(self, dim: int, kernel_size: int, split_ratio: float, use_ea: bool = True,
                 norm_groups: int = 4, use_layer_norm: bool = False) -> None:
        super().__init__()
        self.layer_norm = LayerNorm2d(dim) if use_layer_norm else nn.Identity()
        self.channel_mixer = ChannelMixer(dim, 'DCCM', nn.Mish)
        self.lk = PLKConv2d(int(dim * split_ratio), kernel_size)
        self.attn = EA(dim) if use_ea else nn.Identity()
        self.refine = nn.Conv2d(dim, dim, 1, 1, 0)
        trunc_normal_(self.refine.weight, std=0.02)
        self.norm = nn.Identity() if use_layer_norm else nn.GroupNorm(norm_groups, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lk(self.channel_mixer(self.layer_norm(x)))
        return self.norm(self.refine(self.attn(out))) + x


@ARCH_REGISTRY.register()
class RealPLKSR(nn.Module):
    """Inputs RGB in [0, 1]. Defaults as spandrel's (dim 64, 28 blocks, kernel 17, x4, GroupNorm,
    pixel shuffle): 7,389,680 parameters; with ``dysample`` 7,402,243 (x4). ``dropout`` is the
    Dropout2d rate before the last conv (active in training only). DySample uses 4 point groups
    at even scales and 3 at odd ones, and no end conv at scale 1."""

    @classmethod
    def needs(cls, args: dict) -> NetworkNeeds:
        return NetworkNeeds(in_ch=3, out_ch=3, scale=args['upscaling_factor'],
                            scale_key='upscaling_factor')

    def __init__(self, dim: int = 64, n_blocks: int = 28, upscaling_factor: int = 4,
                 kernel_size: int = 17, split_ratio: float = 0.25, use_ea: bool = True,
                 norm_groups: int = 4, dropout: float = 0.0, dysample: bool = False,
                 layer_norm: bool = False) -> None:
        super().__init__()
        in_ch = out_ch = 3
        self.upscaling_factor = upscaling_factor
        blocks = [RealPLKBlock(dim, kernel_size, split_ratio, use_ea, norm_groups, layer_norm)
                  for _ in range(n_blocks)]
        self.feats = nn.Sequential(nn.Conv2d(in_ch, dim, 3, 1, 1), *blocks, nn.Dropout2d(dropout),
                                   nn.Conv2d(dim, out_ch * upscaling_factor**2, 3, 1, 1))
        trunc_normal_(self.feats[0].weight, std=0.02)
        trunc_normal_(self.feats[-1].weight, std=0.02)
        if dysample:
            groups = 4 if upscaling_factor % 2 == 0 else out_ch
            self.to_img = DySample(in_ch * upscaling_factor**2, out_ch, upscaling_factor,
                                   groups=groups, end_convolution=upscaling_factor != 1)
        else:
            self.to_img = nn.PixelShuffle(upscaling_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_img(self.feats(x) + repeat_channels(x, self.upscaling_factor**2))
