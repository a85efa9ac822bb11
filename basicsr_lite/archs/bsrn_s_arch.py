"""BSRN-S, the small BSRN the authors entered in NTIRE 2022 (xiaom233/BSRN
``basicsr/archs/rfdnfinalB5_arch.py``, class ``RFDNFINALB5``; the challenge copy is
ofsoundof/NTIRE2022_ESR ``models/team18_bsrn.py``).

It differs from BSRN: 1x1 convs are ``nn.Linear`` layers on channels-last tensors (the weight
files hold 2-D weights and biases for them, also inside the blueprint convs), each block ends in
a learned per-channel scale ``cw`` and a linear ``conv_out`` instead of CCA, and ESA's strided
conv is a plain conv. Registered as ``BSRN_S`` and, for the authors' option files,
``RFDNFINALB5``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from basicsr_lite.archs.bsrn_arch import PixelShuffleDirect, check_upsampler
from basicsr_lite.registry import ARCH_REGISTRY


def _last(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)  # NCHW -> NHWC, where nn.Linear mixes channels


def _first(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)  # NHWC -> NCHW


class BSConvULinear(nn.Module):
    """BSConvU whose pointwise step is an ``nn.Linear`` with bias (the authors' ``Blocks.py``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.pw = nn.Linear(in_channels, out_channels)
        self.dw = nn.Conv2d(out_channels, out_channels, kernel_size, stride, padding,
                            groups=out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dw(_first(self.pw(_last(x))))


class ESALinear(nn.Module):
    """BSRN's ESA with linear 1x1 steps and a plain strided 3x3 conv."""

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        f = num_feat // 4
        self.conv1 = nn.Linear(num_feat, f)
        self.conv_f = nn.Linear(f, f)
        self.maxPooling = nn.MaxPool2d(kernel_size=7, stride=3)
        self.conv_max = BSConvULinear(f, f)
        self.conv2 = nn.Conv2d(f, f, 3, 2, 0)
        self.conv3 = BSConvULinear(f, f)
        self.conv3_ = BSConvULinear(f, f)
        self.conv4 = nn.Linear(f, num_feat)
        self.GELU = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(_last(x))
        v_max = self.maxPooling(self.conv2(_first(c1_)))
        c3 = self.GELU(self.conv3(self.GELU(self.conv_max(v_max))))
        c3 = F.interpolate(self.conv3_(c3), x.shape[-2:], mode='bilinear', align_corners=False)
        return x * _first(torch.sigmoid(self.conv4(_last(c3) + self.conv_f(c1_))))


class RFDB(nn.Module):
    """The BSRN-S block: distill/refine steps as in BSRN's ESDB (linear distill convs), fused by
    a linear layer, ESA, a per-channel scale ``cw`` and a linear ``conv_out``, plus the input."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.dc = in_channels // 2
        self.rc = in_channels
        self.c1_d = nn.Linear(in_channels, self.dc)
        self.c1_r = BSConvULinear(in_channels, self.rc)
        self.c2_d = nn.Linear(self.rc, self.dc)
        self.c2_r = BSConvULinear(self.rc, self.rc)
        self.c3_d = nn.Linear(self.rc, self.dc)
        self.c3_r = BSConvULinear(self.rc, self.rc)
        self.c4 = BSConvULinear(self.rc, self.dc)
        self.act = nn.GELU()
        self.c5 = nn.Linear(self.dc * 4, in_channels)
        self.esa = ESALinear(in_channels)
        self.cw = nn.Parameter(torch.normal(mean=1.0, std=0.2, size=(1, in_channels)))
        self.conv_out = nn.Linear(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1, r1 = self.act(self.c1_d(_last(x))), self.act(self.c1_r(x) + x)
        d2, r2 = self.act(self.c2_d(_last(r1))), self.act(self.c2_r(r1) + r1)
        d3, r3 = self.act(self.c3_d(_last(r2))), self.act(self.c3_r(r2) + r2)
        r4 = self.act(self.c4(r3))
        out = _first(self.c5(torch.cat([d1, d2, d3, _last(r4)], dim=3)))
        return _first(self.conv_out(_last(self.esa(out)) * self.cw)) + x


@ARCH_REGISTRY.register()
class BSRN_S(nn.Module):
    """Inputs RGB in [0, 1], replicated 4 times along channels. Blocks ``B1 ... B<num_block>``
    (the authors hard-code 5, so their defaults num_feat 50 / num_block 4 do not build; the
    defaults here are the released BSRN-S: 48 / 5). Only ``conv: BSConvU`` and
    ``upsampler: pixelshuffledirect`` (the released files) are built; ``p`` is accepted for
    the authors' option files and unused by BSConvU."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 48, num_block: int = 5,
                 num_out_ch: int = 3, upscale: int = 4, conv: str = 'BSConvU',
                 upsampler: str = 'pixelshuffledirect', p: float = 0.25) -> None:
        super().__init__()
        check_upsampler(upsampler, 'BSRN_S')
        if conv != 'BSConvU':
            raise ValueError(f"BSRN_S: conv '{conv}' is not supported; only 'BSConvU'.")
        self.num_block = num_block
        self.fea_conv = BSConvULinear(num_in_ch * 4, num_feat)
        for i in range(1, num_block + 1):
            setattr(self, f'B{i}', RFDB(num_feat, num_feat))
        self.c1 = nn.Linear(num_feat * num_block, num_feat)
        self.GELU = nn.GELU()
        self.c2 = BSConvULinear(num_feat, num_feat)
        self.upsampler = PixelShuffleDirect(upscale, num_feat, num_out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_fea = self.fea_conv(torch.cat([x, x, x, x], dim=1))
        outs, out = [], out_fea
        for i in range(1, self.num_block + 1):
            out = getattr(self, f'B{i}')(out)
            outs.append(out)
        out_b = self.GELU(_first(self.c1(_last(torch.cat(outs, dim=1)))))
        return self.upsampler(self.c2(out_b) + out_fea)


ARCH_REGISTRY.register(BSRN_S, name='RFDNFINALB5')
