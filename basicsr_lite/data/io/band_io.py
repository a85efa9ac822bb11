"""Images as stored: any bit depth (uint8, uint16, float32) and any number of bands.

Arrays are HWC in the file's band order (R, G, B[, A or NIR] for PNG / TIFF; as saved for
``.npy``), unlike the 8-bit pipeline's BGR arrays. OpenCV reads and writes PNG (8/16 bit) and
TIFF (8/16 bit, float32) with 1, 3 or 4 bands; ``.npy`` holds any dtype and any number of bands.
"""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

from basicsr_lite.errors import ImageReadError
from basicsr_lite.utils.img_util import png_params, write_file_atomically

NPY_MAGIC = b'\x93NUMPY'
DTYPES = (np.uint8, np.uint16, np.float32)
CV2_BANDS = (1, 3, 4)  # the band counts OpenCV's PNG / TIFF codecs take


def _swap_rb(img: np.ndarray) -> np.ndarray:
    """RGB(A) <-> BGR(A): OpenCV's order in memory is the reverse of the file's first three."""
    if img.shape[2] in (3, 4):
        img = img[:, :, [2, 1, 0, *range(3, img.shape[2])]]
    return img


def decode_bands(content: bytes, name: str = '<bytes>') -> np.ndarray:
    """Decode an image file's bytes as stored: HWC (a band axis even for one band), file order."""
    img = None
    if content[:6] == NPY_MAGIC:
        try:
            img = np.load(io.BytesIO(content), allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise ImageReadError(f'Cannot decode array {name}: {err}.') from err
        if img.ndim not in (2, 3):
            raise ImageReadError(f'{name} holds an array of shape {img.shape}; expected HW or '
                                 f'HWC.')
    elif content:
        img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is not None and img.ndim == 3:
            img = _swap_rb(img)
    if img is None:
        raise ImageReadError(f'Cannot decode image {name}: the file is empty, truncated or not '
                             f'an image.')
    if img.dtype not in DTYPES:
        raise ImageReadError(f'{name} has pixels of type {img.dtype}; expected one of '
                             f'{", ".join(np.dtype(d).name for d in DTYPES)}.')
    return img[:, :, None] if img.ndim == 2 else img


def read_bands(path: str | Path) -> np.ndarray:
    """:func:`decode_bands` of a file."""
    try:
        content = Path(path).read_bytes()
    except OSError as err:
        raise ImageReadError(f'Cannot read image {path}: {err.strerror}.') from err
    return decode_bands(content, str(path))


def lossless_suffix(img: np.ndarray) -> str:
    """The file type that stores ``img`` exactly: PNG for 8/16 bit, TIFF for float32 (both with
    1, 3 or 4 bands), ``.npy`` otherwise."""
    if img.shape[2] in CV2_BANDS:
        if img.dtype in (np.uint8, np.uint16):
            return '.png'
        if img.dtype == np.float32:
            return '.tif'
    return '.npy'


def encode_bands(img: np.ndarray, suffix: str, params: list[int] | None = None) -> bytes:
    """The bytes of ``img`` (HWC, file order) as a ``suffix`` file ('.png', '.tif', '.npy')."""
    if img.ndim == 2:
        img = img[:, :, None]
    if suffix == '.npy':
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(img), allow_pickle=False)
        return buffer.getvalue()
    dtypes = DTYPES if suffix in ('.tif', '.tiff') else (np.uint8, np.uint16)
    if img.shape[2] not in CV2_BANDS or img.dtype not in dtypes:
        raise ValueError(f'A {suffix} file cannot hold {img.shape[2]} bands of {img.dtype} '
                         f'exactly; use {lossless_suffix(img)}.')
    ok, buf = cv2.imencode(suffix, np.ascontiguousarray(_swap_rb(img)), list(params or []))
    if not ok:
        raise ValueError(f'OpenCV could not encode a {img.shape} {img.dtype} image as {suffix}.')
    return buf.tobytes()


def write_bands(img: np.ndarray, path: str | Path, params: list[int] | None = None) -> Path:
    """Write ``img`` to ``path`` (its suffix picks the format), atomically; returns the path."""
    path = Path(path)
    write_file_atomically(encode_bands(img, path.suffix.lower(), params), path)
    return path


def write_lossless(img: np.ndarray, stem: str | Path, png_level: int | None = None) -> Path:
    """Write ``img`` to ``stem`` + the suffix that holds it exactly (:func:`lossless_suffix`);
    PNGs at zlib level ``png_level``. Returns the path written."""
    stem = Path(stem)
    suffix = lossless_suffix(img if img.ndim == 3 else img[:, :, None])
    params = png_params(png_level) if suffix == '.png' and png_level is not None else None
    return write_bands(img, stem.with_name(stem.name + suffix), params)


def npy_shape(header: bytes) -> tuple[int, int] | None:
    """(height, width) from the first bytes of a ``.npy`` file; None if it is not one."""
    if header[:6] != NPY_MAGIC:
        return None
    try:
        stream = io.BytesIO(header)
        version = np.lib.format.read_magic(stream)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            return None
        shape = read_header(stream)[0]
    except (ValueError, EOFError):
        return None
    return tuple(shape[:2]) if len(shape) in (2, 3) else None
