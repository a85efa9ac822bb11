"""Listing and pairing of LQ/GT files (folder, LMDB, meta_info); decoding is in pixels.py."""
from __future__ import annotations

import os
import re
from pathlib import Path

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
