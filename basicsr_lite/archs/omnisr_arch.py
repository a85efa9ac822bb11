"""OmniSR (Wang et al., "Omni Aggregation Networks for Lightweight Image Super-Resolution",
CVPR 2023), from the authors' components/OmniSR.py (Francis0625/Omni-SR); blocks in
omnisr_blocks.py. State-dict keys are the authors' (and spandrel's, which detects the arguments
from them).

Input range: the authors train and test on images scaled to [-1, 1] (their data loaders'
``(x / 255 - 0.5) * 2``, their tester's ``(y + 1) / 2``), so the released weights expect it.
``signed_range`` (default True; not an argument of theirs) does that mapping inside the network,
so it takes and returns [0, 1] images like every network here. Spandrel runs OmniSR files on
[0, 1] directly, i.e. as ``signed_range=False``; a file trained here loads there exactly as the
authors' files do.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from basicsr_lite.archs.constraints import NetworkNeeds
from basicsr_lite.archs.omnisr_blocks import OSAG
from basicsr_lite.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class OmniSR(nn.Module):
    """3x3 conv, ``res_num`` omni self-attention groups, 3x3 conv plus the first features, and a
    pixel-shuffle tail (3x3 conv to ``num_out_ch * upsampling^2``).

    Arguments are the keys of the authors' option files (train_yamls/*.yaml, ``module_params``
    plus ``feature_num`` as ``num_feat``); defaults are their published configuration (res_num
    5, block_num 1, window_size 8, pe, 64 features: the paper's 792K parameters at x4, as thop
    counts them; 805,376 in all). ``ffn_bias`` is accepted but, as in their OSA_Block, changes
    nothing (the feed-forward convs have no bias); ``block_script_name`` / ``block_class_name``
    name their only block, OSA / OSA_Block.
    Inputs of any size are zero-padded (after the [-1, 1] mapping) to a multiple of
    ``window_size`` on the bottom and right, and the output is cropped back."""

    @classmethod
    def needs(cls, args: dict) -> NetworkNeeds:
        """Channels ``num_in_ch`` -> ``num_out_ch``; the scale is the authors' ``upsampling``."""
        return NetworkNeeds(in_ch=args['num_in_ch'], out_ch=args['num_out_ch'],
                            scale=args['upsampling'], scale_key='upsampling')

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 res_num: int = 5, upsampling: int = 4, bias: bool = True, block_num: int = 1,
                 window_size: int = 8, pe: bool = True, ffn_bias: bool = True,
                 block_script_name: str = 'OSA', block_class_name: str = 'OSA_Block',
                 signed_range: bool = True) -> None:
        super().__init__()
        if (block_script_name, block_class_name) != ('OSA', 'OSA_Block'):
            raise ValueError(f'OmniSR builds the OSA / OSA_Block block only; got '
                             f'{block_script_name} / {block_class_name}.')
        if num_feat % 4:
            raise ValueError(f'num_feat must be a multiple of 4 (4 attention heads); '
                             f'got {num_feat}.')
        self.res_num, self.up_scale, self.window_size = res_num, upsampling, window_size
        self.signed_range = signed_range
        # Registration order as the authors' (residual_layer first): the same key order.
        self.residual_layer = nn.Sequential(*(
            OSAG(num_feat, bias=bias, block_num=block_num, window_size=window_size, pe=pe)
            for _ in range(res_num)))
        self.input = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=bias)
        self.output = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=bias)
        self.up = nn.Sequential(
            nn.Conv2d(num_feat, num_out_ch * upsampling ** 2, 3, padding=1, bias=bias),
            nn.PixelShuffle(upsampling))

    def check_image_size(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad the bottom and right to multiples of ``window_size``."""
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % self.window_size, (-w) % self.window_size
        return F.pad(x, (0, pad_w, 0, pad_h), 'constant', 0) if pad_h or pad_w else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.signed_range:
            x = (x - 0.5) * 2.0
        residual = self.input(self.check_image_size(x))
        out = self.output(self.residual_layer(residual)) + residual
        out = self.up(out)[:, :, :h * self.up_scale, :w * self.up_scale]
        return (out + 1.0) / 2.0 if self.signed_range else out
