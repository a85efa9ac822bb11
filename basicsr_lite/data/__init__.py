"""Datasets (every ``*_dataset.py`` here registers in DATASET_REGISTRY) and loader building.

By topic: ``contract.py`` (what a dataset gives the framework), ``io/`` (reading files, pixel
formats), ``degrade/`` (degradations), ``loading/`` (samplers, wrappers, loaders, prefetchers);
``transforms.py`` holds the crops and flips datasets apply to their samples.
"""
from __future__ import annotations

import functools
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from basicsr_lite.data.contract import RUN_VALUES, constructor_keys
from basicsr_lite.data.loading.selection import select_images
from basicsr_lite.errors import rejected_options
from basicsr_lite.registry import DATASET_REGISTRY
from basicsr_lite.utils.misc import import_modules_with_suffix

import_modules_with_suffix(__name__, Path(__file__).parent, '_dataset')

# Keys of a ``datasets.<phase>`` entry that configure the loader; all others go to the dataset.
LOADER_KEYS = frozenset({
    'name', 'type', 'use_shuffle', 'num_worker_per_gpu', 'batch_size_per_gpu',
    'dataset_enlarge_ratio', 'prefetch_mode', 'pin_memory', 'persistent_workers',
    'prefetch_factor', 'skip_corrupt', 'max_images', 'split'})


def dataset_phase(key: str) -> str:
    """The phase of a ``datasets`` key: 'train', 'val' / 'val_2' -> 'val', 'test_x' -> 'test'."""
    return key.split('_')[0]


def dataset_kwargs(dataset_opt: dict, phase: str, scale: int) -> dict:
    """The constructor's keyword arguments: the entry's dataset keys, and the run values
    (:data:`~basicsr_lite.data.contract.RUN_VALUES`) the class takes."""
    kwargs = {k: v for k, v in dataset_opt.items() if k not in LOADER_KEYS}
    takes = constructor_keys(DATASET_REGISTRY.get(dataset_opt['type']))
    run_values = dict(zip(RUN_VALUES, (scale, phase)))
    kwargs.update({key: value for key, value in run_values.items() if key in takes})
    return kwargs


def build_dataset(dataset_opt: dict, phase: str, scale: int, key: str | None = None) -> Dataset:
    """Build the dataset of a ``datasets.<key>`` option entry (phase: 'train', 'val', 'test')."""
    cls = DATASET_REGISTRY.get(dataset_opt['type'])
    with rejected_options(f"datasets.{key or phase} ({dataset_opt['type']})"):
        dataset = cls(**dataset_kwargs(dataset_opt, phase, scale))
    return select_images(dataset, dataset_opt.get('max_images'), dataset_opt.get('split'),
                         f'datasets.{key or phase}')


def leave_process_group(worker_id: int = 0) -> None:
    """Loader workers get a process group of their own: a stop sent to the run's process group
    (Ctrl+C in a terminal, a scheduler's pre-emption, torchrun forwarding a signal) then reaches
    only the main process, which saves a state and shuts its workers down. In the run's group,
    the workers would die first and the main process fail on its next batch without saving.
    Signals sent to the worker itself (the loader's own shutdown) work as before, and a worker
    still exits when its parent is gone (PyTorch's watchdog)."""
    os.setpgid(0, 0)


def seed_worker(worker_id: int, num_workers: int, rank: int, seed: int) -> None:
    """Give every loader worker of every rank its own, reproducible random streams (and its own
    process group, see :func:`leave_process_group`)."""
    leave_process_group()
    worker_seed = seed + rank * num_workers + worker_id
    random.seed(worker_seed)
    np.random.seed(worker_seed % (2**32))
    torch.manual_seed(worker_seed)


def build_dataloader(dataset: Dataset, dataset_opt: dict, phase: str,
                     sampler: Sampler | None = None, seed: int = 0, rank: int = 0,
                     pin_memory_default: bool = False) -> DataLoader:
    """Train: ``batch_size_per_gpu`` batches from ``sampler``, last partial batch dropped,
    seeded workers kept alive across epochs. Val/test: one image per batch, in order."""
    if phase == 'train':
        num_workers = dataset_opt.get('num_worker_per_gpu', 0)
        kwargs = dict(batch_size=dataset_opt['batch_size_per_gpu'], sampler=sampler,
                      shuffle=False, drop_last=True, num_workers=num_workers)
        if num_workers > 0:
            kwargs['worker_init_fn'] = functools.partial(seed_worker, num_workers=num_workers,
                                                         rank=rank, seed=seed)
            kwargs['persistent_workers'] = dataset_opt.get('persistent_workers', True)
            kwargs['prefetch_factor'] = dataset_opt.get('prefetch_factor', 2)
    else:
        num_workers = dataset_opt.get('num_worker_per_gpu', 0)
        kwargs = dict(batch_size=1, sampler=sampler, shuffle=False, num_workers=num_workers)
        if num_workers > 0:
            kwargs['worker_init_fn'] = leave_process_group
    kwargs['pin_memory'] = dataset_opt.get('pin_memory', pin_memory_default)
    return DataLoader(dataset, **kwargs)
