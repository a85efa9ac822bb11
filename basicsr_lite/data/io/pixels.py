"""How a dataset turns image files into tensors (``read_mode``):

- ``color`` (BasicSR's): 8-bit, three channels (BGR arrays, RGB tensors) in [0, 1], optionally
  ``mean`` / ``std`` normalised or reduced to the Y channel (``color: y``);
- ``unchanged``: as stored (uint8, uint16 or float32; any number of bands, in the file's
  order), normalised per band by ``normalize`` (:mod:`basicsr_lite.data.io.band_norm`).
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import torch

from basicsr_lite.data.io.band_io import NPY_MAGIC, decode_bands
from basicsr_lite.data.io.band_norm import BandCodec, build_codec, normalize_problems
from basicsr_lite.data.io.scan import png_bit_depth
from basicsr_lite.errors import DataError
from basicsr_lite.utils.img_util import bgr2y, imfrombytes, img2tensor

logger = logging.getLogger('basicsr_lite')

READ_MODES = ('color', 'unchanged')


def pixel_option_problems(options: dict[str, Any],
                          check_files: bool = True) -> list[tuple[str, str]]:
    """``(key, what is wrong)`` for a dataset entry's ``read_mode`` / ``normalize`` / ``mean`` /
    ``std`` / ``color`` combination (``check_files``: read the statistics file it names)."""
    read_mode = options.get('read_mode', 'color')
    if read_mode not in READ_MODES:
        return [('read_mode', f'expected one of {", ".join(READ_MODES)}; got {read_mode!r}.')]
    if read_mode == 'color':
        if options.get('normalize') is not None:
            return [('normalize', 'needs read_mode: unchanged (8-bit color images take mean / '
                                  'std).')]
        return []
    problems = [(key, 'is for 8-bit color images; with read_mode: unchanged use normalize.')
                for key in ('mean', 'std', 'color') if options.get(key) is not None]
    return problems + normalize_problems(options.get('normalize') or {}, check_files)


class PixelReader:
    """Reads one dataset's images and makes their tensors (see the module's docstring)."""

    def __init__(self, read_mode: str = 'color', color: str | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 normalize: dict | None = None) -> None:
        problems = pixel_option_problems(dict(read_mode=read_mode, color=color, mean=mean,
                                              std=std, normalize=normalize))
        if problems:
            raise ValueError(f'{problems[0][0]}: {problems[0][1]}')
        self.read_mode, self.color, self.mean, self.std = read_mode, color, mean, std
        self.normalize = normalize
        self.codec: BandCodec | None = None

    def start(self, file_client, first_path: str, client_key: str, where: str) -> None:
        """With ``read_mode: unchanged``: the pixel type and band count of the first image fix
        the dataset's (every other image must match) and the normalisation."""
        if self.read_mode != 'unchanged':
            return
        img = decode_bands(file_client.get(first_path, client_key), first_path)
        self.codec = build_codec(self.normalize, img.dtype, img.shape[2], where)
        logger.info(f'{where}: {self.codec.describe()}.')

    def load(self, file_client, path: str, client_key: str = 'default') -> np.ndarray:
        """One image as a numpy HWC array (8-bit BGR, or as stored)."""
        if self.codec is None:
            return load_image(file_client, path, client_key)
        img = decode_bands(file_client.get(path, client_key), path)
        self.codec.check(img, path)
        return img

    def to_tensor(self, img: np.ndarray) -> torch.Tensor:
        """A loaded (and cropped) image -> its CHW float32 tensor."""
        if self.codec is not None:
            return self.codec.encode(img)
        return normalize_(img2tensor(to_float(img, self.color)), self.mean, self.std)


def load_image(file_client, path: str, client_key: str = 'default') -> np.ndarray:
    """Read one image as uint8 HWC BGR (grayscale files replicated to 3 channels, as the
    evaluation protocol does). Crop it before :func:`to_float` to convert only what is used."""
    content = file_client.get(path, client_key)
    if content[:len(NPY_MAGIC)] == NPY_MAGIC:
        raise DataError(f'{path} is a numpy array file: read it with read_mode: unchanged.')
    if png_bit_depth(content) == 16:
        _warn_16_bit(path)
    img = imfrombytes(content, name=path)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return img


_warned_16_bit = False


def _warn_16_bit(path: str) -> None:
    """Once per process: 8-bit reading (BasicSR's) of a 16-bit PNG drops its low byte."""
    global _warned_16_bit
    if not _warned_16_bit:
        _warned_16_bit = True
        logger.warning(
            f'{path} is a 16-bit PNG, read as 8-bit (read_mode: color, as BasicSR). Give its '
            f'dataset read_mode: unchanged to keep the 16 bits.')


def to_float(img: np.ndarray, color: str | None = None) -> np.ndarray:
    """uint8 HWC BGR -> float32 in [0, 1]; ``color == 'y'`` gives the HWC BT.601 Y channel."""
    if color == 'y':
        return (bgr2y(img) / 255.0).astype(np.float32)[:, :, None]
    return img.astype(np.float32) / 255.0


def normalize_(tensor, mean, std):
    """In-place ``(tensor - mean) / std`` per channel; a no-op when both are None."""
    if mean is None and std is None:
        return tensor
    mean = mean if mean is not None else [0.0] * tensor.size(0)
    std = std if std is not None else [1.0] * tensor.size(0)
    for channel, m, s in zip(tensor, mean, std):
        channel.sub_(m).div_(s)
    return tensor
