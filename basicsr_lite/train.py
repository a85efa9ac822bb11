"""Training entry point: ``python train.py -opt options/train/x.yml [--auto_resume]``."""
from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from basicsr_lite.data.loaders import build_eval_loaders, build_train_loader, epoch_batches
from basicsr_lite.data.prefetcher import build_prefetcher
from basicsr_lite.engine.builtin_hooks import BranchOrigin, PixelFormats, build_hooks
from basicsr_lite.engine.cli import run_cli
from basicsr_lite.engine.constraints import check_constraints, eval_datasets_by_key
from basicsr_lite.engine.checkpoint import (LoopState, check_resume_state,
                                           find_resume_state, is_branch_start,
                                           last_checkpoint_description, record_branch, restore,
                                           resumed_seed, save_checkpoint, save_latest)
from basicsr_lite.engine.experiment import open_run_folder, resume_command, start_processes
from basicsr_lite.engine.hooks import Hook, Hooks, Run
from basicsr_lite.engine.logger import (FILE_ONLY, IterationTimer, MessageLogger,
                                        get_root_logger)
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


class TrainingBatches:
    """The training batches of the loop, epoch after epoch (the loader drops the last partial
    batch of an epoch), with the epoch hooks: an epoch starts at its first batch and ends after
    the iteration that trained on its last one (or here, when the loader ran out first)."""

    def __init__(self, run: Run, loader, sampler, hooks: Hooks) -> None:
        opt, self.loop, self.run, self.hooks, self.sampler = run.opt, run.loop, run, hooks, sampler
        batch_size = opt['datasets']['train']['batch_size_per_gpu']
        sampler.set_epoch(self.loop.epoch, start=self.loop.batches_in_epoch * batch_size)
        self.prefetcher = build_prefetcher(loader, opt['datasets']['train']['prefetch_mode'],
                                           run.model.device)
        self.per_epoch = epoch_batches(sampler.num_samples // batch_size,
                                       opt['train']['limit_train_batches'])

    @property
    def epoch_complete(self) -> bool:
        """Whether the last batch taken was the epoch's last."""
        return self.loop.batches_in_epoch >= self.per_epoch

    def epochs_done(self) -> int:
        return self.loop.epoch + self.epoch_complete

    def next(self, first_of_iteration: bool) -> dict:
        """The next training batch; a new epoch starts when one ends."""
        loop = self.loop
        while self.epoch_complete or (batch := self.prefetcher.next()) is None:
            if not (first_of_iteration and self.epoch_complete):  # (else the loop ended it)
                self.hooks.on_epoch_end(self.run, loop.epoch)
            loop.epoch, loop.batches_in_epoch = loop.epoch + 1, 0
            self.sampler.set_epoch(loop.epoch)
            self.prefetcher.reset()
        loop.batches_in_epoch += 1
        if loop.batches_in_epoch == 1:
            self.hooks.on_epoch_start(self.run, loop.epoch)
        if 'corrupt_skipped' in batch:
            loop.corrupt_skipped += int(batch.pop('corrupt_skipped').sum())
        return batch


@dataclass
class Due:
    """What iteration ``it`` does besides training: log, save, validate, stop."""
    logs: bool
    saves: bool
    validates: bool
    stops: bool

    @classmethod
    def at(cls, it: int, opt: dict, epochs: tuple[int, int], stopper: GracefulStop,
           device: torch.device) -> 'Due':
        """``epochs``: epochs done before and after the iteration."""
        log_opt, val_opt, total_iter = opt['logger'], opt['val'], opt['train']['total_iter']
        epoch_freq = log_opt['save_checkpoint_freq_epochs']
        logs = it % log_opt['print_freq'] == 0
        saves = it % log_opt['save_checkpoint_freq'] == 0 or \
            (epoch_freq is not None and epochs[1] // epoch_freq > epochs[0] // epoch_freq)
        # The final iteration is always validated (final_report shows that validation next to
        # the bicubic baseline): every hook sees it, before the last checkpoint.
        validates = val_opt is not None and (it % val_opt['val_freq'] == 0 or it == total_iter)
        # A stop request is polled (a collective when distributed) every stop_check_freq
        # iterations and whenever the loop syncs anyway; the flag costs nothing otherwise.
        polls = logs or saves or it % opt['train']['stop_check_freq'] == 0 or it == total_iter
        return cls(logs, saves, validates, stopper.requested(device, poll=polls))


def train_iteration(model: TrainableModel, batches: TrainingBatches, timer: IterationTimer,
                    it: int, train_opt: dict) -> None:
    """One optimizer step over ``accumulate_grad_batches`` batches."""
    model.update_learning_rate(it, train_opt['warmup_iter'])
    accumulate = train_opt['accumulate_grad_batches']
    for micro in range(accumulate):
        model.feed_data(timer.fetch(lambda: batches.next(micro == 0)))
        with model.no_sync(active=micro < accumulate - 1):
            model.optimize_parameters(it)


def log_iteration(run: Run, msg_logger: MessageLogger, timer: IterationTimer, it: int) -> dict:
    """The log line's values (losses, learning rates, times), written."""
    log = {'epoch': run.loop.epoch, 'iter': it, 'lrs': run.model.get_current_learning_rate(),
           **timer.window(), **run.model.get_current_log()}
    msg_logger(log)
    return log


def validate_all(run: Run, hooks: Hooks, it: int) -> None:
    """Validate on every validation set; the hooks see the results (before the save: the
    checkpoint holds what the hooks made of them)."""
    val_opt = run.opt['val']
    run.last_validation = (it, {
        name: validate(run.model, val_loader, name, it, run.tb_logger, val_opt['save_img'],
                       keep_images=val_opt['tb_images'])
        for name, val_loader in run.val_loaders.items()})
    hooks.on_validation_end(run, it, run.last_validation[1])


def save_run(run: Run, hooks: Hooks, it: int) -> None:
    save_checkpoint(run.model, run.loop, run.opt, hooks.state_dict())
    hooks.on_checkpoint(run, it)


def report_stop(stopper: GracefulStop, opt: dict, it: int) -> None:
    logger.warning(f'Stopped by {stopper.signal_name or "a signal on another rank"} at '
                   f'iteration {it}; the training state is saved. Resume with:\n  '
                   f'{resume_command(opt)}')


def train_loop(run: Run, loader, sampler, stopper: GracefulStop, hooks: Hooks) -> bool:
    """Run iterations until ``total_iter`` (or a hook ends training, e.g. early stopping);
    returns False if a stop signal ended it early."""
    model, opt, loop = run.model, run.opt, run.loop
    total_iter = opt['train']['total_iter']
    batches, timer = TrainingBatches(run, loader, sampler, hooks), IterationTimer()
    msg_logger = MessageLogger(opt['name'], total_iter, loop.current_iter, run.tb_logger)
    finished = True
    while loop.current_iter < total_iter:
        it, epochs_before = loop.current_iter + 1, batches.epochs_done()
        train_iteration(model, batches, timer, it, opt['train'])
        loop.current_iter = it
        timer.iteration_done()
        due = Due.at(it, opt, (epochs_before, batches.epochs_done()), stopper, model.device)
        if due.logs or due.saves or due.validates or due.stops or it == total_iter:
            model.settle_steps()  # the only host sync of an iteration (steps decided on device)
        hooks.on_iter_end(run, it, log_iteration(run, msg_logger, timer, it) if due.logs else None)
        if batches.epoch_complete:  # this iteration trained the epoch's last batch
            hooks.on_epoch_end(run, loop.epoch)
        if run.finish_reason and opt['val'] is not None and not due.validates:
            model.settle_steps()  # a hook ends the run here: its last iteration is validated
            due.validates = True
        if due.validates:
            validate_all(run, hooks, it)
        if due.saves or due.stops or run.finish_reason:
            save_run(run, hooks, it)
        if due.stops and it < total_iter:  # (a stop at the last iteration finishes the run)
            report_stop(stopper, opt, it)
            finished = False
            break
        if run.finish_reason:
            logger.info(f'Training ends at iteration {it}: {run.finish_reason}.')
            break
        timer.restart()
    if summary := timer.summary():
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


def lost_peer_error(err: RuntimeError, opt: dict) -> TrainingError:
    return TrainingError(f'Another process of this distributed run stopped or became unreachable '
                         f'({first_line(err)[:200]}); exiting. Last good checkpoint: '
                         f"{last_checkpoint_description(opt['path']['training_states'])}.")


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
    resume, branching = find_start(opt)
    opt = run_options(opt, resumed_seed(opt, resume[1]) if resume else opt['manual_seed'])
    set_random_seed(opt['manual_seed'] + opt['rank'])
    set_backend_flags(opt['train'])
    loader, sampler = build_train_loader(opt, device)
    val_loaders = build_eval_loaders(opt, ('val',))
    pixel_formats = check_data(opt, loader, val_loaders, resume if not branching else None)
    # amp / channels_last that would make this machine slower are dropped (or stop the run)
    resolve_speed_options(opt, device, resume[1].get('speed') if resume else None)
    model = build_model(opt, device)
    model.last_checkpoint = lambda: last_checkpoint_description(opt['path']['training_states'])
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
    train_and_report(run, loader, sampler, hooks)


def run_options(opt: dict, seed: int) -> dict:
    """The options as this run applies them, a new dict: the parsed options stay as parsed
    (read-only). It holds the run's decisions where BasicSR-style code reads them: the seed
    (a resumed run's own) and a ``train`` section of its own for the speed probe's choice."""
    return {**opt, 'manual_seed': seed, 'train': dict(opt['train'])}


def find_start(opt: dict) -> tuple[tuple[Path, dict] | None, bool]:
    """The training state the run starts from (None: from scratch) and whether it is a branch,
    checked against the options."""
    model_cls = MODEL_REGISTRY.get(opt['model_type'])
    resume = find_resume_state(opt, model_cls.network_labels())
    branching = resume is not None and is_branch_start(opt, resume[0])
    if resume is not None:
        check_resume_state(opt, model_cls.__name__, *resume, branching)
    elif opt['auto_resume']:
        logger.warning(f"--auto_resume: no loadable training state in "
                       f"{opt['path']['training_states']}; starting from iteration 0.")
    return resume, branching


def check_data(opt: dict, loader, val_loaders: dict, resume: tuple[Path, dict] | None
               ) -> PixelFormats:
    """Metrics, constraints and trackers checked against the data; the datasets' pixel formats
    (the same as those of the state ``resume`` continues, if given)."""
    if opt['val'] is not None:
        check_metrics(opt['val']['metrics'], val_loaders)
    check_constraints(opt, {'train': loader.dataset, **eval_datasets_by_key(opt, val_loaders)})
    check_trackers(opt)
    pixel_formats = PixelFormats({opt['datasets']['train']['name']: loader, **val_loaders})
    if resume is not None:
        pixel_formats.check_resume(resume[1].get('hooks', {}).get(PixelFormats.state_key),
                                   resume[0])
    return pixel_formats


def train_and_report(run: Run, loader, sampler, hooks: Hooks) -> None:
    """The loop between the hooks' start and end; then the latest networks and the final
    report (unless a signal stopped it)."""
    model, opt, loop = run.model, run.opt, run.loop
    start, finished = time.time(), False
    try:
        hooks.on_train_start(run)
        with GracefulStop() as stopper:
            try:
                finished = train_loop(run, loader, sampler, stopper, hooks)
            except RuntimeError as err:
                if opt['world_size'] > 1 and is_peer_failure(err):
                    raise lost_peer_error(err, opt) from err
                raise
        if loop.corrupt_skipped:
            logger.warning(f'{loop.corrupt_skipped} corrupt training image(s) were skipped.')
        if finished:
            logger.info(f'End of training in {time.time() - start:.1f} s. Saving the latest '
                        f'model.')
            if opt['rank'] == 0:
                save_latest(model, opt)
            final_report(model, opt, run.val_loaders, run.tb_logger, loop.current_iter,
                         run.last_validation)
    finally:
        hooks.on_train_end(run, finished)
        if run.tb_logger is not None:
            run.tb_logger.close()


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
