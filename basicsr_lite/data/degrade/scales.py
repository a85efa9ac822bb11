"""Arbitrary (non-integer, asymmetric) scale factors, ArbSR's way.

A scale ``s`` works on a grid of ``step`` LR pixels, the smallest of 1, 2, 5, 10, 20, 50 with
``s * step`` an integer: LR offsets and sizes that are multiples of ``step`` map to whole HR
pixels. LR images are MATLAB bicubic of the HR image cropped (bottom / right) to such a size:
``round(floor(size / step / s) * step * s)`` HR pixels -> ``round(size / s)`` LR pixels, as
ArbSR's ``gen_LR_img.m``. For evaluation, ArbSR then crops the LR image to an even multiple of
``step`` and the HR image to ``round(s * lr_size)`` from the top-left.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from basicsr_lite.data.degrade.imresize import imresize

STEPS = (1, 2, 5, 10, 20, 50)
Pair = tuple[float, float]


def scale_step(scale: float) -> int:
    """The LR grid of ``scale``: the smallest step with ``scale * step`` an integer."""
    for step in STEPS:
        if abs(scale * step - round(scale * step)) < 1e-3:
            return step
    raise ValueError(f'scale {scale} is not a multiple of 1/50 (ArbSR grid steps: '
                     f'{", ".join(map(str, STEPS))}).')


def parse_scales(spec: Any) -> list[Pair]:
    """``[1.5, 2, [2.0, 3.5]]`` (a number: the same for height and width; a pair: (h, w)) or
    ``{min: 1.1, max: 4.0, step: 0.1}`` -> (scale_h, scale_w) pairs, each checked."""
    if isinstance(spec, dict):
        if set(spec) != {'min', 'max', 'step'}:
            raise ValueError(f'a scale range is {{min, max, step}}; got keys {sorted(spec)}.')
        low, high, step = (float(spec[k]) for k in ('min', 'max', 'step'))
        if not (step > 0 and low <= high):
            raise ValueError(f'a scale range needs step > 0 and min <= max; got {spec}.')
        count = int(math.floor((high - low) / step + 1e-6)) + 1
        spec = [round(low + i * step, 6) for i in range(count)]
    if not isinstance(spec, (list, tuple)) or not spec:
        raise ValueError(f'scales must be a non-empty list or {{min, max, step}}; got {spec!r}.')
    pairs = []
    for entry in spec:
        values = entry if isinstance(entry, (list, tuple)) else [entry, entry]
        if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                       for v in values):
            raise ValueError(f'a scale is a number or a [height, width] pair; got {entry!r}.')
        pair = (float(values[0]), float(values[1]))
        if min(pair) < 1:
            raise ValueError(f'scales must be >= 1; got {entry!r}.')
        for value in pair:
            scale_step(value)
        pairs.append(pair)
    return pairs


def is_integer(pair: Pair) -> bool:
    return all(abs(s - round(s)) < 1e-9 for s in pair)


def scale_label(pair: Pair) -> str:
    """'x2', 'x2.5', 'x2x3.5' (asymmetric: height, then width)."""
    parts = [f'{s:g}' for s in pair]
    return f'x{parts[0]}' if parts[0] == parts[1] else f'x{parts[0]}x{parts[1]}'


def lr_crop_size(size: int, scale: float) -> int:
    """The HR size ``gen_LR_img.m`` keeps: the largest whole number of grid steps."""
    step = scale_step(scale)
    return round(math.floor(size / step / scale) * step * scale)


def make_lr(hr: np.ndarray, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """(HR cropped, its MATLAB-bicubic LR) for ``pair``, as ArbSR's ``gen_LR_img.m``."""
    h, w = (lr_crop_size(size, s) for size, s in zip(hr.shape[:2], pair))
    if h == 0 or w == 0:
        raise ValueError(f'an image of {hr.shape[1]}x{hr.shape[0]} is smaller than one grid step '
                         f'at scale {pair}.')
    hr = hr[:h, :w]
    return hr, imresize(hr, 1 / pair[0], output_shape=(round(h / pair[0]), round(w / pair[1])))


def evaluation_crop(lr: np.ndarray, hr: np.ndarray, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """ArbSR's test crop: LR to an even multiple of each axis' step, HR to ``scale`` x that."""
    sizes = []
    for axis, s in enumerate(pair):
        step, lr_size, hr_size = scale_step(s), lr.shape[axis], hr.shape[axis]
        size = lr_size if round(lr_size * s) <= hr_size else math.floor(hr_size / s)
        cropped = size // step * step
        if cropped % 2:
            cropped = size // (2 * step) * 2 * step
        sizes.append(cropped)
    return (lr[:sizes[0], :sizes[1]],
            hr[:round(pair[0] * sizes[0]), :round(pair[1] * sizes[1])])


def border(pair: Sequence[float]) -> tuple[int, int]:
    """ArbSR's metric border for a scale: ``ceil(scale)`` pixels per axis."""
    return math.ceil(pair[0] - 1e-9), math.ceil(pair[1] - 1e-9)
