"""Storage backends that return the raw bytes of a file (decoding happens in the dataset)."""
from __future__ import annotations

from pathlib import Path

from basicsr_lite.errors import ImageReadError, OptionError


class DiskBackend:
    """Reads files from a folder on disk."""

    def get(self, path: str, client_key: str = 'default') -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as err:
            raise ImageReadError(f'Cannot read {path}: {err.strerror}.') from err


_BACKENDS = {'disk': DiskBackend}


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


def available_backends() -> list[str]:
    return sorted(_BACKENDS)
