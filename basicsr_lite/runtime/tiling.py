"""Inference on images of any size: tiles with context overlap, optional x8 self-ensemble.

Each tile is run with ``overlap`` LQ pixels of context on every side and only its core is
written to the output. For networks whose receptive field fits in the overlap the result is
seamless and equals untiled inference up to float rounding; networks with image-global
statistics (IMDN's contrast attention, RFDN's pooled attention) differ slightly between tiles,
so use a large tile for them. Memory: one tile's activations plus the output.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

# The 8 dihedral transforms: (transpose, flip H, flip W); each is its own inverse up to order.
_ENSEMBLE = [(t, fh, fw) for t in (False, True) for fh in (False, True) for fw in (False, True)]


def _apply(x: torch.Tensor, transpose: bool, flip_h: bool, flip_w: bool) -> torch.Tensor:
    if transpose:
        x = x.transpose(-2, -1)
    dims = [d for d, on in ((-2, flip_h), (-1, flip_w)) if on]
    return x.flip(dims) if dims else x


def _invert(x: torch.Tensor, transpose: bool, flip_h: bool, flip_w: bool) -> torch.Tensor:
    dims = [d for d, on in ((-2, flip_h), (-1, flip_w)) if on]
    x = x.flip(dims) if dims else x
    return x.transpose(-2, -1) if transpose else x


def padded_forward(net: Callable[..., torch.Tensor], multiple: int = 1, scale: float = 1,
                   min_size: int = 1) -> Callable[..., torch.Tensor]:
    """``net`` on inputs padded (reflect, replicate where reflect cannot reach) at the bottom and
    right to sides that are multiples of ``multiple`` and at least ``min_size``, the output
    cropped back to ``scale`` x the input (as BasicSR's SwinIR model pads at test time). ``net``
    itself when nothing needs padding."""
    if multiple <= 1 and min_size <= 1:
        return net

    def forward(x: torch.Tensor, *rest) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h = -(-max(h, min_size) // multiple) * multiple - h
        pad_w = -(-max(w, min_size) // multiple) * multiple - w
        if pad_h or pad_w:
            mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        out = net(x, *rest)
        return out[..., :round(h * scale), :round(w * scale)]

    return forward


def ensemble_forward(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean of the outputs for the 8 flips/transposes of ``x`` (mapped back)."""
    total = None
    for transform in _ENSEMBLE:
        out = _invert(net(_apply(x, *transform)), *transform)
        total = out.float() if total is None else total + out.float()
    return total / len(_ENSEMBLE)


@torch.no_grad()
def tiled_inference(net: Callable[[torch.Tensor], torch.Tensor], lq: torch.Tensor, scale: int,
                    tile: int | None = None,
                    overlap: int = 16, ensemble: bool = False,
                    device: torch.device | None = None, dtype: torch.dtype | None = None,
                    as_uint8: bool = False, out: torch.Tensor | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    clamp: bool = True) -> torch.Tensor:
    """Super-resolve ``lq`` (1CHW, [0, 1], any device) tile by tile.

    ``tile``: core size in LQ pixels (None: the whole image at once); ``overlap``: context
    pixels around each tile; ``device`` / ``dtype``: where and in which precision the network
    runs (the network must already be there);
    ``as_uint8``: return a uint8 CPU tensor (4x less memory than float for big outputs);
    ``out``: a 1C(H*scale)(W*scale) CPU tensor to write into, e.g. a permuted view of an HWC
    numpy image, so that saving needs no copy of a huge output; ``clamp``: to [0, 1] (off for
    normalised data, e.g. per-band mean / std, whose outputs lie outside it).
    Returns 1C(H*scale)(W*scale) on the CPU (``out`` when given).
    """
    device = device or lq.device
    h, w = lq.shape[-2:]
    output = out
    as_uint8 = as_uint8 or (out is not None and out.dtype == torch.uint8)
    tile = tile or max(h, w)
    starts = [(y, x) for y in range(0, h, tile) for x in range(0, w, tile)]
    for i, (y, x) in enumerate(starts):
        y1, x1 = min(y + tile, h), min(x + tile, w)
        cy0, cx0 = max(y - overlap, 0), max(x - overlap, 0)
        cy1, cx1 = min(y1 + overlap, h), min(x1 + overlap, w)
        patch = lq[..., cy0:cy1, cx0:cx1].to(device=device, dtype=dtype or lq.dtype)
        sr = ensemble_forward(net, patch) if ensemble else net(patch)
        core = sr[..., (y - cy0) * scale:(y1 - cy0) * scale,
                  (x - cx0) * scale:(x1 - cx0) * scale].float().cpu()
        if clamp or as_uint8:
            core = core.clamp_(0, 1)
        if output is None:
            out_dtype = torch.uint8 if as_uint8 else torch.float32
            output = torch.empty(1, core.shape[1], h * scale, w * scale, dtype=out_dtype)
        if as_uint8:
            core = core.mul_(255).round_().to(torch.uint8)
        output[..., y * scale:y1 * scale, x * scale:x1 * scale] = core
        if progress is not None:
            progress(i + 1, len(starts))
    return output
