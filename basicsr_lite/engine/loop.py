"""The training loop: an explicit iteration loop where each periodic action (log, validate,
save, stop) is one line calling a named function; the batches of epoch after epoch with the
epoch hooks."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from basicsr_lite.data.loading.loaders import epoch_batches
from basicsr_lite.data.loading.prefetcher import build_prefetcher
from basicsr_lite.engine.checkpoint import save_checkpoint
from basicsr_lite.engine.experiment import resume_command
from basicsr_lite.engine.hooks import Hooks, Run
from basicsr_lite.engine.logger import IterationTimer, MessageLogger
from basicsr_lite.engine.signals import GracefulStop
from basicsr_lite.engine.validate import validate
from basicsr_lite.models.protocol import TrainableModel

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
    """One optimizer step over ``accumulate_grad_batches`` batches (schedule-free optimizers
step from their training point: validation and saving leave them at the averaged one)."""
    model.set_weights_mode(train=True)
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
