"""The pieces of OmniSR's omni self-attention group (OSAG); the network is in omnisr_arch.py.

Written from the authors' ops/OSA.py, ops/OSAG.py, ops/esa.py and ops/layernorm.py
(Francis0625/Omni-SR). Attribute names and the indices inside ``nn.Sequential`` are theirs (the
parameter-free reshapes keep their slots), so the released state dicts load key for key. Their
einops rearrangements are written here as reshape / permute; ``reshape`` (not ``view``) keeps
channels_last inputs working.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from basicsr_lite.archs.arch_util import LayerNorm2d, TrimmedESA


class PreNormResidual(nn.Module):
    """``x + fn(norm(x))``: the authors' PreNormResidual (``nn.LayerNorm`` over the last dim of
    window tokens) and Conv_PreNormResidual (``LayerNorm2d`` over NCHW channels) in one."""

    def __init__(self, norm: nn.Module, fn: nn.Module) -> None:
        super().__init__()
        self.norm = norm
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x)) + x


class GatedConvFeedForward(nn.Module):
    """1x1 conv to twice the width, 3x3 depthwise conv, GELU(one half) * other half, 1x1 conv
    (Restormer's gated feed-forward; no biases in OmniSR)."""

    def __init__(self, dim: int, mult: float = 1.0, bias: bool = False) -> None:
        super().__init__()
        hidden = int(dim * mult)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, 1, 1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class SpatialMean(nn.Module):
    """(N, C, H, W) -> (N, C): the mean over the whole (padded) image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class SqueezeExcitation(nn.Module):
    """Channel gate from the image mean; ``gate.1`` / ``gate.3`` are the authors' keys."""

    def __init__(self, dim: int, shrinkage_rate: float = 0.25) -> None:
        super().__init__()
        hidden = int(dim * shrinkage_rate)
        self.gate = nn.Sequential(SpatialMean(), nn.Linear(dim, hidden, bias=False), nn.SiLU(),
                                  nn.Linear(hidden, dim, bias=False), nn.Sigmoid(),
                                  nn.Unflatten(1, (dim, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class MBConv(nn.Module):
    """MaxViT's MBConv as OmniSR uses it (expansion 1, no downsampling): ``x + fn(x)``."""

    def __init__(self, dim: int, expansion_rate: float = 1.0,
                 shrinkage_rate: float = 0.25) -> None:
        super().__init__()
        hidden = int(expansion_rate * dim)
        self.fn = nn.Sequential(
            nn.Conv2d(dim, hidden, 1), nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden), nn.GELU(),
            SqueezeExcitation(hidden, shrinkage_rate), nn.Conv2d(hidden, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) + x


class WindowPartition(nn.Module):
    """NCHW map -> (N, rows, cols, ws, ws, C) groups of ws x ws pixels: adjacent pixels
    (``grid=False``, block attention) or pixels at strides H/ws, W/ws (``grid=True``, a sparse
    grid spanning the image). H and W must be multiples of ``window_size``."""

    def __init__(self, window_size: int, grid: bool) -> None:
        super().__init__()
        self.window_size, self.grid = window_size, grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        ws = self.window_size
        if self.grid:
            return x.reshape(n, c, ws, h // ws, ws, w // ws).permute(0, 3, 5, 2, 4, 1)
        return x.reshape(n, c, h // ws, ws, w // ws, ws).permute(0, 2, 4, 3, 5, 1)


class WindowMerge(nn.Module):
    """The inverse of ``WindowPartition`` with the same ``grid``."""

    def __init__(self, grid: bool) -> None:
        super().__init__()
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, rows, cols, wh, ww, c = x.shape
        order = (0, 5, 3, 1, 4, 2) if self.grid else (0, 5, 1, 3, 2, 4)
        return x.permute(*order).reshape(n, c, rows * wh, cols * ww)


def relative_position_index(window_size: int) -> torch.Tensor:
    """(ws^2, ws^2) index into a (2ws-1)^2 bias table of each pair's (dy, dx) offset."""
    pos = torch.arange(window_size)
    coords = torch.stack(torch.meshgrid(pos, pos, indexing='ij')).flatten(1).t()
    rel = coords[:, None, :] - coords[None, :, :] + (window_size - 1)
    return rel[..., 0] * (2 * window_size - 1) + rel[..., 1]


class Attention(nn.Module):
    """Multi-head self-attention among the ws x ws pixels of each group of a
    (N, rows, cols, ws, ws, C) tensor, plus a learned relative position bias (``with_pe``)."""

    def __init__(self, dim: int, dim_head: int = 32, window_size: int = 7,
                 with_pe: bool = True) -> None:
        super().__init__()
        if dim % dim_head:
            raise ValueError(f'dim {dim} must be a multiple of dim_head {dim_head}.')
        self.heads = dim // dim_head
        self.scale = dim_head ** -0.5
        self.with_pe = with_pe
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim, bias=False))  # key to_out.0 as theirs
        if with_pe:
            self.rel_pos_bias = nn.Embedding((2 * window_size - 1) ** 2, self.heads)
            self.register_buffer('rel_pos_indices', relative_position_index(window_size),
                                 persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, rows, cols, wh, ww, c = x.shape
        tokens = x.reshape(n * rows * cols, wh * ww, c)
        q, k, v = (t.reshape(t.shape[0], wh * ww, self.heads, -1).transpose(1, 2)
                   for t in self.to_qkv(tokens).chunk(3, dim=-1))
        sim = (q * self.scale) @ k.transpose(-2, -1)
        if self.with_pe:
            sim = sim + self.rel_pos_bias(self.rel_pos_indices).permute(2, 0, 1)
        out = (sim.softmax(dim=-1) @ v).transpose(1, 2).reshape(-1, wh, ww, c)
        return self.to_out(out).reshape(n, rows, cols, wh, ww, c)


class ChannelAttention(nn.Module):
    """Attention between the channels of each head (Restormer's transposed attention: q, k
    L2-normalised, a learned temperature per head), over a group of pixels: one ws x ws window
    (``grid=False``) or the pixels at one offset inside every window (``grid=True``). The
    authors' Channel_Attention and Channel_Attention_grid."""

    def __init__(self, dim: int, heads: int, window_size: int = 7, grid: bool = False,
                 bias: bool = False) -> None:
        super().__init__()
        self.heads, self.ps, self.grid = heads, window_size, grid
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, 1, 1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def _group(self, t: torch.Tensor) -> torch.Tensor:
        """(N, heads*d, rows*ps, cols*ps) -> (N, groups, heads, d, pixels per group)."""
        n, c, h, w = t.shape
        ps, heads = self.ps, self.heads
        t = t.reshape(n, heads, c // heads, h // ps, ps, w // ps, ps)
        if self.grid:
            return t.permute(0, 4, 6, 1, 2, 3, 5).reshape(n, ps * ps, heads, c // heads, -1)
        return t.permute(0, 3, 5, 1, 2, 4, 6).reshape(n, -1, heads, c // heads, ps * ps)

    def _ungroup(self, t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        n, c, h, w = shape
        ps, heads, rows, cols = self.ps, self.heads, h // self.ps, w // self.ps
        if self.grid:
            t = t.reshape(n, ps, ps, heads, c // heads, rows, cols).permute(0, 3, 4, 5, 1, 6, 2)
        else:
            t = t.reshape(n, rows, cols, heads, c // heads, ps, ps).permute(0, 3, 4, 1, 5, 2, 6)
        return t.reshape(n, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (self._group(t) for t in self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1))
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1))
        out = (attn * self.temperature).softmax(dim=-1) @ v
        return self.project_out(self._ungroup(out, x.shape))


class OSABlock(nn.Module):
    """Omni self-attention block: MBConv, then block (local window) spatial attention, channel
    attention within windows, grid (image-spanning) spatial attention and channel attention
    across windows, each followed by a gated feed-forward. Indices 1, 3, 7, 9 of ``layer`` are
    the parameter-free window rearrangements, in the authors' slots."""

    def __init__(self, channel_num: int = 64, window_size: int = 8, with_pe: bool = False) -> None:
        super().__init__()
        c, ws = channel_num, window_size

        def spatial() -> nn.Module:
            return PreNormResidual(nn.LayerNorm(c), Attention(c, c // 4, ws, with_pe))

        def channel(grid: bool) -> nn.Module:
            return PreNormResidual(LayerNorm2d(c), ChannelAttention(c, 4, ws, grid))

        def ffn() -> nn.Module:
            return PreNormResidual(LayerNorm2d(c), GatedConvFeedForward(c))

        self.layer = nn.Sequential(
            MBConv(c),
            WindowPartition(ws, grid=False), spatial(), WindowMerge(grid=False), ffn(),
            channel(grid=False), ffn(),
            WindowPartition(ws, grid=True), spatial(), WindowMerge(grid=True), ffn(),
            channel(grid=True), ffn())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class OSAG(nn.Module):
    """Omni self-attention group: ``block_num`` OSA blocks and a 1x1 conv with a residual add,
    then ESA."""

    def __init__(self, channel_num: int = 64, bias: bool = True, block_num: int = 4,
                 window_size: int = 8, pe: bool = False) -> None:
        super().__init__()
        blocks = [OSABlock(channel_num, window_size, pe) for _ in range(block_num)]
        self.residual_layer = nn.Sequential(*blocks, nn.Conv2d(channel_num, channel_num, 1,
                                                               bias=bias))
        self.esa = TrimmedESA(max(channel_num // 4, 16), channel_num)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.esa(self.residual_layer(x) + x)
