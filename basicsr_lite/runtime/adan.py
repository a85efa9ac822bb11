"""Adan (Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep
Models", arXiv 2208.06677): the optimizer LKDN's authors train with (``type: Adan`` in
stella-von/LKDN's option files).

The update follows the authors' reference implementation (sail-sg/Adan): moving averages of
the gradient (``betas[0]``), of the gradient difference (``betas[1]``) and of the square of the
Nesterov-corrected gradient ``g + betas[1] * (g - g_prev)`` (``betas[2]``), each bias-corrected;
at the first step the previous gradient is the gradient itself. Weight decay is the proximal
form ``p = (p - lr * update) / (1 + lr * wd)``, or decoupled ``p * (1 - lr * wd)`` first with
``no_prox``. One plain per-tensor loop: ``foreach`` / ``fused`` are accepted (option files and
``train.optimizer_impl`` pass them) and change nothing.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch.optim import Optimizer


class Adan(Optimizer):
    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float, float] = (0.98, 0.92, 0.99), eps: float = 1e-8,
                 weight_decay: float = 0.0, no_prox: bool = False, foreach: bool | None = None,
                 fused: bool | None = None) -> None:
        if lr < 0.0 or eps < 0.0 or weight_decay < 0.0:
            raise ValueError(f'Adan: lr, eps and weight_decay must be >= 0 '
                             f'(got {lr}, {eps}, {weight_decay}).')
        if len(betas) != 3 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f'Adan: betas must be three values in [0, 1), got {betas}.')
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        no_prox=no_prox)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group['params']:
                if p.grad is not None:
                    self._update(p, group)
        return loss

    def _update(self, p: torch.Tensor, group: dict) -> None:
        beta1, beta2, beta3 = group['betas']
        lr, wd = group['lr'], group['weight_decay']
        grad = p.grad
        state = self.state[p]
        if not state:
            state['step'] = 0
            state['exp_avg'] = torch.zeros_like(p)
            state['exp_avg_sq'] = torch.zeros_like(p)
            state['exp_avg_diff'] = torch.zeros_like(p)
            state['pre_grad'] = grad.clone()
        state['step'] += 1
        step = state['step']
        diff = grad - state['pre_grad']
        nesterov = grad + beta2 * diff
        state['exp_avg'].mul_(beta1).add_(grad, alpha=1 - beta1)
        state['exp_avg_diff'].mul_(beta2).add_(diff, alpha=1 - beta2)
        state['exp_avg_sq'].mul_(beta3).addcmul_(nesterov, nesterov, value=1 - beta3)
        denom = (state['exp_avg_sq'].sqrt() / math.sqrt(1 - beta3**step)).add_(group['eps'])
        update = (state['exp_avg'] / (1 - beta1**step)
                  + beta2 * state['exp_avg_diff'] / (1 - beta2**step)).div_(denom)
        if group['no_prox']:
            p.mul_(1 - lr * wd).add_(update, alpha=-lr)
        else:
            p.add_(update, alpha=-lr).div_(1 + lr * wd)
        state['pre_grad'].copy_(grad)
