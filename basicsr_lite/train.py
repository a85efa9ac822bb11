"""Training entry point: ``python train.py -opt options/train/x.yml [--auto_resume]``."""
from __future__ import annotations

import logging
import sys
import time
from typing import Sequence

import torch

from basicsr_lite.data.loaders import build_eval_loaders, build_train_loader
from basicsr_lite.data.prefetcher import build_prefetcher
from basicsr_lite.engine.cli import run_cli
from basicsr_lite.engine.experiment import find_resume_state, open_run_folder, start_processes
from basicsr_lite.engine.logger import (IterationTimer, MessageLogger, get_root_logger,
                                        init_tb_logger)
from basicsr_lite.engine.resume import (LoopState, adopt_saved_seed, restore, resume_command,
                                        save_checkpoint)
from basicsr_lite.engine.signals import GracefulStop
from basicsr_lite.engine.validate import bicubic_baseline, check_metrics, format_table, validate
from basicsr_lite.errors import TrainingError, first_line
from basicsr_lite.models import MODEL_REGISTRY, build_model
from basicsr_lite.models.protocol import TrainableModel
from basicsr_lite.options import dict2str, parse_options
from basicsr_lite.runtime.speed import set_backend_flags
from basicsr_lite.utils.misc import set_random_seed

logger = logging.getLogger('basicsr_lite')


def train_loop(model: TrainableModel, opt: dict, loop: LoopState, loader, sampler, val_loaders,
               tb_logger, stopper: GracefulStop) -> bool:
    """Run iterations until ``total_iter``; returns False if a stop signal ended it early."""
    train_opt, log_opt, val_opt = opt['train'], opt['logger'], opt['val']
    total_iter, batch_size = train_opt['total_iter'], opt['datasets']['train']['batch_size_per_gpu']
    sampler.set_epoch(loop.epoch, start=loop.batches_in_epoch * batch_size)
    prefetcher = build_prefetcher(loader, opt['datasets']['train']['prefetch_mode'], model.device)
    msg_logger = MessageLogger(opt['name'], total_iter, loop.current_iter, tb_logger)
    timer = IterationTimer()
    accumulate = train_opt['accumulate_grad_batches']

    def next_batch() -> dict:
        """The next training batch; a new epoch starts when one ends."""
        while (batch := prefetcher.next()) is None:
            loop.epoch, loop.batches_in_epoch = loop.epoch + 1, 0
            sampler.set_epoch(loop.epoch)
            prefetcher.reset()
        loop.batches_in_epoch += 1
        if 'corrupt_skipped' in batch:
            loop.corrupt_skipped += int(batch.pop('corrupt_skipped').sum())
        return batch

    finished = True
    while loop.current_iter < total_iter:
        it = loop.current_iter + 1
        model.update_learning_rate(it, train_opt['warmup_iter'])
        for micro in range(accumulate):  # one optimizer step over ``accumulate`` batches
            model.feed_data(timer.fetch(next_batch))
            with model.no_sync(active=micro < accumulate - 1):
                model.optimize_parameters(it)
        loop.current_iter = it
        timer.iteration_done()
        logs = it % log_opt['print_freq'] == 0
        saves = it % log_opt['save_checkpoint_freq'] == 0
        # The final iteration is validated by final_report, next to the bicubic baseline.
        validates = val_opt is not None and it % val_opt['val_freq'] == 0 and it < total_iter
        # A stop request is polled (a collective when distributed) every stop_check_freq
        # iterations and whenever the loop syncs anyway; the flag costs nothing otherwise.
        polls = logs or saves or it % train_opt['stop_check_freq'] == 0 or it == total_iter
        stops = stopper.requested(model.device, poll=polls)
        if logs or saves or validates or stops or it == total_iter:
            model.settle_steps()  # the only host sync of an iteration (steps decided on device)
        if logs:
            msg_logger({'epoch': loop.epoch, 'iter': it, 'lrs': model.get_current_learning_rate(),
                        **timer.window(), **model.get_current_log()})
        if saves:
            save_checkpoint(model, loop, opt)
        if validates:
            for name, val_loader in val_loaders.items():
                validate(model, val_loader, name, it, tb_logger, val_opt['save_img'])
        if stops:
            if not saves:
                save_checkpoint(model, loop, opt)
            logger.warning(f'Stopped by {stopper.signal_name or "a signal on another rank"} at '
                           f'iteration {it}; the training state is saved. Resume with:\n  '
                           f'{resume_command(opt)}')
            finished = False
            break
        timer.restart()
    summary = timer.summary()
    if summary:
        logger.info(summary)
    return finished


def final_report(model: TrainableModel, opt: dict, val_loaders, tb_logger) -> None:
    """Validate the final model and print it next to bicubic upsampling of the same images."""
    if opt['val'] is None or not val_loaders:
        return
    metrics_opt = opt['val']['metrics']
    for name, val_loader in val_loaders.items():
        ours = validate(model, val_loader, name, opt['train']['total_iter'], tb_logger,
                        opt['val']['save_img'])
        if not ours.means:  # no metrics, or no GT images to score against
            continue
        bicubic = bicubic_baseline(val_loader, name, opt['scale'], metrics_opt,
                                   opt['val']['tensor_metrics'])
        table = format_table({'model': ours.means, 'bicubic': bicubic.means})
        logger.info(f'Final validation on {name} ({len(ours.rows)} images):\n{table}')


PEER_FAILURE_MARKERS = ('Connection reset', 'Connection closed', 'Broken pipe', 'gloo', 'NCCL',
                        'timed out', 'Timeout')


def is_peer_failure(err: RuntimeError) -> bool:
    """Whether a RuntimeError comes from a collective whose peer died or hung."""
    dist_error = getattr(torch.distributed, 'DistError', ())
    return isinstance(err, dist_error) or any(m in str(err) for m in PEER_FAILURE_MARKERS)


def lost_peer_error(err: RuntimeError, model: TrainableModel) -> TrainingError:
    return TrainingError(f'Another process of this distributed run stopped or became unreachable '
                         f'({first_line(err)[:200]}); exiting. Last good checkpoint: '
                         f'{model.last_checkpoint_description()}.')


def train_pipeline(argv: Sequence[str] | None = None) -> None:
    opt, _ = parse_options(argv, is_train=True)
    device = start_processes(opt)
    get_root_logger(rank=opt['rank'])  # the log file starts once the folder exists
    logger.info(f'basicsr_lite, torch {torch.__version__}, device {device}, '
                f"world size {opt['world_size']}\n{dict2str(opt)}")
    # Everything that can fail on the user's input (resume state, datasets, networks, weight
    # files, constructor arguments) runs before anything on disk is created or renamed.
    resume = find_resume_state(opt, MODEL_REGISTRY.get(opt['model_type']).network_labels())
    if resume is not None:
        adopt_saved_seed(opt, resume[1])
    elif opt['auto_resume']:
        logger.warning(f"--auto_resume: no loadable training state in "
                       f"{opt['path']['training_states']}; starting from iteration 0.")
    set_random_seed(opt['manual_seed'] + opt['rank'])
    set_backend_flags(opt['train'])
    loader, sampler = build_train_loader(opt, device)
    val_loaders = build_eval_loaders(opt, ('val',))
    if opt['val'] is not None:
        check_metrics(opt['val']['metrics'])
    model = build_model(opt, device)
    loop = restore(model, opt, *resume) if resume is not None else LoopState()
    open_run_folder(opt, resuming=resume is not None)
    tb_logger = None
    if opt['logger']['use_tb_logger'] and opt['rank'] == 0:
        tb_logger = init_tb_logger(opt['path']['tb_logger'])
    logger.info(f'Start training from epoch {loop.epoch}, iter {loop.current_iter}.')
    start = time.time()
    try:
        with GracefulStop() as stopper:
            try:
                finished = train_loop(model, opt, loop, loader, sampler, val_loaders, tb_logger,
                                      stopper)
            except RuntimeError as err:
                if opt['world_size'] > 1 and is_peer_failure(err):
                    raise lost_peer_error(err, model) from err
                raise
        if loop.corrupt_skipped:
            logger.warning(f'{loop.corrupt_skipped} corrupt training image(s) were skipped.')
        if finished:
            logger.info(f'End of training in {time.time() - start:.1f} s. Saving the latest '
                        f'model.')
            if opt['rank'] == 0:
                model.save(loop.epoch, current_iter=-1)
            final_report(model, opt, val_loaders, tb_logger)
    finally:
        if tb_logger is not None:
            tb_logger.close()


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(train_pipeline, argv)


if __name__ == '__main__':
    sys.exit(main())
