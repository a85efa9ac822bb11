"""DAT: Dual Aggregation Transformer (Chen et al., ICCV 2023), the authors' state-dict keys
(zhengchen1999/DAT, basicsr/archs/dat_arch.py).

Blocks alternate spatial window attention (even blocks, DSTB) and channel attention (odd
blocks, DCTB); both mix their attention output with a depthwise conv of v through the adaptive
interaction module (AIM: a channel map from one branch and a spatial map from the other gate
each other), and the feed-forward network is the spatial-gate FFN (SGFN). Variants (the
authors' option files): DAT, DAT-S, DAT-2 (six groups of six blocks, 180 channels) and
DAT-light (one group of 18 blocks, 60 channels, 3conv, pixelshuffledirect). Inputs of any size:
the spatial attention zero-pads q, k, v to its window internally.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from basicsr_lite.archs.constraints import NetworkNeeds
from basicsr_lite.archs.dat_blocks import (SGFN, RectWindowBranches, ResidualGroup,
                                           ResidualGroupSR, is_shifted)
from basicsr_lite.archs.sr_shell import init_transformer_weights
from basicsr_lite.archs.window_attention import DropPath
from basicsr_lite.registry import ARCH_REGISTRY


def _interaction(dim: int) -> tuple[nn.Module, nn.Module, nn.Module]:
    """AIM's pieces: ``dwconv`` (the conv branch on v), ``channel_interaction`` (global pool ->
    C-map) and ``spatial_interaction`` (1x1 convs -> S-map)."""
    dwconv = nn.Sequential(nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim),
                           nn.BatchNorm2d(dim), nn.GELU())
    channel = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, dim // 8, kernel_size=1),
                            nn.BatchNorm2d(dim // 8), nn.GELU(),
                            nn.Conv2d(dim // 8, dim, kernel_size=1))
    spatial = nn.Sequential(nn.Conv2d(dim, dim // 16, kernel_size=1), nn.BatchNorm2d(dim // 16),
                            nn.GELU(), nn.Conv2d(dim // 16, 1, kernel_size=1))
    return dwconv, channel, spatial


class AdaptiveSpatialAttention(RectWindowBranches):
    """DSTB's attention: rectangular windows on the channel halves; AIM gates the attention
    output by a channel map of the conv branch, the conv branch by a spatial map of the
    attention output (the authors' ``Adaptive_Spatial_Attention``)."""

    def __init__(self, dim: int, num_heads: int, reso: int = 64,
                 split_size: Sequence[int] = (8, 8), shift_size: Sequence[int] = (1, 2),
                 qkv_bias: bool = False, qk_scale: float | None = None, drop: float = 0.0,
                 attn_drop: float = 0.0, shifted: bool = False) -> None:
        super().__init__(dim, num_heads, reso, split_size, shift_size, qkv_bias, qk_scale, drop,
                         attn_drop, shifted)
        self.dwconv, self.channel_interaction, self.spatial_interaction = _interaction(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, length, c = x.shape
        attened_x, v = self.windows(x, h, w)
        conv_x = self.dwconv(v)
        channel_map = self.channel_interaction(conv_x).permute(0, 2, 3, 1).contiguous() \
            .view(b, 1, c)
        spatial_map = self.spatial_interaction(
            attened_x.transpose(-2, -1).contiguous().view(b, c, h, w))
        attened_x = attened_x * torch.sigmoid(channel_map)
        conv_x = torch.sigmoid(spatial_map) * conv_x
        conv_x = conv_x.permute(0, 2, 3, 1).contiguous().view(b, length, c)
        return self.proj_drop(self.proj(attened_x + conv_x))


class AdaptiveChannelAttention(nn.Module):
    """DCTB's attention: heads attend across channels (L2-normalised q, k, a learned
    temperature per head, as XCiT); AIM the other way round from the spatial block (the
    authors' ``Adaptive_Channel_Attention``)."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False,
                 qk_scale: float | None = None, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.dwconv, self.channel_interaction, self.spatial_interaction = _interaction(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = (t.transpose(-2, -1) for t in qkv.permute(2, 0, 3, 1, 4))  # B, heads, C/h, N
        v_ = v.reshape(b, c, n).contiguous().view(b, c, h, w)
        q = nn.functional.normalize(q, dim=-1)
        k = nn.functional.normalize(k, dim=-1)
        attn = self.attn_drop(((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1))
        attened_x = (attn @ v).permute(0, 3, 1, 2).reshape(b, n, c)
        conv_x = self.dwconv(v_)
        channel_map = self.channel_interaction(
            attened_x.transpose(-2, -1).contiguous().view(b, c, h, w))
        spatial_map = self.spatial_interaction(conv_x).permute(0, 2, 3, 1).contiguous() \
            .view(b, n, 1)
        attened_x = attened_x * torch.sigmoid(spatial_map)
        conv_x = conv_x * torch.sigmoid(channel_map)
        conv_x = conv_x.permute(0, 2, 3, 1).contiguous().view(b, n, c)
        return self.proj_drop(self.proj(attened_x + conv_x))


class DATB(nn.Module):
    """Dual aggregation Transformer block: spatial (even ``b_idx``) or channel attention, then
    SGFN, each pre-normed with a residual."""

    def __init__(self, dim: int, num_heads: int, reso: int = 64,
                 split_size: Sequence[int] = (2, 4), shift_size: Sequence[int] = (1, 2),
                 expansion_factor: float = 4.0, qkv_bias: bool = False,
                 qk_scale: float | None = None, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0, rg_idx: int = 0, b_idx: int = 0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        if b_idx % 2 == 0:
            self.attn = AdaptiveSpatialAttention(dim, num_heads, reso, split_size, shift_size,
                                                 qkv_bias, qk_scale, drop, attn_drop,
                                                 shifted=is_shifted(rg_idx, b_idx))
        else:
            self.attn = AdaptiveChannelAttention(dim, num_heads, qkv_bias, qk_scale, attn_drop,
                                                 drop)
        self.drop_path = DropPath(drop_path)
        self.ffn = SGFN(dim, int(dim * expansion_factor), dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, x_size: Sequence[int]) -> torch.Tensor:
        h, w = x_size
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.ffn(self.norm2(x), h, w))


@ARCH_REGISTRY.register()
class DAT(ResidualGroupSR):
    """The authors' constructor arguments. ``img_size``: the training patch size; it fixes the
    stored shifted-window masks (``attn_mask_0`` / ``_1``), so loading a released file needs
    the value it was trained with (64 for all of them). ``use_chk`` (the authors' name) or
    ``use_checkpoint``: recompute each block in backward (gradient checkpointing)."""

    contiguous = True  # the authors' current DAT copies tokens to NCHW before each conv

    @classmethod
    def needs(cls, args: dict) -> NetworkNeeds:
        return NetworkNeeds(in_ch=args['in_chans'], out_ch=args['in_chans'],
                            scale=args['upscale'], in_key='in_chans', out_key='in_chans')

    def __init__(self, img_size: int = 64, in_chans: int = 3, embed_dim: int = 180,
                 split_size: Sequence[int] = (2, 4), depth: Sequence[int] = (2, 2, 2, 2),
                 num_heads: Sequence[int] = (2, 2, 2, 2), expansion_factor: float = 4.0,
                 qkv_bias: bool = True, qk_scale: float | None = None, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1,
                 use_chk: bool = False, upscale: int = 2, img_range: float = 1.0,
                 resi_connection: str = '1conv', upsampler: str = 'pixelshuffle',
                 use_checkpoint: bool = False) -> None:
        if upsampler not in ('pixelshuffle', 'pixelshuffledirect'):
            raise ValueError(f"upsampler must be 'pixelshuffle' or 'pixelshuffledirect'; "
                             f"got '{upsampler}'.")
        dpr = torch.linspace(0, drop_path_rate, sum(depth), device='cpu').tolist()
        shift = [split_size[0] // 2, split_size[1] // 2]

        def groups() -> list[nn.Module]:
            return [ResidualGroup(
                [DATB(embed_dim, heads, img_size, split_size, shift, expansion_factor, qkv_bias,
                      qk_scale, drop_rate, attn_drop_rate, dpr[sum(depth[:i]) + j], i, j)
                 for j in range(d)], embed_dim, resi_connection, use_chk or use_checkpoint,
                contiguous=True)
                for i, (d, heads) in enumerate(zip(depth, num_heads))]

        super().__init__(in_chans, embed_dim, groups, upscale, img_range, resi_connection,
                         upsampler)
        self.use_chk = use_chk or use_checkpoint
        self.apply(init_transformer_weights)
