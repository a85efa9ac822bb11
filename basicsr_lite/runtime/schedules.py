"""Schedules with their own warm-up, in closed form of the scheduler's position ``t``
(``last_epoch``: iteration ``t + 1`` trains with the value at ``t``), so that a resume, or an
edited schedule adopted at a saved position, lands exactly on the formula:

- :class:`WarmupCosineLR`: linear warm-up, then one cosine down to ``eta_min`` (the shape of
  timm's and transformers' ``cosine_with_warmup``).
- :class:`WarmupStableDecayLR`: warm-up, constant, then a decay over the last
  ``decay_fraction`` of training, linear, cosine or ``1-sqrt`` (Hägele et al. 2024, "Scaling Laws
  and Compute-Optimal Training Beyond Fixed Training Durations", which found 1-sqrt best).
- :class:`OneCycleLR`: torch's ``OneCycleLR`` formula (Smith & Topin 2017) with BasicSR's
  convention that the optimizer's ``lr`` is the peak; the learning rate only (momentum stays).

``total_iters`` / ``total_steps`` left out (None) are ``train.total_iter`` (``build_scheduler``
fills them in). Warm-up: iteration ``t + 1 <= warmup_iters`` trains with
``lr * (t + 1) / warmup_iters``, as BasicSR's ``train.warmup_iter`` (use one or the other).
"""
from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LRScheduler

DECAY_SHAPES = {
    'linear': lambda p: 1.0 - p,
    'cosine': lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
    '1-sqrt': lambda p: 1.0 - math.sqrt(p),
}


def warmup_factor(t: int, warmup_iters: int) -> float | None:
    """The warm-up's fraction of the peak at position ``t``; None after the warm-up."""
    return (t + 1) / warmup_iters if t < warmup_iters else None


class WarmupCosineLR(LRScheduler):
    """``lr * (t + 1) / W`` for ``t < W`` (W = ``warmup_iters``), then
    ``eta_min + (lr - eta_min) * (1 + cos(pi * p)) / 2`` with ``p = (t - W) / (T - W)``
    (T = ``total_iters``), ``eta_min`` from ``t = T`` on."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_iters: int | None = None,
                 warmup_iters: int = 0, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        if total_iters is None or not 0 <= warmup_iters < total_iters:
            raise ValueError(f'warmup_iters ({warmup_iters}) must be >= 0 and below '
                             f'total_iters ({total_iters}).')
        self.total_iters, self.warmup_iters, self.eta_min = total_iters, warmup_iters, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, warm = self.last_epoch, self.warmup_iters
        factor = warmup_factor(t, warm)
        if factor is not None:
            return [g['initial_lr'] * factor for g in self.optimizer.param_groups]
        p = min(1.0, (t - warm) / (self.total_iters - warm))
        cos = DECAY_SHAPES['cosine'](p)
        return [self.eta_min + (g['initial_lr'] - self.eta_min) * cos
                for g in self.optimizer.param_groups]


class WarmupStableDecayLR(LRScheduler):
    """Warm-up (as :class:`WarmupCosineLR`), the peak ``lr`` until the decay starts at
    ``S = T - D`` (``D = round(decay_fraction * T)``), then
    ``eta_min + (lr - eta_min) * shape(p)``, ``p = (t - S) / D``, ``shape`` of ``decay``
    (``linear``: 1 - p, ``cosine``: (1 + cos(pi p)) / 2, ``1-sqrt``: 1 - sqrt(p))."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_iters: int | None = None,
                 warmup_iters: int = 0, decay_fraction: float = 0.2, decay: str = '1-sqrt',
                 eta_min: float = 0.0, last_epoch: int = -1) -> None:
        if decay not in DECAY_SHAPES:
            raise ValueError(f"decay must be one of {list(DECAY_SHAPES)}; got {decay!r}.")
        if not 0.0 < decay_fraction <= 1.0:
            raise ValueError(f'decay_fraction must be in (0, 1]; got {decay_fraction}.')
        self.decay_iters = max(1, round(decay_fraction * (total_iters or 0)))
        if total_iters is None or warmup_iters < 0 or \
                warmup_iters + self.decay_iters > total_iters:
            raise ValueError(f'warmup_iters ({warmup_iters}) + the decay ({self.decay_iters} '
                             f'iterations) must fit in total_iters ({total_iters}).')
        self.total_iters, self.warmup_iters, self.eta_min = total_iters, warmup_iters, eta_min
        self.decay_fraction, self.decay = decay_fraction, decay
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t = self.last_epoch
        factor = warmup_factor(t, self.warmup_iters)
        if factor is not None:
            return [g['initial_lr'] * factor for g in self.optimizer.param_groups]
        start = self.total_iters - self.decay_iters
        if t < start:
            return [g['initial_lr'] for g in self.optimizer.param_groups]
        shape = DECAY_SHAPES[self.decay](min(1.0, (t - start) / self.decay_iters))
        return [self.eta_min + (g['initial_lr'] - self.eta_min) * shape
                for g in self.optimizer.param_groups]


class OneCycleLR(LRScheduler):
    """torch's one-cycle learning rate with the optimizer's ``lr`` as its ``max_lr``: from
    ``lr / div_factor`` up to ``lr`` over the first ``pct_start`` of ``total_steps``, then down
    to ``lr / div_factor / final_div_factor`` (``three_phase``: back to the start value over as
    many steps first, then down), ``anneal_strategy`` ``cos`` or ``linear``; the final value
    after ``total_steps`` (where torch raises)."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int | None = None,
                 pct_start: float = 0.3, anneal_strategy: str = 'cos', div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        if total_steps is None or total_steps < 2:
            raise ValueError(f'total_steps must be an integer >= 2; got {total_steps}.')
        if not 0.0 < pct_start < 1.0:
            raise ValueError(f'pct_start must be in (0, 1); got {pct_start}.')
        if anneal_strategy not in ('cos', 'linear'):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear'; got "
                             f'{anneal_strategy!r}.')
        self.total_steps, self.pct_start, self.anneal_strategy = total_steps, pct_start, \
            anneal_strategy
        self.div_factor, self.final_div_factor, self.three_phase = div_factor, \
            final_div_factor, three_phase
        super().__init__(optimizer, last_epoch)

    def phases(self, peak: float) -> list[tuple[float, float, float]]:
        """``(end step, start value, end value)`` of each phase, as torch defines them."""
        start, rise = peak / self.div_factor, float(self.pct_start * self.total_steps) - 1
        low, last = start / self.final_div_factor, float(self.total_steps - 1)
        if self.three_phase:
            return [(rise, start, peak), (2 * rise, peak, start), (last, start, low)]
        return [(rise, start, peak), (last, peak, low)]

    def anneal(self, start: float, end: float, pct: float) -> float:
        pct = min(1.0, pct)
        if self.anneal_strategy == 'cos':
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        t, lrs = self.last_epoch, []
        for group in self.optimizer.param_groups:
            phases, begin = self.phases(group['initial_lr']), 0.0
            for i, (end, start_lr, end_lr) in enumerate(phases):
                if t <= end or i == len(phases) - 1:
                    lrs.append(self.anneal(start_lr, end_lr, (t - begin) / (end - begin)))
                    break
                begin = end
        return lrs
