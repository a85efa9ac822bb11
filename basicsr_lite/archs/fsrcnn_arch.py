"""FSRCNN (Dong et al., ECCV 2016); keys of the yjn870/FSRCNN-pytorch release."""
from __future__ import annotations

import torch
from torch import nn

from basicsr_lite.archs.constraints import NetworkNeeds
from basicsr_lite.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class FSRCNN(nn.Module):
    """Feature extraction (5x5, d), shrinking (1x1, s), m mapping layers (3x3), expanding (1x1),
    PReLU after each, and a 9x9 transposed conv that upsamples. The released weights work on the
    Y channel in [0, 1] (``num_in_ch = 1``, dataset ``color: y``)."""

    @classmethod
    def needs(cls, args: dict) -> NetworkNeeds:
        """Its output has the input's channels."""
        return NetworkNeeds(in_ch=args['num_in_ch'], out_ch=args['num_in_ch'],
                            scale=args['upscale'], out_key='num_in_ch')

    def __init__(self, num_in_ch: int = 1, d: int = 56, s: int = 12, m: int = 4,
                 upscale: int = 4) -> None:
        super().__init__()
        self.first_part = nn.Sequential(nn.Conv2d(num_in_ch, d, 5, padding=2), nn.PReLU(d))
        mid: list[nn.Module] = [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            mid += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        mid += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.mid_part = nn.Sequential(*mid)
        self.last_part = nn.ConvTranspose2d(d, num_in_ch, 9, stride=upscale, padding=4,
                                            output_padding=upscale - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_part(self.mid_part(self.first_part(x)))
