"""Training entry point: ``python train.py -opt options/train/x.yml [--auto_resume]``."""
from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from basicsr_lite.data.loading.loaders import build_eval_loaders, build_train_loader, epoch_batches
from basicsr_lite.data.loading.prefetcher import build_prefetcher
from basicsr_lite.engine.builtin_hooks import BranchOrigin, PixelFormats, build_hooks
from basicsr_lite.engine.cli import run_cli
from basicsr_lite.engine.constraints import check_constraints, eval_datasets_by_key
from basicsr_lite.engine.experiment import (find_resume_state, is_branch_start, open_run_folder,
                                            record_branch, start_processes)
from basicsr_lite.engine.hooks import Hook, Hooks, Run
from basicsr_lite.engine.logger import (FILE_ONLY, IterationTimer, MessageLogger,
                                        get_root_logger)
from basicsr_lite.engine.resume import (LoopState, adopt_saved_seed, check_resume_state, restore,
                                        resume_command, save_checkpoint)
from basicsr_lite.engine.signals import GracefulStop
from basicsr_lite.engine.trackers import check_trackers, init_trackers
from basicsr_lite.engine.validate import bicubic_baseline, check_metrics, format_table, validate
from basicsr_lite.errors import TrainingError, first_line
from basicsr_lite.models import MODEL_REGISTRY, build_model
from basicsr_lite.models.protocol import TrainableModel
from basicsr_lite.options import dict2str, parse_options
from basicsr_lite.runtime.dist import barrier
from basicsr_lite.runtime.speed import set_backend_flags
from basicsr_lite.runtime.speed_probe import resolve_speed_options
from basicsr_lite.utils.misc import set_random_seed

logger = logging.getLogger('basicsr_lite')


def train_loop(run: Run, loader, sampler, stopper: GracefulStop, hooks: Hooks) -> bool:
    """Run iterations until ``total_iter`` (or a hook ends training, e.g. early stopping);
    returns False if a stop signal ended it early."""
    model, opt, loop = run.model, run.opt, run.loop
    train_opt, log_opt, val_opt = opt['train'], opt['logger'], opt['val']
    total_iter, batch_size = train_opt['total_iter'], opt['datasets']['train']['batch_size_per_gpu']
    sampler.set_epoch(loop.epoch, start=loop.batches_in_epoch * batch_size)
    prefetcher = build_prefetcher(loader, opt['datasets']['train']['prefetch_mode'], model.device)
    msg_logger = MessageLogger(opt['name'], total_iter, loop.current_iter, run.tb_logger)
    timer = IterationTimer()
    accumulate = train_opt['accumulate_grad_batches']
    epoch_freq = log_opt['save_checkpoint_freq_epochs']
    # (the training loader drops the last partial batch of an epoch)
    per_epoch = epoch_batches(sampler.num_samples // batch_size, train_opt['limit_train_batches'])

    def next_batch(first_of_iteration: bool) -> dict:
        """The next training batch; a new epoch starts when one ends. Epoch hooks: an epoch
        starts at its first batch; one that ran out here (not at the end of an iteration, where
        the loop ends it) ends here."""
        while loop.batches_in_epoch >= per_epoch or (batch := prefetcher.next()) is None:
            if not (first_of_iteration and loop.batches_in_epoch >= per_epoch):
                hooks.on_epoch_end(run, loop.epoch)
            loop.epoch, loop.batches_in_epoch = loop.epoch + 1, 0
            sampler.set_epoch(loop.epoch)
            prefetcher.reset()
        loop.batches_in_epoch += 1
        if loop.batches_in_epoch == 1:
            hooks.on_epoch_start(run, loop.epoch)
        if 'corrupt_skipped' in batch:
            loop.corrupt_skipped += int(batch.pop('corrupt_skipped').sum())
        return batch

    def epochs_done() -> int:
        return loop.epoch + (loop.batches_in_epoch >= per_epoch)

    finished = True
    while loop.current_iter < total_iter:
        it, epochs_before = loop.current_iter + 1, epochs_done()
        model.update_learning_rate(it, train_opt['warmup_iter'])
        for micro in range(accumulate):  # one optimizer step over ``accumulate`` batches
            model.feed_data(timer.fetch(lambda: next_batch(micro == 0)))
            with model.no_sync(active=micro < accumulate - 1):
                model.optimize_parameters(it)
        loop.current_iter = it
        timer.iteration_done()
        logs = it % log_opt['print_freq'] == 0
        saves = it % log_opt['save_checkpoint_freq'] == 0 or \
            (epoch_freq is not None and epochs_done() // epoch_freq > epochs_before // epoch_freq)
        # The final iteration is always validated (final_report shows that validation next to
        # the bicubic baseline): every hook sees it, before the last checkpoint.
        validates = val_opt is not None and (it % val_opt['val_freq'] == 0 or it == total_iter)
        # A stop request is polled (a collective when distributed) every stop_check_freq
        # iterations and whenever the loop syncs anyway; the flag costs nothing otherwise.
        polls = logs or saves or it % train_opt['stop_check_freq'] == 0 or it == total_iter
        stops = stopper.requested(model.device, poll=polls)
        if logs or saves or validates or stops or it == total_iter:
            model.settle_steps()  # the only host sync of an iteration (steps decided on device)
        log = None
        if logs:
            log = {'epoch': loop.epoch, 'iter': it, 'lrs': model.get_current_learning_rate(),
                   **timer.window(), **model.get_current_log()}
            msg_logger(log)
        hooks.on_iter_end(run, it, log)
        if loop.batches_in_epoch >= per_epoch:  # this iteration trained the epoch's last batch
            hooks.on_epoch_end(run, loop.epoch)
        if run.finish_reason and val_opt is not None and not validates:
            model.settle_steps()  # a hook ends the run here: its last iteration is validated
            validates = True
        if validates:  # before the save: the checkpoint holds what the hooks made of it
            run.last_validation = (it, {
                name: validate(model, val_loader, name, it, run.tb_logger, val_opt['save_img'],
                               keep_images=val_opt['tb_images'])
                for name, val_loader in run.val_loaders.items()})
            hooks.on_validation_end(run, it, run.last_validation[1])
        if saves or stops or run.finish_reason:
            save_checkpoint(model, loop, opt, hooks.state_dict())
            hooks.on_checkpoint(run, it)
        if stops and it < total_iter:  # (a stop at the last iteration finishes the run)
            logger.warning(f'Stopped by {stopper.signal_name or "a signal on another rank"} at '
                           f'iteration {it}; the training state is saved. Resume with:\n  '
                           f'{resume_command(opt)}')
            finished = False
            break
        if run.finish_reason:
            logger.info(f'Training ends at iteration {it}: {run.finish_reason}.')
            break
        timer.restart()
    summary = timer.summary()
    if summary:
        logger.info(summary)
    return finished


def final_report(model: TrainableModel, opt: dict, val_loaders, tb_logger,
                 current_iter: int, last_validation: tuple[int, dict] | None = None) -> None:
    """Print the final model's validation next to bicubic upsampling of the same images (next
    to the input images at scale 1).

    ``last_validation``: the loop's validation of ``current_iter`` (which every hook saw), used
    as is; the model is validated here only without one (a run resumed from its final state)."""
    if opt['val'] is None or not val_loaders:
        return
    metrics_opt = opt['val']['metrics']
    done = last_validation[1] if last_validation and last_validation[0] == current_iter else {}
    for name, val_loader in val_loaders.items():
        ours = done.get(name) or validate(model, val_loader, name, current_iter, tb_logger,
                                          opt['val']['save_img'])
        if not ours.means:  # no metrics, or no GT images to score against
            continue
        bicubic = bicubic_baseline(val_loader, name, opt['scale'], metrics_opt,
                                   opt['val']['tensor_metrics'])
        # (at scale 1, e.g. denoising, the baseline is the degraded input itself)
        baseline = 'input' if opt['scale'] == 1 else 'bicubic'
        table = format_table({'model': ours.means, baseline: bicubic.means})
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


def train_pipeline(argv: Sequence[str] | None = None, hooks: list[Hook] | None = None) -> None:
    """``train.py``: parse the options and train. ``hooks``: extra hooks given in code."""
    opt, _ = parse_options(argv, is_train=True)
    try:
        train_run(opt, hooks)
        if opt['fast_dev_run']:
            barrier()  # every rank is done with the folder
            if opt['rank'] == 0:
                print('--fast_dev_run: the pipeline works.', file=sys.stderr, flush=True)
    finally:
        if opt['fast_dev_run'] and opt['rank'] == 0:
            remove_fast_dev_run_folder(opt)


def train_run(opt: dict, extra_hooks: list[Hook] | None = None) -> None:
    device = start_processes(opt)
    get_root_logger(rank=opt['rank'])  # the log file starts once the folder exists
    logger.info(f'basicsr_lite, torch {torch.__version__}, device {device}, '
                f"world size {opt['world_size']}")
    logger.info(f'Options:\n{dict2str(opt)}', extra=FILE_ONLY)  # the console keeps to messages
    # Everything that can fail on the user's input (resume state, datasets, networks, weight
    # files, constructor arguments) runs before anything on disk is created or renamed.
    resume = find_resume_state(opt, MODEL_REGISTRY.get(opt['model_type']).network_labels())
    branching = resume is not None and is_branch_start(opt, resume[0])
    if resume is not None:
        check_resume_state(opt, MODEL_REGISTRY.get(opt['model_type']).__name__, *resume,
                           branching)
        adopt_saved_seed(opt, resume[1])
    elif opt['auto_resume']:
        logger.warning(f"--auto_resume: no loadable training state in "
                       f"{opt['path']['training_states']}; starting from iteration 0.")
    set_random_seed(opt['manual_seed'] + opt['rank'])
    set_backend_flags(opt['train'])
    loader, sampler = build_train_loader(opt, device)
    val_loaders = build_eval_loaders(opt, ('val',))
    if opt['val'] is not None:
        check_metrics(opt['val']['metrics'], val_loaders)
    check_constraints(opt, {'train': loader.dataset, **eval_datasets_by_key(opt, val_loaders)})
    check_trackers(opt)
    pixel_formats = PixelFormats({opt['datasets']['train']['name']: loader, **val_loaders})
    if resume is not None and not branching:
        pixel_formats.check_resume(resume[1].get('hooks', {}).get(PixelFormats.state_key),
                                   resume[0])
    # amp / channels_last that would make this machine slower are dropped (or stop the run)
    resolve_speed_options(opt, device, resume[1].get('speed') if resume else None)
    model = build_model(opt, device)
    hooks = build_hooks(opt, [pixel_formats, *(extra_hooks or [])])
    loop = restore(model, opt, *resume, branching) if resume is not None else LoopState()
    open_run_folder(opt, resuming=resume is not None and not branching)
    if branching:  # a new experiment: its hooks (best checkpoints, patience) start afresh
        hooks.load_state_dict({BranchOrigin.state_key: record_branch(opt, *resume)})
    elif resume is not None:
        hooks.load_state_dict(resume[1].get('hooks', {}))
    tb_logger = init_trackers(opt, resuming=resume is not None and not branching)
    run = Run(model, opt, loop, tb_logger, val_loaders)
    logger.info(f'Start training from epoch {loop.epoch}, iter {loop.current_iter}.')
    start, finished = time.time(), False
    try:
        hooks.on_train_start(run)
        with GracefulStop() as stopper:
            try:
                finished = train_loop(run, loader, sampler, stopper, hooks)
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
            final_report(model, opt, val_loaders, tb_logger, loop.current_iter,
                         run.last_validation)
    finally:
        hooks.on_train_end(run, finished)
        if tb_logger is not None:
            tb_logger.close()


def remove_fast_dev_run_folder(opt: dict) -> None:
    """--fast_dev_run leaves nothing behind: its temporary folder goes, log file included."""
    root = Path(opt['path']['experiments_root'])
    for handler in list(logger.handlers):
        if isinstance(handler, logging.FileHandler):
            logger.removeHandler(handler)
            handler.close()
    if root.exists():
        shutil.rmtree(root, ignore_errors=True)
        print(f'--fast_dev_run: removed {root}.', file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(train_pipeline, argv)


if __name__ == '__main__':
    sys.exit(main())
