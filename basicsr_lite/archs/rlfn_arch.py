"""RLFN (Kong et al., "Residual Local Feature Network for Efficient Super-Resolution", NTIRE 2022
efficient-SR winner), with the keys of the authors' release (bytedance/RLFN, ``model/``).

Three registered variants, as the authors' classes: ``RLFN`` (6 blocks, 52 channels),
``RLFN_S`` (6 blocks, 48 channels) and the pruned NTIRE 2022 entry ``RLFN_Prune`` (4 blocks,
46 channels, 48 inside each block). The released weights work on 0..255 values (bytedance
``val_demo.py``); ``img_range`` (as our RFDN) scales [0, 1] inputs to that and back.
"""
from __future__ import annotations

import torch
from torch import nn

from basicsr_lite.archs.arch_util import TrimmedESA, pixelshuffle_block
from basicsr_lite.registry import ARCH_REGISTRY


def _conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    """A 'same'-padded conv (the authors' ``conv_layer``)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)


class RLFB(nn.Module):
    """Residual local feature block: three 3x3 conv + LeakyReLU(0.05) around an identity
    shortcut, then a 1x1 conv and ESA (no feature distillation, unlike RFDN's RFDB)."""

    def __init__(self, in_channels: int, mid_channels: int | None = None,
                 out_channels: int | None = None, esa_channels: int = 16) -> None:
        super().__init__()
        mid_channels = in_channels if mid_channels is None else mid_channels
        out_channels = in_channels if out_channels is None else out_channels
        self.c1_r = _conv(in_channels, mid_channels, 3)
        self.c2_r = _conv(mid_channels, mid_channels, 3)
        self.c3_r = _conv(mid_channels, in_channels, 3)
        self.c5 = _conv(in_channels, out_channels, 1)
        self.esa = TrimmedESA(esa_channels, out_channels)
        self.act = nn.LeakyReLU(0.05, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.c1_r(x))
        out = self.act(self.c2_r(out))
        out = self.act(self.c3_r(out)) + x
        return self.esa(self.c5(out))


class _RLFNBase(nn.Module):
    """The shared skeleton: 3x3 conv, ``num_blocks`` RLFBs (``block_1`` ...), 3x3 conv plus the
    first features, pixel-shuffle upsampler (``upsampler.0``)."""

    def __init__(self, in_channels: int, out_channels: int, feature_channels: int,
                 mid_channels: int | None, upscale: int, num_blocks: int,
                 img_range: float) -> None:
        super().__init__()
        self.img_range = img_range
        self.conv_1 = _conv(in_channels, feature_channels, 3)
        self.block_names = [f'block_{i}' for i in range(1, num_blocks + 1)]
        for name in self.block_names:
            setattr(self, name, RLFB(feature_channels, mid_channels))
        self.conv_2 = _conv(feature_channels, feature_channels, 3)
        self.upsampler = pixelshuffle_block(feature_channels, out_channels, upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_feature = self.conv_1(x * self.img_range)
        out = out_feature
        for name in self.block_names:
            out = getattr(self, name)(out)
        return self.upsampler(self.conv_2(out) + out_feature) / self.img_range


@ARCH_REGISTRY.register()
class RLFN(_RLFNBase):
    """The paper's RLFN (bytedance ``model/rlfn.py``): 6 RLFBs of 52 channels; released x2 / x4
    weights (526,856 / 543,740 parameters). Inputs RGB in [0, 1]; ``img_range`` 255 gives the
    released weights the 0..255 values they were trained on."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, feature_channels: int = 52,
                 upscale: int = 4, img_range: float = 255.0) -> None:
        super().__init__(in_channels, out_channels, feature_channels, None, upscale, 6,
                         img_range)


@ARCH_REGISTRY.register()
class RLFN_S(_RLFNBase):  # noqa: N801 (the authors' class name, used in option files)
    """The smaller RLFN-S (bytedance ``model/rlfn_s.py``): 6 RLFBs of 48 channels; released
    x2 / x4 weights (454,620 / 470,208 parameters)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, feature_channels: int = 48,
                 upscale: int = 4, img_range: float = 255.0) -> None:
        super().__init__(in_channels, out_channels, feature_channels, None, upscale, 6,
                         img_range)


@ARCH_REGISTRY.register()
class RLFN_Prune(_RLFNBase):  # noqa: N801
    """The pruned NTIRE 2022 entry (bytedance ``model/rlfn_ntire.py``): 4 RLFBs of 46 channels
    with 48 inside each block's convs; released x4 weights (317,218 parameters)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, feature_channels: int = 46,
                 mid_channels: int = 48, upscale: int = 4, img_range: float = 255.0) -> None:
        super().__init__(in_channels, out_channels, feature_channels, mid_channels, upscale, 4,
                         img_range)
