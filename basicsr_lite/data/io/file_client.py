"""Storage backends that return the raw bytes of a file (decoding happens in the dataset)."""
from __future__ import annotations

import os
from pathlib import Path

from basicsr_lite.errors import DataError, ImageReadError, OptionError


class DiskBackend:
    """Reads files from a folder on disk."""

    def get(self, path: str, client_key: str = 'default') -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as err:
            raise ImageReadError(f'Cannot read {path}: {err.strerror}.') from err


class LmdbBackend:
    """Reads values from LMDB databases in BasicSR's layout (``<name>.lmdb/`` with ``data.mdb``,
    ``lock.mdb`` and ``meta_info.txt``; keys are file names without extension).

    Databases are opened read-only, without locking or readahead, on first use in each process:
    a DataLoader worker (forked or spawned) never shares an environment with its parent.
    """

    def __init__(self, db_paths: str | list[str], client_keys: str | list[str] = 'default',
                 readonly: bool = True, lock: bool = False, readahead: bool = False) -> None:
        self.db_paths = [str(p) for p in ([db_paths] if isinstance(db_paths, str) else db_paths)]
        keys = [client_keys] if isinstance(client_keys, str) else list(client_keys)
        if len(keys) != len(self.db_paths):
            raise OptionError(f'LMDB backend: {len(self.db_paths)} db_paths but {len(keys)} '
                              f'client_keys.')
        self.paths_by_key = dict(zip(keys, self.db_paths))
        self.open_kwargs = dict(readonly=readonly, lock=lock, readahead=readahead, meminit=False)
        self._envs: dict = {}
        self._pid = -1

    def __getstate__(self) -> dict:  # environments never travel to another process
        return {**self.__dict__, '_envs': {}, '_pid': -1}

    def _env(self, client_key: str):
        import lmdb
        if self._pid != os.getpid():
            self._envs, self._pid = {}, os.getpid()
        if client_key not in self._envs:
            path = self.paths_by_key[client_key]
            try:
                self._envs[client_key] = lmdb.open(path, subdir=True, **self.open_kwargs)
            except lmdb.Error as err:
                raise DataError(f'Cannot open LMDB {path}: {err}') from err
        return self._envs[client_key]

    def get(self, key: str, client_key: str = 'default') -> bytes:
        with self._env(client_key).begin(write=False) as txn:
            value = txn.get(key.encode('utf-8'))
        if value is None:
            raise ImageReadError(f"Key '{key}' is not in LMDB {self.paths_by_key[client_key]}.")
        return bytes(value)


_BACKENDS = {'disk': DiskBackend, 'lmdb': LmdbBackend}


class FileClient:
    """``FileClient('disk').get(path)`` -> bytes. New backends register in ``_BACKENDS``."""

    def __init__(self, backend: str = 'disk', **kwargs) -> None:
        if backend not in _BACKENDS:
            raise OptionError(f"io_backend.type '{backend}' is not supported; "
                              f'available: {sorted(_BACKENDS)}.')
        self.backend = backend
        self.client = _BACKENDS[backend](**kwargs)

    def get(self, path: str, client_key: str = 'default') -> bytes:
        return self.client.get(path, client_key)
