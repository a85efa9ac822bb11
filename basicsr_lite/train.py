"""Training entry point: ``python train.py -opt options/train/x.yml [--auto_resume]``."""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Sequence

import torch
from torch.utils.data import DataLoader

from basicsr_lite.data import build_dataloader, build_dataset, dataset_phase
from basicsr_lite.data.prefetcher import build_prefetcher
from basicsr_lite.data.sampler import EnlargedSampler, ShardSampler
from basicsr_lite.engine.dist import (all_gather_tensor_state, barrier, destroy_dist,
                                     get_dist_info, init_dist)
from basicsr_lite.engine.experiment import (check_launcher, copy_option_file, find_resume_state,
                                           load_resume_state, network_file_for_state,
                                           prepare_folder, select_device)
from basicsr_lite.engine.logger import MessageLogger, get_root_logger, init_tb_logger
from basicsr_lite.engine.validate import bicubic_baseline, format_table
from basicsr_lite.errors import UserError
from basicsr_lite.models import build_model
from basicsr_lite.options import dict2str, parse_options
from basicsr_lite.utils.misc import get_rng_state, get_time_str, set_random_seed, set_rng_state

logger = logging.getLogger('basicsr_lite')


@dataclass
class LoopState:
    """Where the loop is: iteration, epoch, and batches already taken from this epoch."""
    current_iter: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0


def build_train_loader(opt: dict, device: torch.device):
    dataset_opt = opt['datasets']['train']
    rank, world_size = get_dist_info()
    dataset = build_dataset(dataset_opt, 'train', opt['scale'])
    sampler = EnlargedSampler(len(dataset), world_size, rank, dataset_opt['dataset_enlarge_ratio'],
                              seed=opt['manual_seed'], shuffle=dataset_opt['use_shuffle'])
    if len(sampler) < dataset_opt['batch_size_per_gpu']:
        raise UserError(f"datasets.train: {len(sampler)} samples per process are fewer than "
                        f"batch_size_per_gpu {dataset_opt['batch_size_per_gpu']}; raise "
                        f'dataset_enlarge_ratio or lower the batch size.')
    loader = build_dataloader(dataset, dataset_opt, 'train', sampler, opt['manual_seed'], rank,
                              pin_memory_default=device.type == 'cuda')
    iters_per_epoch = len(sampler) // dataset_opt['batch_size_per_gpu']
    logger.info(f"Training statistics: {len(dataset)} images, enlarge ratio "
                f"{dataset_opt['dataset_enlarge_ratio']}, batch {dataset_opt['batch_size_per_gpu']}"
                f' x {world_size} process(es), {iters_per_epoch} iters per epoch, '
                f"{opt['train']['total_iter']} iters = "
                f"{math.ceil(opt['train']['total_iter'] / iters_per_epoch)} epochs.")
    return loader, sampler


def build_eval_loaders(opt: dict, phases: tuple[str, ...]) -> dict[str, DataLoader]:
    """Loaders for every dataset of the given phases ('val', 'test'), sharded across ranks."""
    rank, world_size = get_dist_info()
    loaders = {}
    for key, dataset_opt in opt['datasets'].items():
        phase = dataset_phase(key)
        if phase not in phases:
            continue
        dataset = build_dataset(dataset_opt, phase, opt['scale'])
        sampler = ShardSampler(len(dataset), world_size, rank) if world_size > 1 else None
        loaders[dataset_opt['name']] = build_dataloader(dataset, dataset_opt, phase, sampler)
        logger.info(f"Dataset {dataset_opt['name']} ({key}): {len(dataset)} images.")
    return loaders


def save_checkpoint(model, loop: LoopState) -> None:
    """Every rank contributes its RNG state; rank 0 writes the files."""
    rng_states = all_gather_tensor_state(get_rng_state())
    if get_dist_info()[0] == 0:
        logger.info(f'Saving models and training state at iter {loop.current_iter}.')
        model.save(loop.epoch, loop.current_iter, {
            'batches_in_epoch': loop.batches_in_epoch, 'rng_states': rng_states})
    barrier()


def restore(model, opt: dict, state_path) -> LoopState:
    state = load_resume_state(state_path)
    net_path = network_file_for_state(state_path, state['iter'], opt['path']['models'])
    model.load_network(model.net_g, str(net_path), strict=True, param_key='params')
    model.load_ema_weights(str(net_path))
    model.resume_training(state)
    rank = get_dist_info()[0]
    if rank < len(state.get('rng_states', [])):
        set_rng_state(state['rng_states'][rank])
    logger.info(f"Resumed from {state_path}: epoch {state['epoch']}, iter {state['iter']}.")
    return LoopState(state['iter'], state['epoch'], state.get('batches_in_epoch', 0))


def train_loop(model, opt: dict, loop: LoopState, loader, sampler, val_loaders, tb_logger) -> None:
    train_opt, log_opt, val_opt = opt['train'], opt['logger'], opt['val']
    total_iter, batch_size = train_opt['total_iter'], opt['datasets']['train']['batch_size_per_gpu']
    sampler.set_epoch(loop.epoch, start=loop.batches_in_epoch * batch_size)
    prefetcher = build_prefetcher(loader, opt['datasets']['train']['prefetch_mode'], model.device)
    msg_logger = MessageLogger(opt['name'], total_iter, loop.current_iter, tb_logger)
    iter_time = data_time = 0.0
    tick = time.perf_counter()
    while loop.current_iter < total_iter:
        batch = prefetcher.next()
        if batch is None:  # end of the epoch
            loop.epoch, loop.batches_in_epoch = loop.epoch + 1, 0
            sampler.set_epoch(loop.epoch)
            prefetcher.reset()
            continue
        data_time += time.perf_counter() - tick
        loop.current_iter, loop.batches_in_epoch = loop.current_iter + 1, loop.batches_in_epoch + 1
        it = loop.current_iter
        model.update_learning_rate(it, train_opt['warmup_iter'])
        model.feed_data(batch)
        model.optimize_parameters(it)
        iter_time += time.perf_counter() - tick
        if it % log_opt['print_freq'] == 0:
            n = log_opt['print_freq']
            msg_logger({'epoch': loop.epoch, 'iter': it, 'lrs': model.get_current_learning_rate(),
                        'time': iter_time / n, 'data_time': data_time / n,
                        **model.get_current_log()})
            iter_time = data_time = 0.0
        if it % log_opt['save_checkpoint_freq'] == 0:
            save_checkpoint(model, loop)
        # The final iteration is validated by final_report, next to the bicubic baseline.
        if val_opt is not None and it % val_opt['val_freq'] == 0 and it < total_iter:
            for name, val_loader in val_loaders.items():
                model.validation(val_loader, name, it, tb_logger, val_opt['save_img'])
        tick = time.perf_counter()


def final_report(model, opt: dict, val_loaders, tb_logger) -> None:
    """Validate the final model and print it next to bicubic upsampling of the same images."""
    if opt['val'] is None or not val_loaders:
        return
    metrics_opt = opt['val']['metrics']
    for name, val_loader in val_loaders.items():
        ours = model.validation(val_loader, name, opt['train']['total_iter'], tb_logger,
                                opt['val']['save_img'])
        if not ours.means:  # no metrics, or no GT images to score against
            continue
        bicubic = bicubic_baseline(val_loader, name, opt['scale'], metrics_opt)
        table = format_table({'model': ours.means, 'bicubic': bicubic.means})
        logger.info(f'Final validation on {name} ({len(ours.rows)} images):\n{table}')


def setup(opt: dict, args) -> tuple[torch.device, object]:
    """Distributed init, device, folders, logger, seed; returns (device, resume state path)."""
    check_launcher(opt)
    device = select_device(opt)  # before any collective: a config error is not a hang
    if opt['dist']:
        init_dist(opt['launcher'], opt['dist_params']['backend'], opt['dist_params']['port'])
    opt['rank'], opt['world_size'] = get_dist_info()
    state_path = find_resume_state(opt)
    if opt['rank'] == 0:
        prepare_folder(opt['path']['experiments_root'], keep_existing=state_path is not None)
        for key in ('models', 'training_states'):
            os.makedirs(opt['path'][key], exist_ok=True)
        copy_option_file(opt, resuming=state_path is not None)
    barrier()
    log_file = os.path.join(opt['path']['log'], f"train_{opt['name']}_{get_time_str()}.log")
    get_root_logger(log_file, opt['rank'])
    logger.info(f'basicsr_lite, torch {torch.__version__}, device {device}, '
                f"world size {opt['world_size']}\n{dict2str(opt)}")
    set_random_seed(opt['manual_seed'] + opt['rank'])
    return device, state_path


def train_pipeline(argv: Sequence[str] | None = None) -> None:
    opt, args = parse_options(argv, is_train=True)
    device, state_path = setup(opt, args)
    tb_logger = None
    if opt['logger']['use_tb_logger'] and opt['rank'] == 0:
        tb_logger = init_tb_logger(opt['path']['tb_logger'])
    loader, sampler = build_train_loader(opt, device)
    val_loaders = build_eval_loaders(opt, ('val',))
    model = build_model(opt, device)
    loop = restore(model, opt, state_path) if state_path is not None else LoopState()
    logger.info(f'Start training from epoch {loop.epoch}, iter {loop.current_iter}.')
    start = time.time()
    train_loop(model, opt, loop, loader, sampler, val_loaders, tb_logger)
    logger.info(f'End of training in {time.time() - start:.1f} s. Saving the latest model.')
    if opt['rank'] == 0:
        model.save(loop.epoch, current_iter=-1)
    final_report(model, opt, val_loaders, tb_logger)
    if tb_logger is not None:
        tb_logger.close()


def run_cli(pipeline, argv: Sequence[str] | None = None) -> int:
    """Run ``pipeline``; user errors become one clear message and exit code 2."""
    try:
        pipeline(argv)
    except UserError as err:
        if int(os.environ.get('RANK', 0)) == 0:
            print(f'Error: {err}', file=sys.stderr, flush=True)
        return 2
    finally:
        destroy_dist()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(train_pipeline, argv)


if __name__ == '__main__':
    sys.exit(main())
