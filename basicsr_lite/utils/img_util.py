"""Image <-> tensor conversion and image file I/O.

Conventions (BasicSR's): images in numpy are HWC, BGR, float32 in [0, 1] after reading;
tensors are CHW (or NCHW), RGB, float in [0, 1].
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from basicsr_lite.errors import ImageReadError
from basicsr_lite.utils.files import write_bytes


def img2tensor(imgs: np.ndarray | Sequence[np.ndarray], bgr2rgb: bool = True,
               float32: bool = True) -> torch.Tensor | list[torch.Tensor]:
    """HWC numpy image(s) -> CHW tensor(s)."""

    def _convert(img: np.ndarray) -> torch.Tensor:
        if img.ndim == 2:
            img = img[:, :, None]
        if img.shape[2] == 3 and bgr2rgb:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            if img.ndim == 2:  # cv2 drops a trailing size-1 axis; never the case for 3 channels
                img = img[:, :, None]
        tensor = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        return tensor.float() if float32 else tensor

    if isinstance(imgs, np.ndarray):
        return _convert(imgs)
    return [_convert(img) for img in imgs]


def tensor2img(tensor: torch.Tensor, rgb2bgr: bool = True, out_type: type = np.uint8,
               min_max: tuple[float, float] = (0, 1)) -> np.ndarray:
    """A CHW / 1CHW / HW tensor -> HWC (or HW for one channel) numpy image.

    Values are clamped to ``min_max`` and rescaled to [0, 1]; uint8 output is rounded, as the
    published SR evaluation protocol does.
    """
    tensor = tensor.detach().float().cpu().clamp_(*min_max)
    tensor = (tensor - min_max[0]) / (min_max[1] - min_max[0])
    if tensor.dim() == 4:
        if tensor.size(0) != 1:
            raise ValueError(f'tensor2img takes one image; got a batch of {tensor.size(0)}.')
        tensor = tensor[0]
    if tensor.dim() == 3:
        img = tensor.numpy().transpose(1, 2, 0)
        if img.shape[2] == 1:
            img = img[:, :, 0]
        elif img.shape[2] == 3 and rgb2bgr:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    elif tensor.dim() == 2:
        img = tensor.numpy()
    else:
        raise ValueError(f'tensor2img expects 2, 3 or 4 dims; got shape {tuple(tensor.shape)}.')
    if out_type == np.uint8:
        return (img * 255.0).round().astype(np.uint8)
    return img.astype(out_type)


def imfrombytes(content: bytes, flag: str = 'color', float32: bool = False,
                name: str = '<bytes>') -> np.ndarray:
    """Decode image bytes (BGR for color). ``name`` is used in the error message."""
    flags = {'color': cv2.IMREAD_COLOR, 'grayscale': cv2.IMREAD_GRAYSCALE,
             'unchanged': cv2.IMREAD_UNCHANGED}
    if flag not in flags:
        raise ValueError(f"flag must be one of {sorted(flags)}; got '{flag}'.")
    img = None
    if content:
        img = cv2.imdecode(np.frombuffer(content, np.uint8), flags[flag])
    if img is None:
        raise ImageReadError(f'Cannot decode image {name}: the file is empty, truncated or not '
                             f'an image.')
    if float32:
        img = img.astype(np.float32) / 255.0
    return img


def imread(path: str | Path, flag: str = 'color', float32: bool = False) -> np.ndarray:
    try:
        content = Path(path).read_bytes()
    except OSError as err:
        raise ImageReadError(f'Cannot read image {path}: {err.strerror}.') from err
    return imfrombytes(content, flag, float32, name=str(path))


def png_params(compress_level: int) -> list[int]:
    """cv2.imwrite parameters for PNG at ``compress_level`` with the Sub filter only: with an
    explicit level OpenCV otherwise tries every filter, and Paeth-filtered rows decode about a
    third slower for a few percent smaller files (tools/benchmark_data.py)."""
    params = [cv2.IMWRITE_PNG_COMPRESSION, compress_level]
    if hasattr(cv2, 'IMWRITE_PNG_FILTER'):  # OpenCV >= 4.11
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]
    return params


def write_file_atomically(data: bytes, path: str | Path) -> None:
    """Write ``data`` to ``path``, creating its folder; atomic (``utils.files``, no fsync)."""
    write_bytes(path, data, durable=False)


def imwrite(img: np.ndarray, path: str | Path, params: Sequence[int] | None = None) -> None:
    """Write an image, creating its folder; atomic (temp file + rename)."""
    path = Path(path)
    ok, buf = cv2.imencode(path.suffix or '.png', img, list(params or []))
    if not ok:
        raise OSError(f'Failed to encode image for {path}.')
    write_file_atomically(buf.tobytes(), path)


def rgb2y(img: torch.Tensor) -> torch.Tensor:
    """(N)CHW RGB in [0, 1] -> (N)1HW BT.601 luma in [16/255, 235/255] (MATLAB rgb2ycbcr)."""
    weight = torch.tensor([65.481, 128.553, 24.966], dtype=img.dtype, device=img.device)
    y = torch.tensordot(img.movedim(-3, -1), weight, dims=1).unsqueeze(-3)
    return (y + 16.0) / 255.0


def rgb2ycbcr(img: torch.Tensor) -> torch.Tensor:
    """(N)CHW RGB in [0, 1] -> (N)CHW BT.601 YCbCr, MATLAB's rgb2ycbcr / BasicSR's
    ``rgb2ycbcr_pt``: Y in [16/255, 235/255], Cb and Cr in [16/255, 240/255]."""
    weight = torch.tensor([[65.481, -37.797, 112.0], [128.553, -74.203, -93.786],
                           [24.966, 112.0, -18.214]], dtype=img.dtype, device=img.device)
    bias = torch.tensor([16.0, 128.0, 128.0], dtype=img.dtype, device=img.device)
    return ((torch.tensordot(img.movedim(-3, -1), weight, dims=1) + bias) / 255.0).movedim(-1, -3)


def bgr2y(img: np.ndarray) -> np.ndarray:
    """HWC BGR in [0, 255] (any dtype) -> HW float64 BT.601 luma in [16, 235]."""
    img = img.astype(np.float64) / 255.0
    return img @ np.array([24.966, 128.553, 65.481]) + 16.0


def border_pair(border: int | Sequence[int]) -> tuple[int, int]:
    """A metric's ``crop_border``: one number for both axes, or (height, width)."""
    if isinstance(border, (list, tuple)):
        return int(border[0]), int(border[1])
    return int(border), int(border)


def crop_border(imgs: np.ndarray, border: int | Sequence[int]) -> np.ndarray:
    """HW(C) image(s) without ``border`` pixels on each side (a pair: rows, columns)."""
    bh, bw = border_pair(border)
    return imgs[bh:imgs.shape[0] - bh, bw:imgs.shape[1] - bw, ...]


def psnr_from_mse(mse: float, peak: float) -> float:
    return float('inf') if mse == 0 else 10.0 * math.log10(peak**2 / mse)
