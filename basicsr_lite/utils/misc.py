"""Small helpers: seeding, directory scanning, module auto-import, timestamps."""
from __future__ import annotations

import importlib
import random
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch


def set_random_seed(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def get_time_str() -> str:
    return time.strftime('%Y%m%d_%H%M%S', time.localtime())


def import_modules_with_suffix(package: str, package_dir: str | Path, suffix: str) -> list[str]:
    """Import every ``<package>.<name><suffix>.py`` module so its registrations run.

    This is what makes dropping ``my_arch.py`` into ``archs/`` enough to register ``MyArch``.
    """
    names = sorted(p.stem for p in Path(package_dir).iterdir()
                   if p.is_file() and p.name.endswith(f'{suffix}.py'))
    for name in names:
        importlib.import_module(f'{package}.{name}')
    return names


# .npy: arrays of any band count (read_mode: unchanged)
IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm',
                  '.npy')


def scandir(root: str | Path, suffix: tuple[str, ...] | str | None = None,
            recursive: bool = False) -> Iterator[str]:
    """Yield paths relative to ``root`` of the files below it, sorted, optionally by suffix."""
    root = Path(root)
    if isinstance(suffix, str):
        suffix = (suffix,)
    pattern = '**/*' if recursive else '*'
    for path in sorted(root.glob(pattern)):
        if not path.is_file() or path.name.startswith('.'):
            continue
        if suffix is None or path.suffix.lower() in suffix:
            yield path.relative_to(root).as_posix()


def read_user_text(path: str | Path, what: str, error: type[Exception]) -> str:
    """The UTF-8 text of a file the user named; an unreadable one raises ``error``: 'Cannot
    read <what> <path>: <reason>.'"""
    try:
        return Path(path).read_text(encoding='utf-8')
    except OSError as err:
        raise error(f'Cannot read {what} {path}: {err.strerror}.') from err


def sizeof_fmt(size: float, suffix: str = 'B') -> str:
    for unit in ['', 'K', 'M', 'G', 'T']:
        if abs(size) < 1024.0:
            return f'{size:3.1f} {unit}{suffix}'
        size /= 1024.0
    return f'{size:3.1f} P{suffix}'


def get_rng_state() -> dict:
    """Python, numpy and torch (CPU and CUDA) RNG states in a ``weights_only``-loadable form."""
    np_state = np.random.get_state()
    state = {
        'python': random.getstate(),
        'numpy': [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
