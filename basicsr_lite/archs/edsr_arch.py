from __future__ import annotations

from typing import Sequence

from basicsr_lite.archs.arch_util import MeanShiftSR, ResidualBlockNoBN, make_layer
from basicsr_lite.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class EDSR(MeanShiftSR):
    """EDSR (Lim et al., 2017), BasicSR's variant and state-dict keys.

    Inputs are RGB in [0, 1]; internally ``(x - rgb_mean) * img_range``, as the released weights
    expect.
    """

    def __init__(self, num_in_ch: int, num_out_ch: int, num_feat: int = 64, num_block: int = 16,
                 upscale: int = 4, res_scale: float = 1.0, img_range: float = 255.0,
                 rgb_mean: Sequence[float] = (0.4488, 0.4371, 0.4040)) -> None:
        body = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat, res_scale=res_scale,
                          pytorch_init=True)
        super().__init__(num_in_ch, num_out_ch, num_feat, upscale, body, img_range, rgb_mean)
