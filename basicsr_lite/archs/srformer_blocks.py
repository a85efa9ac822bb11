"""SRFormer's own pieces (Zhou et al., ICCV 2023; HVision-NKU/SRFormer
``basicsr/archs/srformer_arch.py``): permuted self-attention (PSA), its attention mask and
position index over the compressed keys, the depthwise-conv FFN, and the blocks / groups built
from them. Window partition, token layout, drop path and checkpointing come from
:mod:`basicsr_lite.archs.window_attention`.

PSA keeps the queries at full resolution (N = ws * ws tokens per window, C channels) but
projects keys and values to C / 4 channels each and folds every 2 x 2 neighbourhood into one
token of C channels (its four pixels' channels side by side): N / 4 keys of C channels, so a
window attends N x N / 4 pairs, which pays for windows of 24 where SwinIR uses 8.

The authors' identity modules (``emptyModule`` hooks for their power-spectrum figures) have no
parameters and are left out; attribute names are theirs, so state-dict keys match.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch
from torch import nn

from basicsr_lite.archs.window_attention import (DropPath, image_to_tokens,
                                                 relative_position_index, run_blocks,
                                                 tokens_to_image, window_partition,
                                                 window_reverse)
from basicsr_lite.archs.swinir_arch import residual_conv


@lru_cache(maxsize=8)
def permuted_position_index(window_size: int) -> torch.Tensor:
    """(ws^2, (ws/2)^2) index into the bias table of the compressed window: the query at (y, x)
    takes the Swin index of the compressed token (y // 2, x // 2) against each compressed key.
    Made on the CPU (also inside a meta-device build: an index, not a parameter); cached."""
    p = window_size // 2
    with torch.device('cpu'):
        index = relative_position_index(p).view(p, 1, p, 1, p * p)
    return index.expand(p, 2, p, 2, p * p).reshape(4 * p * p, p * p)


def _region_labels(h: int, w: int, h_slices: Sequence[slice],
                   w_slices: Sequence[slice]) -> torch.Tensor:
    labels = torch.zeros((1, h, w, 1), device='cpu')
    count = 0
    for hs in h_slices:
        for wsl in w_slices:
            labels[:, hs, wsl, :] = count
            count += 1
    return labels


@lru_cache(maxsize=32)  # every shifted block of a network, and every tile of an image, shares it
def permuted_window_mask(h: int, w: int, window_size: int, shift: int) -> torch.Tensor:
    """(windows, ws^2, (ws/2)^2) additive mask of the shifted PSA: -100 where a query's region
    (Swin's three bands per axis after the cyclic shift) differs from the compressed key's.

    The compressed keys' bands are cut on the half-size grid at ``-ws/2`` and ``(-shift) // 2``
    (Python's floor, as the authors' current file writes ``-self.shift_size // 2``, and
    spandrel_extra_arches with it; an earlier version of their file cut at ``-shift`` in height
    and at ``-ws/2`` in width). Cached: callers must not modify it in place."""
    p, half_shift = window_size // 2, -shift // 2
    bands = (slice(0, -window_size), slice(-window_size, -shift), slice(-shift, None))
    half_bands = (slice(0, -p), slice(-p, half_shift), slice(half_shift, None))
    queries = window_partition(_region_labels(h, w, bands, bands), window_size)
    keys = window_partition(_region_labels(h // 2, w // 2, half_bands, half_bands), p)
    mask = queries.view(-1, window_size * window_size).unsqueeze(2) - \
        keys.view(-1, p * p).unsqueeze(1)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


class PSA(nn.Module):
    """Permuted self-attention in one window. ``x``: (B * windows, N, C), N = ws^2; ``mask``:
    (windows, N, N / 4) or None. The bias table is over the compressed (ws / 2) window."""

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        p = window_size // 2
        self.window_size, self.permuted_window_size = window_size, p
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads)**-0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * p - 1) * (2 * p - 1), num_heads))
        self.register_buffer('aligned_relative_position_index',
                             permuted_position_index(window_size).clone())
        self.kv = nn.Linear(dim, dim // 2, bias=qkv_bias)  # C/4 for keys, C/4 for values
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b_, n, c = x.shape
        p, heads = self.permuted_window_size, self.num_heads
        # (b_, p, 2, p, 2, [k|v], C/4) -> one token per 2x2 cell: its 4 pixels' C/4 side by side
        kv = self.kv(x).reshape(b_, p, 2, p, 2, 2, c // 4).permute(0, 1, 3, 5, 2, 4, 6)
        k, v = kv.reshape(b_, n // 4, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
        q = self.q(x).reshape(b_, n, 1, heads, c // heads).permute(2, 0, 3, 1, 4)[0]
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (b_, heads, N, N/4)
        bias = self.relative_position_bias_table[self.aligned_relative_position_index.view(-1)]
        attn = attn + bias.view(n, n // 4, -1).permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b_ // nw, nw, heads, n, n // 4) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, heads, n, n // 4)
        attn = self.attn_drop(attn.softmax(dim=-1))
        return self.proj_drop(self.proj((attn @ v).transpose(1, 2).reshape(b_, n, c)))


class DWConv(nn.Module):
    """5x5 depthwise conv + GELU on the token sequence laid out as the image."""

    def __init__(self, hidden_features: int) -> None:
        super().__init__()
        self.depthwise_conv = nn.Sequential(
            nn.Conv2d(hidden_features, hidden_features, 5, 1, 2, groups=hidden_features),
            nn.GELU())

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        y = self.depthwise_conv(tokens_to_image(x, x_size).contiguous())
        return image_to_tokens(y).contiguous()


class ConvFFN(nn.Module):
    """fc1 -> GELU -> (+ depthwise conv of itself) -> fc2: the MLP with local mixing."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1, self.act = nn.Linear(dim, hidden), nn.GELU()
        self.dwconv = DWConv(hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        x = self.act(self.fc1(x))
        x = self.drop(x + self.dwconv(x, x_size))
        return self.drop(self.fc2(x))


class PSABlock(nn.Module):
    """Pre-norm PSA (shifted by ws / 2 in odd blocks) and ConvFFN, each with a residual."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int,
                 window_size: int = 7, shift_size: int = 0, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale: float | None = None, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        if min(input_resolution) <= window_size:  # one window covers the training patch
            shift_size, window_size = 0, min(input_resolution)
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = PSA(dim, window_size, num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = ConvFFN(dim, int(dim * mlp_ratio), drop)
        mask = permuted_window_mask(*self.input_resolution, window_size, shift_size).clone() \
            if shift_size > 0 else None
        self.register_buffer('attn_mask', mask)  # persistent: in the released weights

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        h, w = x_size
        b, _, c = x.shape
        ws, shift = self.window_size, self.shift_size
        y = self.norm1(x).view(b, h, w, c)
        if shift:
            y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
        if not shift:
            mask = None
        elif tuple(x_size) == self.input_resolution:
            mask = self.attn_mask
        else:
            mask = permuted_window_mask(h, w, ws, shift).to(x.device)
        y = self.attn(window_partition(y, ws).view(-1, ws * ws, c), mask)
        y = window_reverse(y.view(-1, ws, ws, c), ws, h, w)
        if shift:
            y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x), x_size))


class BasicLayer(nn.Module):
    """``depth`` PSA blocks, alternately plain and shifted; each checkpointed when
    ``use_checkpoint`` (as the authors do, per block)."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int, num_heads: int,
                 window_size: int, mlp_ratio: float, qkv_bias: bool, qk_scale: float | None,
                 drop: float, attn_drop: float, drop_path: Sequence[float],
                 use_checkpoint: bool = False) -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList([
            PSABlock(dim, input_resolution, num_heads, window_size,
                     0 if i % 2 == 0 else window_size // 2, mlp_ratio, qkv_bias, qk_scale,
                     drop, attn_drop, drop_path[i]) for i in range(depth)])

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        return run_blocks(self.blocks, x, x_size, use_checkpoint=self.use_checkpoint)


class PSAGroup(nn.Module):
    """Permuted self-attention group: PSA blocks, a conv on the image layout, plus the input
    (SwinIR's RSTB with PSA blocks)."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int, num_heads: int,
                 window_size: int, mlp_ratio: float, qkv_bias: bool, qk_scale: float | None,
                 drop: float, attn_drop: float, drop_path: Sequence[float],
                 resi_connection: str, use_checkpoint: bool = False) -> None:
        super().__init__()
        self.residual_group = BasicLayer(dim, input_resolution, depth, num_heads, window_size,
                                         mlp_ratio, qkv_bias, qk_scale, drop, attn_drop,
                                         drop_path, use_checkpoint)
        self.conv = residual_conv(dim, resi_connection)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        y = self.conv(tokens_to_image(self.residual_group(x, x_size), x_size))
        return image_to_tokens(y) + x
