"""Hooks: code that runs at seven points of a training run, beside the loop.

A hook subclasses :class:`Hook` and overrides what it needs::

    on_train_start(run)                    after resume, before the first iteration
    on_epoch_start(run, epoch)             when the first batch of an epoch is taken
    on_epoch_end(run, epoch)               after the iteration that trained on the epoch's last
                                           batch (before its validation and checkpoint)
    on_iter_end(run, it, log)              after every iteration; ``log`` is the dict the log line
                                           shows on logging iterations (losses, lrs, time,
                                           data_time), else None: read device values only then
    on_validation_end(run, it, results)    {dataset name: ValidationResult}, on every rank
    on_checkpoint(run, it)                 after a checkpoint (networks + state) is complete
    on_train_end(run, finished)            finished: False when a signal stopped the run

Hooks run on every rank (a decision such as early stopping must be the same everywhere); what
writes files or TensorBoard does it on rank 0 (``run.is_main``). A hook with a ``state_key``
keeps its state (:meth:`Hook.state_dict`) in the training state, so that resuming continues it.
Each epoch starts and ends once, also across a resume in the middle of an epoch (a resumed run
does not start its epoch again) or at its end (nor end it again).
Register a hook class with ``@HOOK_REGISTRY.register()`` to use it from an option file
(``hooks: [{type: MyHook, arg: 1}]``), or pass instances to ``train_pipeline(hooks=[...])``.
The built-in features (early stopping, best checkpoints, TensorBoard extras, the progress bar)
are hooks too, configured by their own option keys.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from basicsr_lite.registry import HOOK_REGISTRY

__all__ = ['HOOK_REGISTRY', 'Hook', 'Hooks', 'Run']


@dataclass
class Run:
    """What a hook sees of the training run it is part of."""
    model: Any  # models.protocol.TrainableModel
    opt: dict
    loop: Any  # engine.checkpoint.LoopState: current_iter, epoch, batches_in_epoch
    tb_logger: Any = None  # SummaryWriter-like (add_scalar / add_image / ...), rank 0 only
    val_loaders: dict = field(default_factory=dict)
    finish_reason: str | None = None
    # (iteration, {dataset name: ValidationResult}) of the newest validation of this process
    last_validation: tuple[int, dict] | None = None

    @property
    def is_main(self) -> bool:
        return self.opt.get('rank', 0) == 0

    def finish(self, reason: str) -> None:
        """End training after this iteration as complete (saved, final report), e.g. early
        stopping. Call it on every rank with the same decision."""
        self.finish_reason = reason


class Hook:
    """Every method does nothing; override the ones a hook needs."""
    state_key: str | None = None  # set to keep state_dict() in the training state

    def on_train_start(self, run: Run) -> None:
        pass

    def on_epoch_start(self, run: Run, epoch: int) -> None:
        pass

    def on_iter_end(self, run: Run, it: int, log: dict[str, Any] | None) -> None:
        pass

    def on_epoch_end(self, run: Run, epoch: int) -> None:
        pass

    def on_validation_end(self, run: Run, it: int, results: dict) -> None:
        pass

    def on_checkpoint(self, run: Run, it: int) -> None:
        pass

    def on_train_end(self, run: Run, finished: bool) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Hooks(Hook):
    """The run's hooks, called in order; their states under their ``state_key``."""

    def __init__(self, hooks: list[Hook]) -> None:
        self.hooks = list(hooks)
        keys = [h.state_key for h in self.hooks if h.state_key is not None]
        duplicated = sorted({k for k in keys if keys.count(k) > 1})
        if duplicated:
            raise ValueError(f'Two hooks keep their state under the same state_key: '
                             f'{duplicated}.')

    def on_train_start(self, run: Run) -> None:
        for hook in self.hooks:
            hook.on_train_start(run)

    def on_epoch_start(self, run: Run, epoch: int) -> None:
        for hook in self.hooks:
            hook.on_epoch_start(run, epoch)

    def on_iter_end(self, run: Run, it: int, log: dict[str, Any] | None) -> None:
        for hook in self.hooks:
            hook.on_iter_end(run, it, log)

    def on_epoch_end(self, run: Run, epoch: int) -> None:
        for hook in self.hooks:
            hook.on_epoch_end(run, epoch)

    def on_validation_end(self, run: Run, it: int, results: dict) -> None:
        for hook in self.hooks:
            hook.on_validation_end(run, it, results)

    def on_checkpoint(self, run: Run, it: int) -> None:
        for hook in self.hooks:
            hook.on_checkpoint(run, it)

    def on_train_end(self, run: Run, finished: bool) -> None:
        for hook in self.hooks:
            hook.on_train_end(run, finished)

    def state_dict(self) -> dict:
        return {h.state_key: h.state_dict() for h in self.hooks if h.state_key is not None}

    def load_state_dict(self, state: dict) -> None:
        for hook in self.hooks:
            if hook.state_key is not None and hook.state_key in state:
                hook.load_state_dict(state[hook.state_key])
