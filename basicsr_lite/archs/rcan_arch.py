"""RCAN (Zhang et al., ECCV 2018), BasicSR's variant and keys.

The authors' code (yulunzhang/RCAN, EDSR-PyTorch's layout) names the same tensors differently
(``head.0``, ``body.<g>.body.<b>.body.<i>``, ``tail``) and stores the mean shift as two 1x1
convolutions (``sub_mean`` / ``add_mean``); spandrel (chaiNNer, ComfyUI) recognises only that
layout. :func:`to_authors_layout` writes it (``tools/check_interop.py --export``) and
:meth:`RCAN.adapt_state_dict` reads it back, so files of either layout load here.
"""
from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import nn

from basicsr_lite.archs.arch_util import MeanShiftSR, make_layer
from basicsr_lite.registry import ARCH_REGISTRY


class ChannelAttention(nn.Module):
    def __init__(self, num_feat: int, squeeze_factor: int = 16) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(num_feat, num_feat // squeeze_factor, 1),
            nn.ReLU(inplace=True), nn.Conv2d(num_feat // squeeze_factor, num_feat, 1),
            nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class RCAB(nn.Module):
    """Residual channel attention block."""

    def __init__(self, num_feat: int, squeeze_factor: int = 16, res_scale: float = 1.0) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.rcab = nn.Sequential(
            nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU(True),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1), ChannelAttention(num_feat, squeeze_factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rcab(x) * self.res_scale + x


class ResidualGroup(nn.Module):
    def __init__(self, num_feat: int, num_block: int, squeeze_factor: int = 16,
                 res_scale: float = 1.0) -> None:
        super().__init__()
        self.residual_group = make_layer(RCAB, num_block, num_feat=num_feat,
                                         squeeze_factor=squeeze_factor, res_scale=res_scale)
        self.conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.residual_group(x)) + x


@ARCH_REGISTRY.register()
class RCAN(MeanShiftSR):
    """Inputs RGB in [0, 1]; internally ``(x - rgb_mean) * img_range`` like EDSR."""

    def __init__(self, num_in_ch: int, num_out_ch: int, num_feat: int = 64, num_group: int = 10,
                 num_block: int = 16, squeeze_factor: int = 16, upscale: int = 4,
                 res_scale: float = 1.0, img_range: float = 255.0,
                 rgb_mean: Sequence[float] = (0.4488, 0.4371, 0.4040)) -> None:
        body = make_layer(ResidualGroup, num_group, num_feat=num_feat, num_block=num_block,
                          squeeze_factor=squeeze_factor, res_scale=res_scale)
        super().__init__(num_in_ch, num_out_ch, num_feat, upscale, body, img_range, rgb_mean)

    @classmethod
    def adapt_state_dict(cls, state: dict) -> dict:
        """``state`` in BasicSR's keys: files in the authors' layout are renamed (their mean
        shift convolutions dropped: here the mean is an argument), others returned as they are."""
        if 'head.0.weight' not in state or 'tail.1.weight' not in state:
            return state
        return {_rename(k, _FROM_AUTHORS): v for k, v in state.items()
                if not k.startswith(('sub_mean.', 'add_mean.'))}


# (pattern, replacement) of each key form; groups: residual group g, block b, parameter.
_FROM_AUTHORS = [
    (r'head\.0\.(.*)', r'conv_first.\1'),
    (r'body\.(\d+)\.body\.(\d+)\.body\.([02])\.(.*)', r'body.\1.residual_group.\2.rcab.\3.\4'),
    (r'body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.0\.(.*)',
     r'body.\1.residual_group.\2.rcab.3.attention.1.\3'),
    (r'body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.2\.(.*)',
     r'body.\1.residual_group.\2.rcab.3.attention.3.\3'),
    (r'body\.(\d+)\.body\.\d+\.(weight|bias)', r'body.\1.conv.\2'),
    (r'body\.\d+\.(weight|bias)', r'conv_after_body.\1'),
    (r'tail\.0\.(.*)', r'upsample.\1'),
    (r'tail\.1\.(.*)', r'conv_last.\1'),
]


def _rename(key: str, rules: list[tuple[str, str]]) -> str:
    for pattern, replacement in rules:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, replacement, key)
    raise KeyError(f"RCAN key '{key}' fits neither BasicSR's nor the authors' layout.")


def to_authors_layout(state: dict, img_range: float = 255.0,
                      rgb_mean: Sequence[float] = (0.4488, 0.4371, 0.4040)) -> dict:
    """BasicSR-keyed RCAN weights in the authors' layout (what spandrel recognises). Their
    network multiplies by ``rgb_range`` 255 and then applies ``sub_mean``; the 1x1 convolutions
    written here make that equal to ``(x - rgb_mean) * img_range`` for any ``img_range``."""
    num_group = 1 + max(int(k.split('.')[1]) for k in state if k.startswith('body.'))
    num_block = 1 + max(int(k.split('.')[3]) for k in state if '.residual_group.' in k)
    rules = [(r'conv_first\.(.*)', r'head.0.\1'),
             (r'body\.(\d+)\.residual_group\.(\d+)\.rcab\.([02])\.(.*)', r'body.\1.body.\2.body.\3.\4'),
             (r'body\.(\d+)\.residual_group\.(\d+)\.rcab\.3\.attention\.1\.(.*)',
              r'body.\1.body.\2.body.3.conv_du.0.\3'),
             (r'body\.(\d+)\.residual_group\.(\d+)\.rcab\.3\.attention\.3\.(.*)',
              r'body.\1.body.\2.body.3.conv_du.2.\3'),
             (r'body\.(\d+)\.conv\.(.*)', rf'body.\1.body.{num_block}.\2'),
             (r'conv_after_body\.(.*)', rf'body.{num_group}.\1'),
             (r'upsample\.(.*)', r'tail.0.\1'),
             (r'conv_last\.(.*)', r'tail.1.\1')]
    out = {_rename(k, rules): v for k, v in state.items()}
    like = state['conv_first.weight']
    mean = torch.tensor(rgb_mean, dtype=like.dtype)
    eye = torch.eye(len(rgb_mean), dtype=like.dtype).view(len(rgb_mean), -1, 1, 1)
    out['sub_mean.weight'], out['sub_mean.bias'] = eye * (img_range / 255.0), -img_range * mean
    out['add_mean.weight'], out['add_mean.bias'] = eye * (255.0 / img_range), 255.0 * mean
    return out
