"""Learning-rate schedulers with BasicSR's names and semantics, computed in closed form from the
iteration so that warm-up (which overwrites the lr) and resume cannot drift them; those with
their own warm-up (cosine, warm-up-stable-decay, one-cycle) are in schedules.py, the one stepped
on a validation metric in plateau.py. The optimizer factory is in optim.py."""
from __future__ import annotations

import bisect
import inspect
import math
from typing import Sequence

import torch
from torch.optim.lr_scheduler import LRScheduler, MultiStepLR

from basicsr_lite.errors import rejected_options
from basicsr_lite.runtime.plateau import BETTER_TO_MODE, ReduceLROnPlateau
from basicsr_lite.runtime.schedules import OneCycleLR, WarmupCosineLR, WarmupStableDecayLR


class MultiStepRestartLR(LRScheduler):
    """lr = initial * restart_weight * gamma^(milestones passed since the last restart)."""

    def __init__(self, optimizer: torch.optim.Optimizer, milestones: Sequence[int],
                 gamma: float = 0.1, restarts: Sequence[int] = (0,),
                 restart_weights: Sequence[float] = (1,), last_epoch: int = -1) -> None:
        if len(restarts) != len(restart_weights):
            raise ValueError(f'restarts ({len(restarts)}) and restart_weights '
                             f'({len(restart_weights)}) must have the same length.')
        self.milestones = sorted(milestones)
        self.gamma = gamma
        self.restarts = list(restarts)
        self.restart_weights = list(restart_weights)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t = self.last_epoch
        passed = [i for i, r in enumerate(self.restarts) if r <= t]
        restart, weight = (self.restarts[passed[-1]], self.restart_weights[passed[-1]]) if passed \
            else (0, 1.0)
        decays = sum(1 for m in self.milestones if restart < m <= t)
        return [g['initial_lr'] * weight * self.gamma**decays for g in self.optimizer.param_groups]


class CosineAnnealingRestartLR(LRScheduler):
    """Cosine annealing from ``initial * restart_weight`` to ``eta_min`` over each period."""

    def __init__(self, optimizer: torch.optim.Optimizer, periods: Sequence[int],
                 restart_weights: Sequence[float] = (1,), eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        if len(periods) != len(restart_weights):
            raise ValueError(f'periods ({len(periods)}) and restart_weights '
                             f'({len(restart_weights)}) must have the same length.')
        self.periods = list(periods)
        self.restart_weights = list(restart_weights)
        self.eta_min = eta_min
        self.cumulative_period = [sum(self.periods[:i + 1]) for i in range(len(self.periods))]
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t = self.last_epoch
        idx = min(bisect.bisect_left(self.cumulative_period, t), len(self.periods) - 1)
        start = 0 if idx == 0 else self.cumulative_period[idx - 1]
        weight, period = self.restart_weights[idx], self.periods[idx]
        cos = 0.5 * (1 + math.cos(math.pi * min(t - start, period) / period))
        return [self.eta_min + weight * (g['initial_lr'] - self.eta_min) * cos
                for g in self.optimizer.param_groups]


SCHEDULERS = {
    'MultiStepLR': MultiStepLR,
    'MultiStepRestartLR': MultiStepRestartLR,
    'CosineAnnealingRestartLR': CosineAnnealingRestartLR,
    'WarmupCosineLR': WarmupCosineLR,
    'WarmupStableDecayLR': WarmupStableDecayLR,
    'OneCycleLR': OneCycleLR,
    'ReduceLROnPlateau': ReduceLROnPlateau,
}
# arguments the framework fills in: the length of training where left out, the plateau's mode
TOTAL_ARGUMENTS = ('total_iters', 'total_steps')


def steps_per_iteration(scheduler) -> bool:
    """Whether ``scheduler`` is stepped every iteration (not after each validation)."""
    return getattr(scheduler, 'per_iteration', True)


def build_scheduler(optimizer: torch.optim.Optimizer, opt: dict, run_opt: dict | None = None
                    ) -> LRScheduler:
    """The scheduler of ``train.scheduler`` on ``optimizer``; ``run_opt`` (the run's options)
    gives ``train.total_iter`` to the schedules that need the length of training, and the
    direction of the metric a ReduceLROnPlateau watches."""
    kwargs = {k: v for k, v in opt.items() if k != 'type'}
    cls = SCHEDULERS[opt['type']]
    if run_opt is not None:
        for name in TOTAL_ARGUMENTS:
            if name in inspect.signature(cls).parameters and kwargs.get(name) is None:
                kwargs[name] = run_opt['train']['total_iter']
        if cls is ReduceLROnPlateau:
            metric = run_opt['val']['metrics'][kwargs['metric']]
            kwargs['mode'] = BETTER_TO_MODE[metric.get('better') or 'higher']
    with rejected_options(f"train.scheduler ({opt['type']})"):
        return cls(optimizer, **kwargs)
