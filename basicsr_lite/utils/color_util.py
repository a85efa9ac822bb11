"""BT.601 YCbCr <-> RGB / BGR of numpy images with MATLAB's coefficients (``rgb2ycbcr`` /
``ycbcr2rgb``), with BasicSR's names, signatures and numbers (``basicsr/utils/color_util.py``).

Not OpenCV's ``cvtColor(..., COLOR_BGR2YCrCb)``, which is the full-range JPEG conversion.
Input: ``uint8`` in [0, 255] or float (``float32``; also ``float64``) in [0, 1], HWC; the output
has the input's type and range. A ``uint8`` output is rounded and clipped to [0, 255] (BasicSR
casts without clipping, so an out-of-gamut YCbCr triple wraps around there). The torch forms
for NCHW RGB batches are ``img_util.rgb2y`` / ``img_util.rgb2ycbcr`` (``rgb2ycbcr_pt`` here).
"""
from __future__ import annotations

import numpy as np
import torch

from basicsr_lite.utils.img_util import rgb2y, rgb2ycbcr as _rgb2ycbcr_torch

# MATLAB rgb2ycbcr: [Y Cb Cr] = RGB (in [0, 1]) @ RGB_TO_YCBCR + OFFSET (in [0, 255])
RGB_TO_YCBCR = np.array([[65.481, -37.797, 112.0],
                         [128.553, -74.203, -93.786],
                         [24.966, 112.0, -18.214]])
OFFSET = np.array([16.0, 128.0, 128.0])
# MATLAB ycbcr2rgb (its rounded inverse): RGB (in [0, 255]) = YCbCr (in [0, 255]) @
# YCBCR_TO_RGB * 255 + RGB_OFFSET
YCBCR_TO_RGB = np.array([[0.00456621, 0.00456621, 0.00456621],
                         [0.0, -0.00153632, 0.00791071],
                         [0.00625893, -0.00318811, 0.0]])
RGB_OFFSET = np.array([-222.921, 135.576, -276.836])


def _to_unit(img: np.ndarray) -> np.ndarray:
    """Values in [0, 1]: float32 (float64 for float64 input), BasicSR's
    ``_convert_input_type_range``."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / np.float32(255)
    if img.dtype in (np.float32, np.float64):
        return img
    raise TypeError(f'The image must be uint8 in [0, 255] or float32 / float64 in [0, 1]; got '
                    f'{img.dtype}.')


def _from_255(img: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """From the 0..255 scale back to the input's type and range (BasicSR's
    ``_convert_output_type_range``)."""
    if dtype == np.uint8:
        return np.clip(img.round(), 0, 255).astype(np.uint8)
    return (img / 255.0).astype(dtype)


def rgb2ycbcr(img: np.ndarray, y_only: bool = False) -> np.ndarray:
    """HWC RGB -> HWC YCbCr (HW Y with ``y_only``), MATLAB's ``rgb2ycbcr``."""
    pixels = _to_unit(img)
    if y_only:
        out = pixels @ RGB_TO_YCBCR[:, 0] + OFFSET[0]
    else:
        out = pixels @ RGB_TO_YCBCR + OFFSET
    return _from_255(out, img.dtype)


def bgr2ycbcr(img: np.ndarray, y_only: bool = False) -> np.ndarray:
    """HWC BGR -> HWC YCbCr (HW Y with ``y_only``): :func:`rgb2ycbcr` of the reversed
    channels."""
    pixels = _to_unit(img)
    if y_only:
        out = pixels @ RGB_TO_YCBCR[::-1, 0] + OFFSET[0]
    else:
        out = pixels @ RGB_TO_YCBCR[::-1] + OFFSET
    return _from_255(out, img.dtype)


def ycbcr2rgb(img: np.ndarray) -> np.ndarray:
    """HWC YCbCr -> HWC RGB, MATLAB's ``ycbcr2rgb``."""
    out = (_to_unit(img) * 255) @ YCBCR_TO_RGB * 255.0 + RGB_OFFSET
    return _from_255(out, img.dtype)


def ycbcr2bgr(img: np.ndarray) -> np.ndarray:
    """HWC YCbCr -> HWC BGR: :func:`ycbcr2rgb` with the output channels reversed."""
    out = (_to_unit(img) * 255) @ YCBCR_TO_RGB[:, ::-1] * 255.0 + RGB_OFFSET[::-1]
    return _from_255(out, img.dtype)


def rgb2ycbcr_pt(img: torch.Tensor, y_only: bool = False) -> torch.Tensor:
    """NCHW RGB in [0, 1] -> NCHW YCbCr in [0, 1] (N1HW Y with ``y_only``), BasicSR's
    ``rgb2ycbcr_pt``."""
    return rgb2y(img) if y_only else _rgb2ycbcr_torch(img)
