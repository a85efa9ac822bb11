"""Writing image folders into LMDB in BasicSR's layout.

``<name>.lmdb/`` holds ``data.mdb``, ``lock.mdb`` and ``meta_info.txt`` with one line
``<key>.png (<h>,<w>,<c>) <compress_level>`` per image; keys are relative paths without extension;
values are PNG bytes. LMDBs made by BasicSR's scripts read here and these read in BasicSR (as long
as the keys have no dots, which BasicSR's reader splits on). Images that PNG cannot hold exactly
(float32, or other than 1, 3 or 4 bands) are stored as TIFF or ``.npy`` bytes, their meta_info
line naming that suffix; datasets read them with ``read_mode: unchanged``.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from basicsr_lite.data.io.band_io import decode_bands, encode_bands, lossless_suffix, read_bands
from basicsr_lite.data.io.listing import read_meta_info_entries
from basicsr_lite.errors import DataError, ImageReadError
from basicsr_lite.utils.img_util import png_params
from basicsr_lite.utils.misc import IMG_EXTENSIONS, get_time_str, scandir

PAGE = 4096
PARTIAL_SUFFIX = '.partial'


@dataclass
class LmdbReport:
    path: Path
    count: int
    data_bytes: int
    map_size: int


def encode_image(path: str, compress_level: int) -> tuple[bytes, str, tuple[int, int, int]]:
    """Decode ``path`` (any format cv2 reads, 8 or 16 bit; float TIFF; .npy) and re-encode it
    losslessly: (bytes, suffix, shape); PNG where it can hold the image."""
    img = read_bands(path)
    suffix = lossless_suffix(img)
    try:
        data = encode_bands(img, suffix, png_params(compress_level) if suffix == '.png' else None)
    except ValueError as err:
        raise ImageReadError(f'Cannot encode {path}: {err}') from err
    return data, suffix, img.shape


def _encode_task(task: tuple[str, str, int]) -> tuple[str, bytes | None, tuple | str]:
    key, path, level = task
    try:
        data, suffix, shape = encode_image(path, level)
    except ImageReadError as err:
        return key, None, str(err)
    return key, data, (suffix, shape)


def folder_keys(folder: str | Path) -> list[tuple[str, str]]:
    """``(key, path)`` for the images below ``folder``: key = relative path without extension."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f'Input folder {folder} does not exist.')
    items, seen = [], {}
    for rel in scandir(folder, IMG_EXTENSIONS, recursive=True):
        key = os.path.splitext(rel)[0]
        if key in seen:
            raise DataError(f'{folder}: {seen[key]} and {rel} would both get the LMDB key '
                            f"'{key}'.")
        seen[key] = rel
        items.append((key, str(folder / rel)))
    if not items:
        raise DataError(f'Input folder {folder} has no images.')
    return items


def _stored_size(key: str, value: bytes) -> int:
    """Bytes LMDB needs for one record: values larger than a page go to overflow pages."""
    return (len(key.encode('utf-8')) + len(value) + 64 + PAGE - 1) // PAGE * PAGE


def _encoded(items: list[tuple[str, str]], compress_level: int,
             workers: int) -> Iterator[tuple[str, bytes, tuple]]:
    """``(key, bytes, (suffix, shape))`` per image, in order; a DataError for an unreadable one."""
    tasks = [(key, path, compress_level) for key, path in items]
    if workers <= 1:
        results: Iterable = map(_encode_task, tasks)
        pool = None
    else:
        pool = multiprocessing.get_context('spawn').Pool(workers)
        results = pool.imap(_encode_task, tasks, chunksize=8)  # ordered
    try:
        for key, data, info_or_error in results:
            if data is None:
                raise DataError(info_or_error)
            yield key, data, info_or_error
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def check_lmdb_target(lmdb_path: str | Path, overwrite: bool = False,
                      compress_level: int = 1) -> None:
    """The checks of a conversion's output and level, to run before any work starts."""
    lmdb_path = Path(lmdb_path)
    if lmdb_path.suffix != '.lmdb':
        raise DataError(f"LMDB path {lmdb_path} must end with '.lmdb'.")
    if lmdb_path.exists() and not overwrite:
        raise DataError(f'{lmdb_path} already exists; use --overwrite to replace it.')
    if not 0 <= compress_level <= 9:
        raise DataError(f'compress_level must be in 0..9; got {compress_level}.')


def make_lmdb_from_folder(folder: str | Path, lmdb_path: str | Path, compress_level: int = 1,
                          workers: int = 1, batch: int = 5000, overwrite: bool = False,
                          verify: bool = False,
                          progress: Callable[[int], None] | None = None) -> LmdbReport:
    """Convert every image below ``folder`` into ``lmdb_path`` (must end in ``.lmdb``).

    The database is built in ``<lmdb_path>.partial`` and renamed only once complete (and
    verified, if asked), so an interrupted conversion never looks finished. An existing
    ``lmdb_path`` is kept unless ``overwrite``; it is then replaced only after the new one is done.
    """
    import lmdb

    lmdb_path = Path(lmdb_path)
    check_lmdb_target(lmdb_path, overwrite, compress_level)
    items = folder_keys(folder)
    partial = lmdb_path.with_name(lmdb_path.name + PARTIAL_SUFFIX)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    map_size, used, total_bytes, meta = 64 * 2**20, 0, 0, []
    env = lmdb.open(str(partial), map_size=map_size)
    try:
        pending: list[tuple[str, bytes]] = []

        def commit() -> None:
            nonlocal map_size, used
            need = used + sum(_stored_size(k, v) for k, v in pending)
            if need * 1.2 + 32 * 2**20 > map_size:  # grow before writing: never MDB_MAP_FULL
                map_size = int(need * 2 + 64 * 2**20)
                env.set_mapsize(map_size)
            with env.begin(write=True) as txn:
                for key, value in pending:
                    txn.put(key.encode('utf-8'), value)
            used = need
            pending.clear()

        for i, (key, data, (suffix, shape)) in enumerate(
                _encoded(items, compress_level, workers), 1):
            pending.append((key, data))
            total_bytes += len(data)
            meta.append(f'{key}{suffix} ({shape[0]},{shape[1]},{shape[2]}) {compress_level}')
            if len(pending) >= batch:
                commit()
            if progress is not None:
                progress(i)
        commit()
        env.sync()
    except BaseException:
        env.close()
        shutil.rmtree(partial, ignore_errors=True)
        raise
    env.close()
    (partial / 'meta_info.txt').write_text('\n'.join(meta) + '\n', encoding='utf-8')
    if verify:
        verify_lmdb(partial)
    _replace_dir(partial, lmdb_path)
    return LmdbReport(lmdb_path, len(meta), total_bytes, map_size)


def _replace_dir(src: Path, dest: Path) -> None:
    old = None
    if dest.exists():
        old = dest.with_name(f'{dest.name}.old-{get_time_str()}')
        os.rename(dest, old)
    os.rename(src, dest)
    if old is not None:
        shutil.rmtree(old)


def verify_lmdb(lmdb_path: str | Path) -> int:
    """Decode every key listed in ``meta_info.txt`` and check its shape; returns the count."""
    import lmdb  # an optional dependency (the lmdb extra): imported where it is used

    entries = read_meta_info_entries(Path(lmdb_path) / 'meta_info.txt')
    env = lmdb.open(str(lmdb_path), readonly=True, lock=False, readahead=False)
    try:
        with env.begin() as txn:
            for name, shape in entries:
                key = os.path.splitext(name)[0]
                value = txn.get(key.encode('utf-8'))
                try:
                    img = decode_bands(bytes(value or b''), key)
                except ImageReadError as err:
                    raise DataError(f"LMDB {lmdb_path}: key '{key}' is missing or undecodable."
                                    ) from err
                got = img.shape
                if shape is not None and got != shape:
                    raise DataError(f"LMDB {lmdb_path}: key '{key}' has shape {got}, "
                                    f'meta_info says {shape}.')
    finally:
        env.close()
    return len(entries)
