"""The loaders of a run: the training loader (resumable, reproducible) and the eval loaders."""
from __future__ import annotations

import logging
import math

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from basicsr_lite.data import build_dataloader, build_dataset, dataset_phase
from basicsr_lite.data.contract import ScaleVariants, traits_of
from basicsr_lite.data.degrade.scales import scale_label
from basicsr_lite.data.loading.sample_wrappers import SeededSamples, SkipCorruptEval
from basicsr_lite.data.loading.sampler import EnlargedSampler, ShardSampler
from basicsr_lite.errors import UserError
from basicsr_lite.runtime.dist import get_dist_info

logger = logging.getLogger('basicsr_lite')


def build_train_loader(opt: dict, device: torch.device) -> tuple[DataLoader, EnlargedSampler]:
    dataset_opt = opt['datasets']['train']
    rank, world_size = get_dist_info()
    dataset = build_dataset(dataset_opt, 'train', opt['scale'])
    batch_size = dataset_opt['batch_size_per_gpu']
    per_batch = traits_of(dataset).per_batch  # e.g. one scale per batch
    sampler = EnlargedSampler(len(dataset), world_size, rank, dataset_opt['dataset_enlarge_ratio'],
                              seed=opt['manual_seed'], shuffle=dataset_opt['use_shuffle'],
                              with_sample_seeds=True, batch_size=batch_size if per_batch else None)
    if len(sampler) < batch_size:
        raise UserError(f'datasets.train: {len(sampler)} samples per process are fewer than '
                        f'batch_size_per_gpu {batch_size}; raise dataset_enlarge_ratio or lower '
                        f'the batch size.')
    loader = build_dataloader(SeededSamples(dataset, dataset_opt['skip_corrupt']), dataset_opt,
                              'train', sampler, opt['manual_seed'], rank,
                              pin_memory_default=device.type == 'cuda')
    batches_per_epoch = epoch_batches(sampler.num_samples // batch_size,
                                      opt['train'].get('limit_train_batches'))
    total_iter, accumulate = opt['train']['total_iter'], opt['train']['accumulate_grad_batches']
    steps = f' x {accumulate} accumulated' if accumulate > 1 else ''
    logger.info(f"Training statistics: {len(dataset)} images, enlarge ratio "
                f"{dataset_opt['dataset_enlarge_ratio']}, batch {batch_size}{steps} x "
                f'{world_size} process(es), {batches_per_epoch / accumulate:g} iters per epoch, '
                f'{total_iter} iters = {math.ceil(total_iter * accumulate / batches_per_epoch)} '
                f'epochs.')
    return loader, sampler


def epoch_batches(full: int, limit: int | float | None) -> int:
    """Batches in a training epoch: all ``full`` ones, or ``train.limit_train_batches`` (a
    count, or a fraction in (0, 1] of ``full``, rounded up; at least one batch)."""
    if limit is None:
        return full
    # (rounded first: 0.07 * 100 is 7.000000000000001 in floats, which ceil would make 8)
    count = limit if isinstance(limit, int) else math.ceil(round(limit * full, 9))
    return max(1, min(full, count))


def build_eval_loaders(opt: dict, phases: tuple[str, ...]) -> dict[str, DataLoader]:
    """Loaders for every dataset of the given phases ('val', 'test'), sharded across ranks."""
    rank, world_size = get_dist_info()
    loaders = {}
    for key, dataset_opt in opt['datasets'].items():
        phase = dataset_phase(key)
        if phase not in phases:
            continue
        for name, dataset in scale_variants(dataset_opt['name'],
                                            build_dataset(dataset_opt, phase, opt['scale'], key)):
            limit = (opt.get('val') or {}).get('limit_batches') if phase == 'val' else None
            if limit is not None and limit < len(dataset):
                dataset = Subset(dataset, range(limit))  # the first images (batch size 1)
            if dataset_opt['skip_corrupt']:
                dataset = SkipCorruptEval(dataset)
            sampler = ShardSampler(len(dataset), world_size, rank) if world_size > 1 else None
            loaders[name] = build_dataloader(dataset, dataset_opt, phase, sampler)
            logger.info(f"Dataset {name} ({key}): {len(dataset)} images.")
    return loaders


def scale_variants(name: str, dataset: Dataset) -> list[tuple[str, Dataset]]:
    """An evaluation set as it is, or, for a multi-scale one, one set per scale, named
    ``<name>_x<scale>`` (each scale is validated and reported on its own)."""
    if not isinstance(dataset, ScaleVariants):
        return [(name, dataset)]
    return [(f'{name}_{scale_label(pair)}', dataset.at_scale(pair)) for pair in dataset.scales]
