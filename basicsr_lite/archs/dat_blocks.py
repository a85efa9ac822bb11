"""Pieces DAT (Chen et al., ICCV 2023) and RGT (Chen et al., ICLR 2024) share; RGT is built from
DAT's code (zhengchen1999/DAT and zhengchen1999/RGT, basicsr/archs/dat_arch.py, rgt_arch.py):
the spatial-gate FFN (DAT's SGFN, RGT's MLP), the dynamic position bias (CrossFormer's: an MLP
of the offsets, so rectangular windows need no table per shape), attention in rectangular
windows and its two-branch, shifted form (DAT's ``Adaptive_Spatial_Attention`` and RGT's
``L_SA`` before their last mixing step), the residual group and the network frame.

The authors' key names and order of operations are kept (released weights load strictly,
outputs equal theirs); window partition, relative-position index, shifted-window mask, padding
and checkpointing are window_attention.py's."""
from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence

import torch
from torch import nn

from basicsr_lite.archs.arch_util import Upsample
from basicsr_lite.archs.sr_shell import UpsampleOneStep
from basicsr_lite.archs.swinir_arch import residual_conv
from basicsr_lite.archs.window_attention import (image_to_tokens, pad_to_multiple,
                                                 relative_position_index, run_blocks,
                                                 shifted_window_mask, window_partition,
                                                 window_reverse)

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K's mean, as the authors subtract it


def is_shifted(group: int, block: int) -> bool:
    """Whether spatial block ``block`` of residual group ``group`` shifts its windows (the
    authors' rule: blocks 2, 6, 10, ... of even groups, blocks 0, 4, 8, ... of odd ones)."""
    return block % 4 == 0 if group % 2 else block > 0 and (block - 2) % 4 == 0


def window_mask(h: int, w: int, size: Sequence[int], shift: Sequence[int]) -> torch.Tensor:
    """``shifted_window_mask``, also one window tall and several wide (its ``view`` fails there):
    one more row of windows on top, then dropped (regions count from the bottom edge)."""
    if h // size[0] == 1 and w // size[1] > 1:
        return shifted_window_mask(h + size[0], w, size, shift)[w // size[1]:]
    return shifted_window_mask(h, w, size, shift)


def branch_masks(h: int, w: int, split: tuple[int, int],
                 shift: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The masks of both branches ((s0, s1) and (s1, s0) windows) for an h x w (padded) input."""
    return window_mask(h, w, split, shift), window_mask(h, w, split[::-1], shift[::-1])


# The masks every shifted block stores, computed once per network (each block copies them).
_stored_masks = lru_cache(maxsize=4)(lambda reso, split, shift, _device: branch_masks(
    reso, reso, split, shift))


class ImageToTokens(nn.Module):
    """(B, C, H, W) -> (B, H * W, C): ``before_RG.0`` (einops' Rearrange in the authors' code)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return image_to_tokens(x)


class SpatialGate(nn.Module):
    """Halves the channels: the first half times a depthwise 3x3 conv of the normed second."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        b, _, c = x.shape
        x2 = self.norm(x2).transpose(1, 2).contiguous().view(b, c // 2, h, w)
        return x1 * self.conv(x2).flatten(2).transpose(-1, -2).contiguous()


class SGFN(nn.Module):
    """fc1 -> GELU -> spatial gate (halves the width) -> fc2, each followed by dropout."""

    def __init__(self, in_features: int, hidden_features: int | None = None,
                 out_features: int | None = None, drop: float = 0.0) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.sg = SpatialGate(hidden_features // 2)
        self.fc2 = nn.Linear(hidden_features // 2, out_features or in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = self.drop(self.act(self.fc1(x)))
        x = self.drop(self.sg(x, h, w))
        return self.drop(self.fc2(x))


class DynamicPosBias(nn.Module):
    """Bias per head from the (dy, dx) offset through a small MLP (``dim // 4`` wide)."""

    def __init__(self, dim: int, num_heads: int, residual: bool) -> None:
        super().__init__()
        self.residual, self.num_heads, self.pos_dim = residual, num_heads, dim // 4
        self.pos_proj = nn.Linear(2, d := self.pos_dim)
        self.pos1, self.pos2, self.pos3 = (  # LayerNorm, ReLU, Linear
            nn.Sequential(nn.LayerNorm(d), nn.ReLU(inplace=True), nn.Linear(d, out))
            for out in (d, d, num_heads))

    def forward(self, biases: torch.Tensor) -> torch.Tensor:
        pos = self.pos_proj(biases)
        for layer in (self.pos1, self.pos2):
            pos = pos + layer(pos) if self.residual else layer(pos)
        return self.pos3(pos)


class RectWindowAttention(nn.Module):
    """Self-attention in (H_sp, W_sp) windows: (split0, split1) for ``idx`` 0, transposed for 1.
    Takes q, k, v stacked (3, B, H * W, C); returns (B, H, W, C)."""

    def __init__(self, dim: int, idx: int, split_size: Sequence[int] = (8, 8),
                 dim_out: int | None = None, num_heads: int = 6, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, qk_scale: float | None = None,
                 position_bias: bool = True) -> None:
        super().__init__()
        self.dim, self.dim_out, self.num_heads = dim, dim_out or dim, num_heads
        self.split_size, self.idx, self.position_bias = tuple(split_size), idx, position_bias
        self.scale = qk_scale or (dim // num_heads)**-0.5
        self.H_sp, self.W_sp = split_size if idx == 0 else split_size[::-1]
        if position_bias:
            self.pos = DynamicPosBias(dim // 4, num_heads, residual=False)
            dh = torch.arange(1 - self.H_sp, self.H_sp)
            dw = torch.arange(1 - self.W_sp, self.W_sp)
            offsets = torch.stack(torch.meshgrid(dh, dw, indexing='ij')).flatten(1)
            self.register_buffer('rpe_biases', offsets.transpose(0, 1).contiguous().float())
            self.register_buffer('relative_position_index',
                                 relative_position_index((self.H_sp, self.W_sp)))
        self.attn_drop = nn.Dropout(attn_drop)

    def to_windows(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, H * W, C) -> (B * windows, heads, H_sp * W_sp, C / heads)."""
        b, _, c = x.shape
        x = window_partition(x.reshape(b, h, w, c), (self.H_sp, self.W_sp))
        x = x.reshape(-1, self.H_sp * self.W_sp, self.num_heads, c // self.num_heads)
        return x.permute(0, 2, 1, 3).contiguous()

    def forward(self, qkv: torch.Tensor, h: int, w: int,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        b, _, c = qkv[0].shape  # the branches checked that there are h * w tokens
        q, k, v = (self.to_windows(t, h, w) for t in (qkv[0], qkv[1], qkv[2]))
        attn = (q * self.scale) @ k.transpose(-2, -1)
        n = self.H_sp * self.W_sp
        if self.position_bias:
            pos = self.pos(self.rpe_biases)
            bias = pos[self.relative_position_index.view(-1)].view(n, n, -1)
            attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = self.attn_drop(nn.functional.softmax(attn, dim=-1, dtype=attn.dtype))
        x = (attn @ v).transpose(1, 2).reshape(-1, self.H_sp, self.W_sp, c)
        return window_reverse(x, (self.H_sp, self.W_sp), h, w)


class RectWindowBranches(nn.Module):
    """``qkv``, then window attention on each channel half (``attns.0``: split0 x split1, ``.1``:
    split1 x split0) of q, k, v zero-padded to the larger split; ``shifted``: rolled by half a
    window, Swin's masks stored for ``reso``^2 inputs. Subclasses mix in v and end in ``proj``."""

    def __init__(self, dim: int, num_heads: int, reso: int = 64,
                 split_size: Sequence[int] = (8, 8), shift_size: Sequence[int] = (1, 2),
                 qkv_bias: bool = False, qk_scale: float | None = None, drop: float = 0.0,
                 attn_drop: float = 0.0, shifted: bool = False) -> None:
        super().__init__()
        self.dim, self.num_heads, self.patches_resolution = dim, num_heads, reso
        self.split_size, self.shift_size = tuple(split_size), tuple(shift_size)
        if not all(0 <= s < w for s, w in zip(self.shift_size, self.split_size)):
            raise ValueError(f'shift_size {shift_size} must be below split_size {split_size}')
        self.shifted = shifted
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(drop)
        self.attns = nn.ModuleList([
            RectWindowAttention(dim // 2, i, split_size, dim // 2, num_heads // 2, attn_drop,
                                drop, qk_scale) for i in range(2)])
        key = (reso, self.split_size, self.shift_size, str(torch.get_default_device()))
        for i, mask in enumerate(_stored_masks(*key) if shifted else (None, None)):
            self.register_buffer(f'attn_mask_{i}', None if mask is None else mask.clone())

    def calculate_mask(self, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        return branch_masks(h, w, self.split_size, self.shift_size)

    def windows(self, x: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(attention output (B, H * W, C), v as an image (B, C, H, W)) of tokens ``x``."""
        b, length, c = x.shape
        if length != h * w:
            raise ValueError(f'{length} tokens are not a {h} x {w} image')
        qkv = self.qkv(x).reshape(b, -1, 3, c).permute(2, 0, 1, 3)  # 3, B, HW, C
        v = qkv[2].transpose(-2, -1).contiguous().view(b, c, h, w)
        qkv = qkv.reshape(3 * b, h, w, c).permute(0, 3, 1, 2)
        qkv = pad_to_multiple(qkv, max(self.split_size), mode='constant')
        hp, wp = qkv.shape[-2:]
        qkv = qkv.reshape(3, b, c, -1).transpose(-2, -1)  # 3, B, HpWp, C
        half = c // 2
        if not self.shifted:
            x1 = self.attns[0](qkv[:, :, :, :half], hp, wp)
            x2 = self.attns[1](qkv[:, :, :, half:], hp, wp)
        else:
            (t0, t1), grid = self.shift_size, qkv.reshape(3, b, hp, wp, c)
            qkv_0 = torch.roll(grid[..., :half], shifts=(-t0, -t1), dims=(2, 3))
            qkv_1 = torch.roll(grid[..., half:], shifts=(-t1, -t0), dims=(2, 3))
            if self.patches_resolution != hp or self.patches_resolution != wp:
                masks = [m.to(x.device) for m in self.calculate_mask(hp, wp)]
            else:
                masks = [self.attn_mask_0, self.attn_mask_1]
            x1 = self.attns[0](qkv_0.reshape(3, b, hp * wp, half), hp, wp, mask=masks[0])
            x2 = self.attns[1](qkv_1.reshape(3, b, hp * wp, half), hp, wp, mask=masks[1])
            x1 = torch.roll(x1, shifts=(t0, t1), dims=(1, 2))
            x2 = torch.roll(x2, shifts=(t1, t0), dims=(1, 2))
        x1 = x1[:, :h, :w, :].reshape(b, length, half)
        x2 = x2[:, :h, :w, :].reshape(b, length, half)
        return torch.cat([x1, x2], dim=2), v


def tokens_as_image(x: torch.Tensor, x_size: Sequence[int], contiguous: bool) -> torch.Tensor:
    """(B, H * W, C) -> (B, C, H, W) laid out as the authors' einops (a conv's last bits follow
    the strides), made NCHW where their code says ``.contiguous()`` (DAT's does, RGT's not)."""
    b, _, c = x.shape
    x = x.reshape(b, *x_size, c).permute(0, 3, 1, 2)
    return x.contiguous() if contiguous else x


class ResidualGroup(nn.Module):
    """``blocks`` (each ``block(x, x_size)``), a conv (``1conv`` / ``3conv``), plus the input;
    ``use_chk``: each block recomputed in backward (gradient checkpointing, as the authors)."""

    def __init__(self, blocks: Sequence[nn.Module], dim: int, resi_connection: str = '1conv',
                 use_chk: bool = False, contiguous: bool = False) -> None:
        super().__init__()
        self.use_chk, self.contiguous = use_chk, contiguous
        self.blocks = nn.ModuleList(blocks)
        self.conv = residual_conv(dim, resi_connection)

    def forward(self, x: torch.Tensor, x_size: Sequence[int]) -> torch.Tensor:
        y = run_blocks(self.blocks, x, x_size, use_checkpoint=self.use_chk)
        return x + image_to_tokens(self.conv(tokens_as_image(y, x_size, self.contiguous)))


class ResidualGroupSR(nn.Module):
    """The frame of DAT and RGT (the authors' classes): conv_first, ``before_RG`` (tokens,
    LayerNorm), the groups, ``norm``, ``conv_after_body`` plus the shallow features, then
    'pixelshuffle' (conv + LeakyReLU, BasicSR's Upsample, conv_last) or 'pixelshuffledirect'
    (conv + PixelShuffle). Inputs in [0, 1] less the DIV2K mean, times ``img_range``."""

    contiguous = False  # the token-to-image layout of the authors' code (tokens_as_image)

    def __init__(self, in_chans: int, embed_dim: int, groups: Callable[[], list[nn.Module]],
                 upscale: int, img_range: float, resi_connection: str, upsampler: str) -> None:
        super().__init__()
        num_feat, self.img_range, self.upscale, self.upsampler = 64, img_range, upscale, upsampler
        self.mean = torch.tensor(RGB_MEAN if in_chans == 3 else (0.0,)).view(1, -1, 1, 1)
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.before_RG = nn.Sequential(ImageToTokens(), nn.LayerNorm(embed_dim))
        self.layers = nn.ModuleList(groups())
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection)
        if upsampler == 'pixelshuffle':  # else 'pixelshuffledirect'
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1),
                                                      nn.LeakyReLU(inplace=True))
            # upscale 1 builds no upsampling conv, as the authors' Upsample (restoration)
            self.upsample = Upsample(upscale, num_feat) if upscale > 1 else nn.Sequential()
            self.conv_last = nn.Conv2d(num_feat, in_chans, 3, 1, 1)
        else:
            self.upsample = UpsampleOneStep(upscale, embed_dim, in_chans)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x_size = tuple(x.shape[2:])
        x = self.before_RG(x)
        for layer in self.layers:
            x = layer(x, x_size)
        return tokens_as_image(self.norm(x), x_size, self.contiguous)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.mean.to(x)
        x = self.conv_first((x - mean) * self.img_range)
        x = self.conv_after_body(self.forward_features(x)) + x
        if self.upsampler == 'pixelshuffle':
            x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        else:
            x = self.upsample(x)
        return x / self.img_range + mean
