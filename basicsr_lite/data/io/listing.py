"""Listing and pairing of LQ/GT files (folder mode and meta_info mode)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from basicsr_lite.errors import DataError
from basicsr_lite.utils.misc import IMG_EXTENSIONS, read_user_text, scandir


def paths_from_folder(folder: str) -> list[str]:
    """Absolute-ish paths (folder joined) of the images in ``folder``, sorted."""
    if not Path(folder).is_dir():
        raise DataError(f'Image folder {folder} does not exist.')
    paths = [os.path.join(folder, p) for p in scandir(folder, IMG_EXTENSIONS)]
    if not paths:
        raise DataError(f'Image folder {folder} has no images ({", ".join(IMG_EXTENSIONS)}).')
    return paths


_META_LINE = re.compile(r'^(?P<name>.+?)(?: \((?P<h>\d+),\s*(?P<w>\d+),\s*(?P<c>\d+)\))?'
                        r'(?: (?P<level>\d+))?\s*$')


def read_meta_info_entries(meta_info_file: str | Path) -> list[tuple[str, tuple | None]]:
    """``(name, (h, w, c) or None)`` per non-empty line of a BasicSR meta_info file
    (``<name> (h,w,c) [compress_level]``; names may contain spaces, dots and non-ASCII)."""
    lines = read_user_text(meta_info_file, 'meta_info_file', DataError).splitlines()
    entries = []
    for line in filter(str.strip, lines):
        match = _META_LINE.match(line)
        shape = tuple(int(match[k]) for k in 'hwc') if match['h'] else None
        entries.append((match['name'], shape))
    if not entries:
        raise DataError(f'meta_info_file {meta_info_file} lists no images.')
    return entries


def read_meta_info(meta_info_file: str | Path) -> list[str]:
    """The image names of a meta_info file."""
    return [name for name, _ in read_meta_info_entries(meta_info_file)]


def image_paths(folder: str, meta_info_file: str | None = None) -> list[str]:
    """The images of ``folder``: those listed in ``meta_info_file`` if given, else all."""
    if meta_info_file:
        return [os.path.join(folder, name) for name in read_meta_info(meta_info_file)]
    return paths_from_folder(folder)


def lmdb_keys(lmdb_path: str) -> dict[str, tuple | None]:
    """``{key: (h, w, c)}`` of an LMDB folder, from its ``meta_info.txt`` (key = name without
    extension)."""
    meta = Path(lmdb_path) / 'meta_info.txt'
    if not Path(lmdb_path).is_dir() or not (Path(lmdb_path) / 'data.mdb').is_file():
        raise DataError(f'{lmdb_path} is not an LMDB folder (expected data.mdb and meta_info.txt '
                        f'in it; see tools/create_lmdb.py).')
    if not meta.is_file():
        raise DataError(f'LMDB {lmdb_path} has no meta_info.txt: it was not completely written.')
    return {os.path.splitext(name)[0]: shape for name, shape in read_meta_info_entries(meta)}


def paired_paths_from_lmdb(folders: tuple[str, str], keys: tuple[str, str],
                           lq_keys: dict, gt_keys: dict,
                           filename_tmpl: str = '{}') -> list[dict[str, str]]:
    """Pairs of LMDB keys (``lmdb_keys`` of each folder): GT key ``k`` with LQ key
    ``filename_tmpl.format(k)``."""
    lq_folder, gt_folder = folders
    lq_key, gt_key = keys
    missing = [filename_tmpl.format(k) for k in gt_keys if filename_tmpl.format(k) not in lq_keys]
    if missing:
        raise DataError(f'{len(missing)} key(s) of {gt_folder} have no LQ partner in {lq_folder} '
                        f"(filename_tmpl '{filename_tmpl}'), e.g. {', '.join(missing[:3])}.")
    if len(lq_keys) != len(gt_keys):
        raise DataError(f'{lq_folder} has {len(lq_keys)} keys but {gt_folder} has '
                        f'{len(gt_keys)}; they must pair one to one.')
    return [{f'{lq_key}_path': filename_tmpl.format(k), f'{gt_key}_path': k}
            for k in sorted(gt_keys)]


def paired_paths_from_folder(folders: tuple[str, str], keys: tuple[str, str],
                             filename_tmpl: str = '{}') -> list[dict[str, str]]:
    """Pair each GT image ``name.ext`` with the LQ image ``filename_tmpl.format(name) + ext``.

    ``folders`` and ``keys`` are (lq, gt). A GT image without its LQ partner is an error.
    """
    lq_folder, gt_folder = folders
    lq_key, gt_key = keys
    lq_paths = paths_from_folder(lq_folder)
    gt_paths = paths_from_folder(gt_folder)
    lq_names = {os.path.relpath(p, lq_folder) for p in lq_paths}
    pairs, missing = [], []
    for gt_path in gt_paths:
        rel = os.path.relpath(gt_path, gt_folder)
        stem, ext = os.path.splitext(rel)
        lq_rel = filename_tmpl.format(stem) + ext
        if lq_rel not in lq_names:
            missing.append(lq_rel)
            continue
        pairs.append({f'{lq_key}_path': os.path.join(lq_folder, lq_rel), f'{gt_key}_path': gt_path})
    if missing:
        more = f' and {len(missing) - 5} more' if len(missing) > 5 else ''
        shown = ', '.join(missing[:5]) + more
        raise DataError(f'{len(missing)} GT image(s) in {gt_folder} have no LQ partner in '
                        f"{lq_folder} (filename_tmpl '{filename_tmpl}'): expected {shown}.")
    if len(lq_paths) != len(gt_paths):
        raise DataError(f'{lq_folder} has {len(lq_paths)} images but {gt_folder} has '
                        f'{len(gt_paths)}; the folders must pair one to one.')
    return pairs


def paired_paths_from_meta_info_file(folders: tuple[str, str], keys: tuple[str, str],
                                     meta_info_file: str,
                                     filename_tmpl: str = '{}') -> list[dict[str, str]]:
    """Pairs for the GT names listed in ``meta_info_file`` (LQ named by ``filename_tmpl``)."""
    lq_folder, gt_folder = folders
    lq_key, gt_key = keys
    pairs, missing = [], []
    for gt_name in read_meta_info(meta_info_file):
        stem, ext = os.path.splitext(gt_name)
        lq_path = os.path.join(lq_folder, filename_tmpl.format(stem) + ext)
        gt_path = os.path.join(gt_folder, gt_name)
        missing += [p for p in (lq_path, gt_path) if not os.path.isfile(p)]
        pairs.append({f'{lq_key}_path': lq_path, f'{gt_key}_path': gt_path})
    if missing:
        raise DataError(f'{len(missing)} file(s) listed in {meta_info_file} do not exist, e.g. '
                        f'{", ".join(missing[:3])}.')
    return pairs


def load_image(file_client, path: str, client_key: str = 'default') -> np.ndarray:
    """Read one image as uint8 HWC BGR (grayscale files replicated to 3 channels, as the
    evaluation protocol does). Crop it before :func:`to_float` to convert only what is used."""
    from basicsr_lite.data.io.band_io import NPY_MAGIC
    from basicsr_lite.data.io.scan import png_bit_depth
    from basicsr_lite.utils.img_util import imfrombytes  # cv2 import kept local

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
        import logging
        logging.getLogger('basicsr_lite').warning(
            f'{path} is a 16-bit PNG, read as 8-bit (read_mode: color, as BasicSR). Give its '
            f'dataset read_mode: unchanged to keep the 16 bits.')


def to_float(img: np.ndarray, color: str | None = None) -> np.ndarray:
    """uint8 HWC BGR -> float32 in [0, 1]; ``color == 'y'`` gives the HWC BT.601 Y channel."""
    from basicsr_lite.utils.img_util import bgr2y

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
