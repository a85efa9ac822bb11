"""Dataset wrappers: reproducible training samples, and skipping of corrupt files.

SeededSamples: random crops and flips normally depend on the state of each loader worker's RNG,
which a restart cannot restore. Seeding the RNGs from a per-sample seed chosen by the sampler
makes every sample reproducible whatever the number of workers, and after any resume.
"""
from __future__ import annotations

import contextlib
import logging
import random
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from basicsr_lite.errors import DataError, ImageReadError

logger = logging.getLogger('basicsr_lite')

MAX_CONSECUTIVE_CORRUPT = 100


@contextlib.contextmanager
def _isolated_rng() -> Iterator[None]:
    """In the main process (no workers), keep the training RNG streams untouched."""
    if get_worker_info() is not None:
        yield
        return
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def seed_all(seed: int) -> None:
    """Seed the CPU streams a sample is drawn with. Not ``torch.manual_seed``: it also seeds
    every accelerator's generators (0.6 ms per sample, and in the main process it would reseed
    the training's CUDA stream, which :func:`_isolated_rng` does not restore)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)


class SeededSamples(Dataset):
    """Wraps a dataset indexed by ``(index, seed)`` pairs (see EnlargedSampler); items
    ``(index, seed, batch_seed, epoch)`` first tell the dataset its batch
    (``begin_batch_sample``).

    With ``skip_corrupt``, an unreadable image is logged and replaced by the next index; each item
    then carries ``corrupt_skipped``, the number of files skipped to produce it.
    """

    def __init__(self, dataset: Dataset, skip_corrupt: bool = False) -> None:
        self.dataset = dataset
        self.skip_corrupt = skip_corrupt

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, ...]) -> dict:
        index, seed, *batch = item  # (batch seed, epoch) for datasets with per-batch choices
        if batch:
            self.dataset.begin_batch_sample(*batch)
        with _isolated_rng():
            for skipped in range(MAX_CONSECUTIVE_CORRUPT):
                seed_all(seed + skipped)
                try:
                    sample = self.dataset[(index + skipped) % len(self.dataset)]
                except ImageReadError as err:
                    if not self.skip_corrupt:
                        raise
                    logger.warning(f'Skipping a corrupt training image (skip_corrupt): {err}')
                    continue
                if self.skip_corrupt:
                    sample['corrupt_skipped'] = skipped
                return sample
        raise DataError(f'{MAX_CONSECUTIVE_CORRUPT} consecutive training images are unreadable '
                        f'(starting at index {index}); check the dataset.')


class SkipCorruptEval(Dataset):
    """For validation/test sets with ``skip_corrupt``: an unreadable image becomes an item
    ``{'corrupt': message}`` that the validation loop counts and skips."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        try:
            return self.dataset[index]
        except ImageReadError as err:
            logger.warning(f'Skipping a corrupt image (skip_corrupt): {err}')
            return {'corrupt': str(err)}
