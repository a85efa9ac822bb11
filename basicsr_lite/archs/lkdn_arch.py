"""LKDN (Xie et al., "Large Kernel Distillation Network for Efficient Single Image
Super-Resolution", CVPRW 2023).

Layout, key names and order of operations follow the authors' ``basicsr/archs/lkdn_arch.py``
and ``lkdn_blocks.py`` (stella-von/LKDN), so the released ``LKDN_x4.pth`` loads strictly and
reproduces the paper. It keeps BSRN's skeleton and blueprint convs; each block replaces ESA + CCA
by large-kernel attention (1x1, 5x5 depthwise, 5x5 depthwise dilated by 3) and a per-pixel
LayerNorm over channels, so nothing in it depends on the image as a whole.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from basicsr_lite.archs.arch_util import pixelshuffle_block
from basicsr_lite.archs.bsconv import BSConvU, ConvFactory, pick_conv
from basicsr_lite.registry import ARCH_REGISTRY


class BSConvU_idt(BSConvU):
    """BSConvU plus an identity shortcut (in == out channels)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dw(self.pw(x)) + x


class BSConvU_rep(BSConvU):
    """The re-parameterisable training form of BSConvU: identity shortcuts around both steps
    and a parallel per-channel 1x1 (``rep1x1``) beside the depthwise conv."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: int = 1, dilation: int = 1, bias: bool = True,
                 padding_mode: str = 'zeros') -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         bias, padding_mode)
        self.rep1x1 = nn.Conv2d(out_channels, out_channels, 1, dilation=dilation,
                                groups=out_channels, bias=bias, padding_mode=padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.pw(x) + x
        return self.dw(fea) + fea + self.rep1x1(fea)


LKDN_CONVS: dict[str, ConvFactory] = {
    'BSConvU': BSConvU, 'BSConvU_idt': BSConvU_idt, 'BSConvU_rep': BSConvU_rep}


class Attention(nn.Module):
    """Large-kernel attention: x times (1x1 -> 5x5 depthwise -> 5x5 depthwise, dilation 3),
    an effective 17x17 window."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.pointwise = nn.Conv2d(dim, dim, 1)
        self.depthwise = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.depthwise_dilated = nn.Conv2d(dim, dim, 5, padding=6, groups=dim, dilation=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.depthwise_dilated(self.depthwise(self.pointwise(x)))


class LKDB(nn.Module):
    """Large kernel distillation block: three (1x1 distill, 3x3 refine) steps without residual
    adds, a last BSConvU refine, 1x1 fusion to ``atten_channels``, large-kernel attention,
    1x1 back, LayerNorm over channels, plus the block input."""

    def __init__(self, in_channels: int, out_channels: int, atten_channels: int | None = None,
                 conv: ConvFactory = nn.Conv2d) -> None:
        super().__init__()
        self.dc = in_channels // 2
        self.rc = in_channels
        self.atten_channels = in_channels if atten_channels is None else atten_channels
        self.c1_d = nn.Conv2d(in_channels, self.dc, 1)
        self.c1_r = conv(in_channels, self.rc, kernel_size=3, padding=1)
        self.c2_d = nn.Conv2d(self.rc, self.dc, 1)
        self.c2_r = conv(self.rc, self.rc, kernel_size=3, padding=1)
        self.c3_d = nn.Conv2d(self.rc, self.dc, 1)
        self.c3_r = conv(self.rc, self.rc, kernel_size=3, padding=1)
        self.c4 = BSConvU(self.rc, self.dc, kernel_size=3, padding=1)
        self.act = nn.GELU()
        self.c5 = nn.Conv2d(self.dc * 4, self.atten_channels, 1)
        self.atten = Attention(self.atten_channels)
        self.c6 = nn.Conv2d(self.atten_channels, out_channels, 1)
        self.pixel_norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1, r1 = self.act(self.c1_d(x)), self.act(self.c1_r(x))
        d2, r2 = self.act(self.c2_d(r1)), self.act(self.c2_r(r1))
        d3, r3 = self.act(self.c3_d(r2)), self.act(self.c3_r(r2))
        r4 = self.act(self.c4(r3))
        out = self.c6(self.atten(self.c5(torch.cat([d1, d2, d3, r4], dim=1))))
        out = self.pixel_norm(out.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()
        return out + x


class Upsampler_rep(nn.Module):
    """Re-parameterisable training-form upsampler: 1x1 + 3x3 + (1x1 expand -> 3x3) branches
    summed, then a pixel shuffle. The 1x1 -> 3x3 branch pads the 1x1 output with its bias, i.e.
    it sees the zero-padded input, so the three branches merge into one 3x3 conv."""

    def __init__(self, in_channels: int, out_channels: int, upscale_factor: int = 4) -> None:
        super().__init__()
        out = out_channels * upscale_factor**2
        self.conv1 = nn.Conv2d(in_channels, out, 1)
        self.conv3 = nn.Conv2d(in_channels, out, 3, 1, 1)
        self.conv1x1 = nn.Conv2d(in_channels, in_channels * 2, 1)
        self.conv3x3 = nn.Conv2d(in_channels * 2, out, 3)
        self.pixel_shuffle = nn.PixelShuffle(upscale_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expanded = self.conv1x1(F.pad(x, (1, 1, 1, 1)))  # border = the 1x1 conv's bias
        out = self.conv1(x) + self.conv3(x) + self.conv3x3(expanded)
        return self.pixel_shuffle(out)


@ARCH_REGISTRY.register()
class LKDN(nn.Module):
    """Inputs RGB in [0, 1], replicated ``num_in`` times along channels. Blocks are
    ``B1 ... B<num_block>`` (the authors hard-code 8). ``conv`` picks the refine convs of the
    blocks (``BSConvU_rep`` / ``BSConvU_idt``: the authors' training variants); the released
    x4 weights: num_feat 56, num_atten 56, num_block 8, BSConvU, pixelshuffledirect."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 56,
                 num_atten: int = 56, num_block: int = 8, upscale: int = 4, num_in: int = 4,
                 conv: str = 'BSConvU', upsampler: str = 'pixelshuffledirect') -> None:
        super().__init__()
        conv_cls = pick_conv(conv, LKDN_CONVS, 'LKDN')
        self.num_in = num_in
        self.num_block = num_block
        self.fea_conv = BSConvU(num_in_ch * num_in, num_feat, kernel_size=3, padding=1)
        for i in range(1, num_block + 1):
            setattr(self, f'B{i}', LKDB(num_feat, num_feat, num_atten, conv=conv_cls))
        self.c1 = nn.Conv2d(num_feat * num_block, num_feat, 1)
        self.GELU = nn.GELU()
        self.c2 = BSConvU(num_feat, num_feat, kernel_size=3, padding=1)
        if upsampler == 'pixelshuffledirect':
            self.upsampler = pixelshuffle_block(num_feat, num_out_ch, upscale)
        elif upsampler == 'pixelshuffle_rep':
            self.upsampler = Upsampler_rep(num_feat, num_out_ch, upscale)
        else:
            raise ValueError(f"LKDN: upsampler '{upsampler}' is not supported; use "
                             "'pixelshuffledirect' or 'pixelshuffle_rep'.")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_fea = self.fea_conv(torch.cat([x] * self.num_in, dim=1))
        outs, out = [], out_fea
        for i in range(1, self.num_block + 1):
            out = getattr(self, f'B{i}')(out)
            outs.append(out)
        out_b = self.GELU(self.c1(torch.cat(outs, dim=1)))
        return self.upsampler(self.c2(out_b) + out_fea)
