"""ReduceLROnPlateau on a validation metric: torch's rule (reduce by ``factor`` after
``patience`` validations without an improvement beyond ``threshold``, then ``cooldown``), stepped
after each validation with one metric of one validation set, not each iteration.

Its learning rates are its own state (``scheduled_lrs``): the reductions start from the
optimizer's ``lr``, not from whatever the group holds (BasicSR's ``train.warmup_iter`` overwrites
that for the first iterations), and the model sets them after the warm-up. Everything is in its
``state_dict()``, so the training state continues it exactly."""
from __future__ import annotations

import torch
from torch.optim import lr_scheduler

BETTER_TO_MODE = {'higher': 'max', 'lower': 'min'}


class ReduceLROnPlateau(lr_scheduler.ReduceLROnPlateau):
    """``metric``: a key of ``val.metrics``; ``dataset``: a validation set's name (default: the
    first); ``mode`` comes from the metric's ``better`` (the framework passes it)."""

    per_iteration = False  # stepped after each validation (engine: PlateauSchedule)

    def __init__(self, optimizer: torch.optim.Optimizer, metric: str, dataset: str | None = None,
                 mode: str = 'max', factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = 'rel', cooldown: int = 0,
                 min_lr: float = 0.0, eps: float = 1e-8) -> None:
        self.metric, self.dataset, self.min_lr = metric, dataset, min_lr
        self.scheduled_lrs = [float(g.get('initial_lr', g['lr'])) for g in optimizer.param_groups]
        super().__init__(optimizer, mode, factor, patience, threshold, threshold_mode, cooldown,
                         min_lr, eps)

    def _reduce_lr(self, epoch) -> None:
        for i, group in enumerate(self.optimizer.param_groups):
            old = self.scheduled_lrs[i]
            new = max(old * self.factor, self.min_lrs[i])
            if old - new > self.eps:
                self.scheduled_lrs[i] = group['lr'] = new

    def get_lr(self) -> list[float]:
        """The learning rates at the current position (for the settings of a resumed run)."""
        return list(self.scheduled_lrs)
