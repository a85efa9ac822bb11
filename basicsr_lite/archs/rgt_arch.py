"""RGT: Recursive Generalization Transformer (Chen et al., ICLR 2024), the authors' state-dict
keys (zhengchen1999/RGT, basicsr/archs/rgt_arch.py, built from DAT's code: the shared pieces
are in dat_blocks.py).

Blocks alternate local self-attention in rectangular windows (L-SA, even blocks) and
recursive-generalization self-attention (RG-SA, odd blocks): a strided depthwise conv applied
recursively condenses the image to a small map, which every token cross-attends to, with the
channels of q and k scaled by ``c_ratio``. Each block adds its input again, scaled by a learned
per-channel ``gamma`` (hybrid adaptive integration, HAI). Variants (the authors' option files):
RGT (eight groups of six blocks) and RGT-S (six groups), 180 channels, windows 8 x 32.

Inputs need at least 16 pixels per side in eval mode: RG-SA condenses by 4^T with T >= 2 there
(the authors' rule, T from the image size; 4^T from the size in training).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from basicsr_lite.archs.constraints import NetworkNeeds
from basicsr_lite.archs.dat_blocks import (SGFN, RectWindowBranches, ResidualGroup,
                                           ResidualGroupSR, is_shifted)
from basicsr_lite.archs.sr_shell import init_transformer_weights
from basicsr_lite.archs.window_attention import DropPath
from basicsr_lite.registry import ARCH_REGISTRY


class L_SA(RectWindowBranches):  # noqa: N801 (the authors' name)
    """Local self-attention: rectangular windows on the channel halves, plus a depthwise conv
    of v (``get_v``, a locally-enhanced branch), then ``proj``."""

    def __init__(self, dim: int, num_heads: int, reso: int = 64,
                 split_size: Sequence[int] = (8, 8), shift_size: Sequence[int] = (1, 2),
                 qkv_bias: bool = False, qk_scale: float | None = None, drop: float = 0.0,
                 attn_drop: float = 0.0, shifted: bool = False) -> None:
        super().__init__(dim, num_heads, reso, split_size, shift_size, qkv_bias, qk_scale, drop,
                         attn_drop, shifted)
        self.get_v = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, length, c = x.shape
        attened_x, v = self.windows(x, h, w)
        lcm = self.get_v(v).permute(0, 2, 3, 1).contiguous().view(b, length, c)
        return self.proj_drop(self.proj(attened_x + lcm))


def recursion_steps(h: int, w: int, training: bool) -> int:
    """How often RG-SA applies its stride-4 reduction (the authors' rule): log4 of the size / 4
    in training, of the size / 16 in eval, and at least 2 in eval."""
    least = 4 if training else 16
    if min(h, w) < least:
        raise ValueError(f'RGT needs inputs of at least {least} x {least} pixels in '
                         f'{"training" if training else "eval"} mode; got {h} x {w}.')
    if training:
        return max(int(math.log(h // 4, 4)), int(math.log(w // 4, 4)))
    return max(int(math.log(h // 16, 4)), int(math.log(w // 16, 4)), 2)


class RG_SA(nn.Module):  # noqa: N801 (the authors' name)
    """Recursive-generalization self-attention: tokens (q, ``c_ratio`` of the channels)
    cross-attend to a map condensed by ``reduction1`` applied recursively (k, v); v gets a
    depthwise conv position encoding (``cpe``) on the condensed grid."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 c_ratio: float = 0.5) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.cr = int(dim * c_ratio)
        self.scale = qk_scale or (dim // num_heads * c_ratio)**-0.5
        self.reduction1 = nn.Conv2d(dim, dim, kernel_size=4, stride=4, groups=dim)
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)
        self.conv = nn.Conv2d(dim, self.cr, kernel_size=1, stride=1)
        self.norm_act = nn.Sequential(nn.LayerNorm(self.cr), nn.GELU())
        self.q = nn.Linear(dim, self.cr, bias=qkv_bias)
        self.k = nn.Linear(self.cr, self.cr, bias=qkv_bias)
        self.v = nn.Linear(self.cr, dim, bias=qkv_bias)
        self.cpe = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        heads = self.num_heads
        steps = recursion_steps(h, w, self.training)
        reduced = 4**steps
        y = x.permute(0, 2, 1).reshape(b, c, h, w).contiguous()
        for _ in range(steps):
            y = self.reduction1(y)
        y = self.conv(self.dwconv(y)).reshape(b, self.cr, -1).permute(0, 2, 1).contiguous()
        y = self.norm_act(y)  # B, N', C'
        q = self.q(x).reshape(b, n, heads, int(self.cr / heads)).permute(0, 2, 1, 3)
        k = self.k(y).reshape(b, -1, heads, int(self.cr / heads)).permute(0, 2, 1, 3)
        v = self.v(y).reshape(b, -1, heads, int(c / heads)).permute(0, 2, 1, 3)
        attn = self.attn_drop(((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1))
        grid = v.transpose(1, 2).reshape(b, -1, c).transpose(1, 2).contiguous() \
            .view(b, c, h // reduced, w // reduced)
        v = v + self.cpe(grid).view(b, c, -1).view(b, heads, int(c / heads), -1) \
            .transpose(-1, -2)
        x = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(x))


class Block(nn.Module):
    """L-SA (even ``idx``) or RG-SA, then the gated FFN, each pre-normed with a residual, plus
    the block input times ``gamma`` (HAI)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = False,
                 qk_scale: float | None = None, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0, idx: int = 0, rs_id: int = 0,
                 split_size: Sequence[int] = (2, 4), shift_size: Sequence[int] = (1, 2),
                 reso: int = 64, c_ratio: float = 0.5, layerscale_value: float = 1e-4) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        if idx % 2 == 0:
            self.attn = L_SA(dim, num_heads, reso, split_size, shift_size, qkv_bias, qk_scale,
                             drop, attn_drop, shifted=is_shifted(rs_id, idx))
        else:
            self.attn = RG_SA(dim, num_heads, qkv_bias, qk_scale, attn_drop, drop, c_ratio)
        self.drop_path = DropPath(drop_path)
        self.mlp = SGFN(dim, int(dim * mlp_ratio), dim)
        self.norm2 = nn.LayerNorm(dim)
        self.gamma = nn.Parameter(layerscale_value * torch.ones(dim))

    def forward(self, x: torch.Tensor, x_size: Sequence[int]) -> torch.Tensor:
        h, w = x_size
        res = x
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        x = x + self.drop_path(self.mlp(self.norm2(x), h, w))
        return x + res * self.gamma


@ARCH_REGISTRY.register()
class RGT(ResidualGroupSR):
    """The authors' constructor arguments. ``img_size`` is accepted and unused, as in the
    authors' code: their blocks store the shifted-window masks of 64 x 64 inputs whatever it
    says (``reso`` keeps its default), and the released files hold those. ``use_chk`` (the
    authors' name) or ``use_checkpoint``: recompute each block in backward (gradient
    checkpointing). The authors' RGT has the pixel-shuffle reconstruction only."""

    @classmethod
    def needs(cls, args: dict) -> NetworkNeeds:
        return NetworkNeeds(in_ch=args['in_chans'], out_ch=args['in_chans'],
                            scale=args['upscale'], in_key='in_chans', out_key='in_chans')

    def __init__(self, img_size: int = 64, in_chans: int = 3, embed_dim: int = 180,
                 depth: Sequence[int] = (2, 2, 2, 2), num_heads: Sequence[int] = (2, 2, 2, 2),
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.1, use_chk: bool = False, upscale: int = 4,
                 img_range: float = 1.0, resi_connection: str = '1conv',
                 split_size: Sequence[int] = (8, 8), c_ratio: float = 0.5,
                 use_checkpoint: bool = False) -> None:
        dpr = torch.linspace(0, drop_path_rate, sum(depth), device='cpu').tolist()
        shift = [split_size[0] // 2, split_size[1] // 2]

        def groups() -> list[nn.Module]:
            return [ResidualGroup(
                [Block(embed_dim, heads, mlp_ratio, qkv_bias, qk_scale, drop_rate,
                       attn_drop_rate, dpr[sum(depth[:i]) + j], j, i, split_size, shift,
                       c_ratio=c_ratio) for j in range(d)],
                embed_dim, resi_connection, use_chk or use_checkpoint)
                for i, (d, heads) in enumerate(zip(depth, num_heads))]

        super().__init__(in_chans, embed_dim, groups, upscale, img_range, resi_connection,
                         'pixelshuffle')
        self.use_chk = use_chk or use_checkpoint
        self.apply(init_transformer_weights)
