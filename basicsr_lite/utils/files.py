"""The one atomic file writer (temp file beside the target, fsync, rename) and the clean-up of
the temp files that interrupted writes leave behind."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import BinaryIO, Callable

from basicsr_lite.errors import UserError

TEMP_MARK = '.tmp'
# Fault-injection hook (tools/fault_injection.py): seconds to wait before each rename, so that a
# SIGKILL can be aimed at the middle of a save.
_DELAY_ENV = 'BASICSR_LITE_FAULT_SAVE_DELAY'


class WriteError(UserError, OSError):
    """A file that could not be written (full disk, no permission, ...); an OSError too, as
    the error it replaces."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform / filesystem
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _test_delay() -> None:
    delay = float(os.environ.get(_DELAY_ENV, 0) or 0)
    if delay > 0:
        time.sleep(delay)


def temp_path(path: Path) -> Path:
    """The temp file an atomic write of ``path`` goes through (hidden, beside it)."""
    return path.with_name(f'.{path.name}{TEMP_MARK}{os.getpid()}')


def atomic_write(path: str | Path, write_fn: Callable[[BinaryIO], object],
                 error: type[UserError] = WriteError, durable: bool = True) -> None:
    """Write ``path`` by calling ``write_fn(file)`` on a temp file beside it, fsync, rename.

    A crash at any moment leaves either the old file or the complete new one, never a partial
    file under the final name. An OSError becomes ``error`` (the caller's kind of file).
    ``durable``: fsync the file and its folder (off for many small files such as images, where
    a crash may lose the newest ones but never leaves a partial one).
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, 'wb') as f:
            write_fn(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
                _test_delay()
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise error(f'Could not write {path}: {err.strerror or err}. Nothing was '
                    f'replaced: the files already there are intact.') from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes, durable: bool = True) -> None:
    """``atomic_write`` of ``data``."""
    atomic_write(path, lambda f: f.write(data), durable=durable)


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temp files of saves that never completed (e.g. the process was killed)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if p.name.startswith('.') and TEMP_MARK in p.name]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def replace_with_link(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source`` (a hard link, else a copy), atomically."""
    temp = target.with_name(f'.{target.name}.link{os.getpid()}')
    temp.unlink(missing_ok=True)
    try:
        os.link(source, temp)
    except OSError:  # no hard links on this file system
        atomic_write(temp, lambda f: f.write(source.read_bytes()))
    os.replace(temp, target)
