"""MATLAB-compatible bicubic ``imresize`` (numpy).

Matches MATLAB's ``imresize(img, scale, 'bicubic')``: cubic kernel with a = -0.5, kernel widened
by 1/scale when downscaling (antialiasing), symmetric padding, one dimension after the other
(rows first), and for integer input (uint8, uint16) the intermediate result rounded to the
input's type, as MATLAB does.
"""
from __future__ import annotations

import math

import numpy as np


def cubic(x: np.ndarray) -> np.ndarray:
    absx = np.abs(x)
    absx2, absx3 = absx**2, absx**3
    return ((1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1) +
            (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * ((absx > 1) & (absx <= 2)))


def contributions(in_length: int, out_length: int, scale: float,
                  antialiasing: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(weights, indices), each (out_length, taps): output i = sum_j w[i, j] * in[idx[i, j]]."""
    kernel_width = 4.0
    shrink = scale < 1 and antialiasing
    if shrink:
        kernel_width /= scale
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # output pixel centre in input coordinates (1-based)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    distance = u[:, None] - indices
    weights = scale * cubic(distance * scale) if shrink else cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    used = np.any(weights != 0, axis=0)  # drop taps that are zero for every output pixel
    weights, indices = weights[:, used], indices[:, used]
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(indices - 1, 2 * in_length).astype(np.int64)]
    return weights, indices


def _resize_axis(img: np.ndarray, axis: int, out_length: int, scale: float,
                 antialiasing: bool) -> np.ndarray:
    weights, indices = contributions(img.shape[axis], out_length, scale, antialiasing)
    moved = np.moveaxis(img.astype(np.float64), axis, 0)  # (in, ...)
    gathered = moved[indices]  # (out, taps, ...)
    out = np.einsum('ot,ot...->o...', weights, gathered)
    return np.moveaxis(out, 0, axis)


def _to_integer(img: np.ndarray, dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)  # MATLAB rounds half up here
    return np.clip(np.floor(img + 0.5), info.min, info.max).astype(dtype)


def _target(h: int, w: int, scale: float,
            output_shape: tuple[int, int] | None) -> tuple[tuple[int, int], tuple[float, float]]:
    """(output size, per-axis scale): ``ceil(size * scale)`` like MATLAB, or the size given."""
    if output_shape is None:
        return (int(math.ceil(h * scale)), int(math.ceil(w * scale))), (scale, scale)
    return tuple(output_shape), (output_shape[0] / h, output_shape[1] / w)


def imresize(img: np.ndarray, scale: float, antialiasing: bool = True,
             output_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Resize an HW or HWC image by ``scale`` (or to ``output_shape``) like MATLAB.

    Integer in -> the same type out (rounded after each pass); float in -> float64 out.
    """
    h, w = img.shape[:2]
    output_shape, scales = _target(h, w, scale, output_shape)
    is_integer = img.dtype.kind in 'ui'
    out = img
    for axis in (0, 1):
        out = _resize_axis(out, axis, output_shape[axis], scales[axis], antialiasing)
        if is_integer:
            out = _to_integer(out, img.dtype)
    return out


def _weight_matrix(in_length: int, out_length: int, scale: float, antialiasing: bool,
                   dtype, device):
    """The resize along one axis as a dense (out, in) matrix."""
    import torch

    weights, indices = contributions(in_length, out_length, scale, antialiasing)
    rows = np.repeat(np.arange(out_length), weights.shape[1])
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    matrix.index_put_((torch.from_numpy(rows), torch.from_numpy(indices.reshape(-1))),
                      torch.from_numpy(weights.reshape(-1)), accumulate=True)
    return matrix.to(device=device, dtype=dtype)


def imresize_pt(img, scale: float, antialiasing: bool = True,
                output_shape: tuple[int, int] | None = None):
    """Torch version of :func:`imresize` for (..., H, W) tensors, on any device.

    uint8 tensors are resized in float64 and rounded after each pass (bit-exact with the numpy
    version and MATLAB); floating tensors are resized in their own dtype.
    """
    import torch

    h, w = img.shape[-2:]
    output_shape, scales = _target(h, w, scale, output_shape)
    is_uint8 = img.dtype == torch.uint8
    dtype = torch.float64 if is_uint8 else img.dtype
    out = img.to(dtype)
    m_h = _weight_matrix(h, output_shape[0], scales[0], antialiasing, dtype, img.device)
    out = torch.matmul(m_h, out)  # rows first, as MATLAB
    if is_uint8:
        out = torch.floor(out + 0.5).clamp_(0, 255)
    m_w = _weight_matrix(w, output_shape[1], scales[1], antialiasing, dtype, img.device)
    out = torch.matmul(out, m_w.T)
    if is_uint8:
        out = torch.floor(out + 0.5).clamp_(0, 255).to(torch.uint8)
    return out
