from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from basicsr_lite.archs.arch_util import ResidualBlockNoBN, Upsample, make_layer
from basicsr_lite.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class EDSR(nn.Module):
    """EDSR (Lim et al., 2017), BasicSR's variant and state-dict keys.

    Inputs are RGB in [0, 1]; internally ``(x - rgb_mean) * img_range``, as the released weights
    expect.
    """

    def __init__(self, num_in_ch: int, num_out_ch: int, num_feat: int = 64, num_block: int = 16,
                 upscale: int = 4, res_scale: float = 1.0, img_range: float = 255.0,
                 rgb_mean: Sequence[float] = (0.4488, 0.4371, 0.4040)) -> None:
        super().__init__()
        if len(rgb_mean) != num_in_ch:
            raise ValueError(f'rgb_mean has {len(rgb_mean)} values but num_in_ch is {num_in_ch}.')
        self.img_range = img_range
        # Not a buffer: BasicSR's weight files have no 'mean' key.
        self.mean = torch.tensor(rgb_mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat,
                               res_scale=res_scale, pytorch_init=True)
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.mean.to(x)
        x = self.conv_first((x - mean) * self.img_range)
        res = self.conv_after_body(self.body(x)) + x
        return self.conv_last(self.upsample(res)) / self.img_range + mean
