"""Pieces shared by the window-attention transformers (SwinIR, HAT, DRCT, SRFormer, DAT, RGT,
ATD): window partition and its inverse (square or rectangular windows), the relative-position
index and the shifted-window mask of Swin, padding to the window, token <-> image layout,
stochastic depth, the two-layer MLP, Swin's window attention, and gradient checkpointing.

Written once here so that every network computes them in the same order (the authors' code
copies them per repository, with the same arithmetic)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from basicsr_lite.runtime.activation_memory import note_checkpoint_inputs



def to_pair(size: int | Sequence[int]) -> tuple[int, int]:
    """``8`` -> ``(8, 8)``; ``(4, 16)`` stays (height, width)."""
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def window_partition(x: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """(B, H, W, C) -> (B * windows, wh, ww, C), windows in row-major order."""
    wh, ww = to_pair(size)
    b, h, w, c = x.shape
    x = x.view(b, h // wh, wh, w // ww, ww, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, wh, ww, c)


def window_reverse(windows: torch.Tensor, size: int | Sequence[int], h: int,
                   w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * windows, wh, ww, C) -> (B, H, W, C)."""
    wh, ww = to_pair(size)
    b = windows.shape[0] // ((h // wh) * (w // ww))
    x = windows.view(b, h // wh, w // ww, wh, ww, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


def relative_position_index(size: int | Sequence[int]) -> torch.Tensor:
    """(N, N) index into a ((2 wh - 1) * (2 ww - 1), heads) bias table, N = wh * ww (Swin)."""
    wh, ww = to_pair(size)
    coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww),
                                        indexing='ij')).flatten(1)  # 2, N
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += wh - 1
    rel[:, :, 1] += ww - 1
    return rel[:, :, 0] * (2 * ww - 1) + rel[:, :, 1]


def shifted_window_mask(h: int, w: int, size: int | Sequence[int],
                        shift: int | Sequence[int]) -> torch.Tensor:
    """(windows, N, N) additive mask: -100 between positions that come from different regions
    after the cyclic shift, 0 within one region (Swin)."""
    wh, ww = to_pair(size)
    sh, sw = to_pair(shift)
    img_mask = torch.zeros((1, h, w, 1))
    count = 0
    for hs in (slice(0, -wh), slice(-wh, -sh), slice(-sh, None)):
        for wsl in (slice(0, -ww), slice(-ww, -sw), slice(-sw, None)):
            img_mask[:, hs, wsl, :] = count
            count += 1
    windows = window_partition(img_mask, (wh, ww)).reshape(-1, wh * ww)
    mask = windows.unsqueeze(1) - windows.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


def pad_to_multiple(x: torch.Tensor, multiple: int | Sequence[int],
                    mode: str = 'reflect') -> torch.Tensor:
    """Pad (N, C, H, W) at the bottom / right so that H and W are multiples (crop the output
    back with ``[..., :h * scale, :w * scale]``)."""
    mh, mw = to_pair(multiple)
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % mh, (-w) % mw
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return x


def image_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H * W, C)."""
    return x.flatten(2).transpose(1, 2)


def tokens_to_image(x: torch.Tensor, x_size: Sequence[int]) -> torch.Tensor:
    """(B, H * W, C) -> (B, C, H, W)."""
    return x.transpose(1, 2).reshape(x.shape[0], -1, *x_size)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability p."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class Mlp(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout (keys ``fc1`` / ``fc2`` as in Swin)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0,
                 out_dim: int | None = None) -> None:
        super().__init__()
        self.fc1, self.act = nn.Linear(dim, hidden), nn.GELU()
        self.fc2 = nn.Linear(hidden, out_dim or dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window with a learned relative position bias
    (Swin). ``x``: (B * windows, N, C); ``mask``: (windows, N, N) or None."""

    def __init__(self, dim: int, window_size: int | Sequence[int], num_heads: int,
                 qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 index_buffer: bool = True) -> None:
        super().__init__()
        wh, ww = to_pair(window_size)
        self.window_size, self.num_heads = (wh, ww), num_heads
        self.scale = (dim // num_heads)**-0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        if index_buffer:  # HAT keeps one index for all blocks in the network instead
            self.register_buffer('relative_position_index', relative_position_index((wh, ww)))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """(1, heads, N, N) bias gathered from the table."""
        index = self.relative_position_index if index is None else index
        n = index.shape[0]
        bias = self.relative_position_bias_table[index.reshape(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1).contiguous().unsqueeze(0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                index: torch.Tensor | None = None) -> torch.Tensor:
        b_, n, c = x.shape
        qkv = self.qkv(x).reshape(b_, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn + self.position_bias(index)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b_ // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = self.attn_drop(attn.softmax(dim=-1))
        return self.proj_drop(self.proj((attn @ v).transpose(1, 2).reshape(b_, n, c)))


def run_checkpointed(fn: Callable[..., Any], *args: Any, enabled: bool) -> Any:
    """``fn(*args)``, recomputed in backward instead of keeping its activations when ``enabled``
    and gradients are being recorded (``use_checkpoint`` of the transformers). Non-reentrant
    checkpointing: the random state is replayed, so dropout / drop-path give the same masks and
    the gradients equal the plain network's."""
    if not (enabled and torch.is_grad_enabled()):
        return fn(*args)
    note_checkpoint_inputs(args)
    return checkpoint(fn, *args, use_reentrant=False)


def run_blocks(blocks: nn.ModuleList | Sequence[nn.Module], x: torch.Tensor, *args: Any,
               use_checkpoint: bool = False) -> torch.Tensor:
    """``x = block(x, *args)`` for each block, each checkpointed when ``use_checkpoint``."""
    for block in blocks:
        x = run_checkpointed(block, x, *args, enabled=use_checkpoint)
    return x
