"""BSRN (Li et al., "Blueprint Separable Residual Network for Efficient Image Super-Resolution",
CVPRW 2022; NTIRE 2022 efficient-SR model-complexity track winner).

Layout, key names and order of operations follow the authors' ``basicsr/archs/BSRN_arch.py``
(xiaom233/BSRN), so the released ``net_g_BSRN_x{2,3,4}.pth`` load strictly and reproduce the
paper. It is RFDN's skeleton with blueprint convs, GELU, and ESA followed by contrast channel
attention in each block.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from basicsr_lite.archs.arch_util import pixelshuffle_block
from basicsr_lite.archs.bsconv import BSRN_CONVS, ConvFactory, conv_kwargs, esa_kwargs, pick_conv
from basicsr_lite.archs.imdn_arch import ContrastChannelAttention
from basicsr_lite.registry import ARCH_REGISTRY


class ESA(nn.Module):
    """Enhanced spatial attention with the block's conv type and GELU: a strided, max-pooled
    branch gives a low-resolution mask, upsampled bilinearly to the input size. Inputs must be
    at least 15 pixels on each side (stride-2 3x3 conv, then a 7x7 max pool)."""

    def __init__(self, num_feat: int = 50, conv: ConvFactory = nn.Conv2d,
                 p: float = 0.25) -> None:
        super().__init__()
        f = num_feat // 4
        kwargs = esa_kwargs(conv, p)
        self.conv1 = nn.Conv2d(num_feat, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.maxPooling = nn.MaxPool2d(kernel_size=7, stride=3)
        self.conv_max = conv(f, f, kernel_size=3, **kwargs)
        self.conv2 = conv(f, f, 3, 2, 0)
        self.conv3 = conv(f, f, kernel_size=3, **kwargs)
        self.conv3_ = conv(f, f, kernel_size=3, **kwargs)
        self.conv4 = nn.Conv2d(f, num_feat, 1)
        self.GELU = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        v_max = self.maxPooling(self.conv2(c1_))
        c3 = self.GELU(self.conv3(self.GELU(self.conv_max(v_max))))
        c3 = F.interpolate(self.conv3_(c3), x.shape[-2:], mode='bilinear', align_corners=False)
        return x * torch.sigmoid(self.conv4(c3 + self.conv_f(c1_)))


class ESDB(nn.Module):
    """Efficient separable distillation block: three (1x1 distill, residual 3x3 refine) steps,
    a last 3x3 refine, 1x1 fusion, ESA, CCA, and the block input added back."""

    def __init__(self, in_channels: int, out_channels: int, conv: ConvFactory = nn.Conv2d,
                 p: float = 0.25) -> None:
        super().__init__()
        kwargs = conv_kwargs(conv, p)
        self.dc = in_channels // 2
        self.rc = in_channels
        self.c1_d = nn.Conv2d(in_channels, self.dc, 1)
        self.c1_r = conv(in_channels, self.rc, kernel_size=3, **kwargs)
        self.c2_d = nn.Conv2d(self.rc, self.dc, 1)
        self.c2_r = conv(self.rc, self.rc, kernel_size=3, **kwargs)
        self.c3_d = nn.Conv2d(self.rc, self.dc, 1)
        self.c3_r = conv(self.rc, self.rc, kernel_size=3, **kwargs)
        self.c4 = conv(self.rc, self.dc, kernel_size=3, **kwargs)
        self.act = nn.GELU()
        self.c5 = nn.Conv2d(self.dc * 4, in_channels, 1)
        # The authors build ESA without passing p: a BSConvS there always uses p = 0.25.
        self.esa = ESA(in_channels, conv)
        self.cca = ContrastChannelAttention(in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1, r1 = self.act(self.c1_d(x)), self.act(self.c1_r(x) + x)
        d2, r2 = self.act(self.c2_d(r1)), self.act(self.c2_r(r1) + r1)
        d3, r3 = self.act(self.c3_d(r2)), self.act(self.c3_r(r2) + r2)
        r4 = self.act(self.c4(r3))
        out = self.c5(torch.cat([d1, d2, d3, r4], dim=1))
        return self.cca(self.esa(out)) + x


class PixelShuffleDirect(nn.Module):
    """One 3x3 conv to ``num_out_ch * scale^2`` channels and a pixel shuffle (the authors'
    ``Upsamplers.PixelShuffleDirect``; key ``upsampleOneStep.0``)."""

    def __init__(self, scale: int, num_feat: int, num_out_ch: int) -> None:
        super().__init__()
        self.upsampleOneStep = pixelshuffle_block(num_feat, num_out_ch, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsampleOneStep(x)


def check_upsampler(upsampler: str, arch: str) -> None:
    # The authors' x4-only alternatives (pixelshuffleblock, nearestconv, pa) have no released
    # weights and are not built here.
    if upsampler != 'pixelshuffledirect':
        raise ValueError(f"{arch}: upsampler '{upsampler}' is not supported; "
                         "only 'pixelshuffledirect' (the released models' upsampler).")


@ARCH_REGISTRY.register()
class BSRN(nn.Module):
    """Inputs RGB in [0, 1], replicated 4 times along channels before the first conv (as the
    authors do). Blocks are ``B1 ... B<num_block>`` (the authors hard-code 8). Released
    weights: num_feat 64, num_block 8, conv BSConvU, x2 / x3 / x4."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, num_block: int = 8,
                 num_out_ch: int = 3, upscale: int = 4, conv: str = 'BSConvU',
                 upsampler: str = 'pixelshuffledirect', p: float = 0.25) -> None:
        super().__init__()
        check_upsampler(upsampler, 'BSRN')
        conv_cls = pick_conv(conv, BSRN_CONVS, 'BSRN')
        kwargs = conv_kwargs(conv_cls, p)
        self.num_block = num_block
        self.fea_conv = conv_cls(num_in_ch * 4, num_feat, kernel_size=3, **kwargs)
        for i in range(1, num_block + 1):
            setattr(self, f'B{i}', ESDB(num_feat, num_feat, conv=conv_cls, p=p))
        self.c1 = nn.Conv2d(num_feat * num_block, num_feat, 1)
        self.GELU = nn.GELU()
        self.c2 = conv_cls(num_feat, num_feat, kernel_size=3, **kwargs)
        self.upsampler = PixelShuffleDirect(upscale, num_feat, num_out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_fea = self.fea_conv(torch.cat([x, x, x, x], dim=1))
        outs, out = [], out_fea
        for i in range(1, self.num_block + 1):
            out = getattr(self, f'B{i}')(out)
            outs.append(out)
        out_b = self.GELU(self.c1(torch.cat(outs, dim=1)))
        return self.upsampler(self.c2(out_b) + out_fea)
