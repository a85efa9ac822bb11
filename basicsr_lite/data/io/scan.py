"""Start-up scan of a paired dataset: every size problem is found before the first iteration,
reading only image headers (or an LMDB's meta_info.txt), never decoding images. Files whose
header cannot be read are left to load time (where ``skip_corrupt`` applies)."""
from __future__ import annotations

import struct
from pathlib import Path

from basicsr_lite.data.io.band_io import npy_shape
from basicsr_lite.errors import DataError

HEADER_BYTES = 256 * 1024  # enough to reach a JPEG's SOF marker past typical EXIF blocks
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def png_bit_depth(data: bytes) -> int | None:
    """The bits per sample of a PNG from its first bytes; None if they are not a PNG's."""
    return data[24] if data[:8] == PNG_SIGNATURE and len(data) > 24 else None


def size_from_header(data: bytes) -> tuple[int, int] | None:
    """(height, width) from the first bytes of a PNG, JPEG, BMP or ``.npy`` file; None if
    unknown."""
    if data[:8] == PNG_SIGNATURE and len(data) >= 24:
        width, height = struct.unpack('>II', data[16:24])
        return height, width
    if data[:2] == b'BM' and len(data) >= 26:
        width, height = struct.unpack('<ii', data[18:26])
        return abs(height), width
    if data[:2] == b'\xff\xd8':
        pos = 2
        while pos + 9 <= len(data):
            if data[pos] != 0xFF:
                return None
            marker = data[pos + 1]
            if marker in _JPEG_SOF:
                height, width = struct.unpack('>HH', data[pos + 5:pos + 9])
                return height, width
            pos += 2 + struct.unpack('>H', data[pos + 2:pos + 4])[0]
    return npy_shape(data)


def image_size(path: str) -> tuple[int, int] | None:
    """(height, width) of an image file from its header; None when the header is not PNG, JPEG,
    BMP or ``.npy`` (or is damaged): such files are checked when they are loaded."""
    try:
        with open(path, 'rb') as f:
            return size_from_header(f.read(HEADER_BYTES))
    except OSError as err:
        raise DataError(f'Cannot read image {path}: {err.strerror}.') from err


def check_pair_sizes(pairs: list[tuple[str, tuple, str, tuple]], scale: int,
                     gt_size: int | None, phase: str) -> None:
    """``pairs``: (gt name, (h, w), lq name, (h, w)). Raises DataError listing the problems.

    Train: GT must be exactly ``scale`` x LQ and at least ``gt_size``. Val/test: GT may exceed
    ``scale`` x LQ by less than ``scale`` (not mod-cropped); it is cropped when loaded.
    """
    problems = []
    for gt_name, (gh, gw), lq_name, (lh, lw) in pairs:
        if phase == 'train':
            ok = (gh, gw) == (lh * scale, lw * scale)
        else:
            ok = lh * scale <= gh < (lh + 1) * scale and lw * scale <= gw < (lw + 1) * scale
        if not ok:
            problems.append(f'{lq_name} is {lw}x{lh} but {gt_name} is {gw}x{gh} '
                            f'(expected LQ = GT / {scale})')
        elif gt_size is not None and min(gh, gw) < gt_size:
            problems.append(f'{gt_name} is {gw}x{gh}, smaller than gt_size {gt_size}')
    raise_problems(problems, 'image pair(s)')


def raise_problems(problems: list[str], what: str) -> None:
    """A DataError listing ``problems`` (the first ten), if there are any."""
    if problems:
        shown = '\n  '.join(problems[:10])
        more = f'\n  ... and {len(problems) - 10} more' if len(problems) > 10 else ''
        raise DataError(f'{len(problems)} {what} cannot be used:\n  {shown}{more}')


def scan_disk_pairs(paths: list[dict[str, str]], scale: int, gt_size: int | None,
                    phase: str) -> None:
    pairs = []
    for p in paths:
        gt_shape, lq_shape = image_size(p['gt_path']), image_size(p['lq_path'])
        if gt_shape is not None and lq_shape is not None:
            pairs.append((p['gt_path'], gt_shape, p['lq_path'], lq_shape))
    check_pair_sizes(pairs, scale, gt_size, phase)


def scan_lmdb_pairs(paths: list[dict[str, str]], gt_shapes: dict, lq_shapes: dict,
                    folders: tuple[str, str], scale: int, gt_size: int | None,
                    phase: str) -> None:
    lq_folder, gt_folder = folders
    pairs = []
    for p in paths:
        gt_shape, lq_shape = gt_shapes[p['gt_path']], lq_shapes[p['lq_path']]
        if gt_shape is None or lq_shape is None:
            continue  # a meta_info without shapes: nothing to check without decoding
        pairs.append((f"{Path(gt_folder).name}:{p['gt_path']}", gt_shape[:2],
                      f"{Path(lq_folder).name}:{p['lq_path']}", lq_shape[:2]))
    check_pair_sizes(pairs, scale, gt_size, phase)
