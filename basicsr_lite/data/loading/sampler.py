"""Samplers: the enlarged training sampler and a sharding sampler for validation."""
from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import Sampler


class EnlargedSampler(Sampler[int]):
    """Shuffled indices over ``ratio`` copies of the dataset, split across ``num_replicas``.

    Enlarging an epoch avoids restarting the loader's workers after every pass over a small
    dataset. The order depends only on (seed, epoch), so each rank (and a resumed run) sees the
    same permutation; ``set_epoch(e, start=n)`` skips the first ``n`` indices of the epoch on
    this rank. With ``with_sample_seeds`` it yields ``(index, seed)`` pairs for
    :class:`~basicsr_lite.data.loading.sample_wrappers.SeededSamples`, so that each sample's random
    augmentation is fixed by (seed, epoch, position) too; with ``batch_size`` as well,
    ``(index, seed, batch_seed, epoch)``: one seed shared by the samples of each batch of this
    rank (for what a whole batch shares, e.g. the scale of arbitrary-scale SR).
    """

    def __init__(self, dataset_size: int, num_replicas: int = 1, rank: int = 0, ratio: int = 1,
                 seed: int = 0, shuffle: bool = True, with_sample_seeds: bool = False,
                 batch_size: int | None = None) -> None:
        if dataset_size <= 0:
            raise ValueError('EnlargedSampler needs a non-empty dataset.')
        self.dataset_size, self.num_replicas, self.rank = dataset_size, num_replicas, rank
        self.seed, self.shuffle = seed, shuffle
        self.with_sample_seeds = with_sample_seeds
        self.batch_size = batch_size
        self.epoch, self.start = 0, 0
        self.num_samples = math.ceil(dataset_size * ratio / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def __iter__(self) -> Iterator[int] | Iterator[tuple[int, int]]:
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        if self.shuffle:
            order = torch.randperm(self.total_size, generator=generator)
        else:
            order = torch.arange(self.total_size)
        own = slice(self.rank, self.total_size, self.num_replicas)
        indices = [i % self.dataset_size for i in order[own].tolist()]
        if not self.with_sample_seeds:
            return iter(indices[self.start:])
        seeds = torch.randint(0, 2**31 - 1, (self.total_size,), generator=generator)[own].tolist()
        if self.batch_size is None:
            return iter(list(zip(indices, seeds))[self.start:])
        batches = math.ceil(self.num_samples / self.batch_size)  # per rank, drawn after the rest
        batch_seeds = torch.randint(0, 2**31 - 1, (batches * self.num_replicas,),
                                    generator=generator)[self.rank::self.num_replicas].tolist()
        items = [(index, seed, batch_seeds[position // self.batch_size], self.epoch)
                 for position, (index, seed) in enumerate(zip(indices, seeds))]
        return iter(items[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Start ``epoch`` (its order) at its ``start``-th index on this rank."""
        self.epoch, self.start = epoch, start


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...``: each rank evaluates a disjoint shard, every image
    exactly once across ranks (no padding, unlike DistributedSampler)."""

    def __init__(self, dataset_size: int, num_replicas: int, rank: int) -> None:
        self.indices = list(range(rank, dataset_size, num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
