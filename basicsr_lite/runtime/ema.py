"""Exponential moving average of a network's parameters (buffers are copied)."""
from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """``ema = decay * ema + (1 - decay) * param`` after each step; buffers (e.g. BN statistics)
    follow the trained network exactly. ``module`` is the averaged network, used for testing."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f'ema_decay must be in [0, 1); got {decay}.')
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)
        self._paired_with: nn.Module | None = None  # the model _pairs() matched last

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float | None = None,
               when: bool | torch.Tensor = True) -> None:
        """Move towards ``model``; ``when`` False (or a 0-dim False tensor, decided on the device
        without a host sync) leaves everything as it is."""
        if when is False:
            return
        decay = self.decay if decay is None else decay
        ema, new, ema_buffers, buffers = self._pairs(model)
        if when is True:
            torch._foreach_lerp_(ema, new, 1.0 - decay)
        else:
            torch._foreach_lerp_(ema, new, when.to(ema[0].dtype) * (1.0 - decay))
        for target, buffer in zip(ema_buffers, buffers):
            target.copy_(buffer if when is True else torch.where(when, buffer, target))

    def _pairs(self, model: nn.Module) -> tuple[list, list, list, list]:
        """Matching parameter and buffer lists of the EMA copy and ``model``, built once per
        model (walking the module tree every step costs about a millisecond)."""
        if self._paired_with is not model:
            ema_params, ema_buffers = dict(self.module.named_parameters()), \
                dict(self.module.named_buffers())
            params, buffers = list(model.named_parameters()), list(model.named_buffers())
            self._cached_pairs = ([ema_params[n] for n, _ in params], [p for _, p in params],
                                  [ema_buffers[n] for n, _ in buffers], [b for _, b in buffers])
            self._paired_with = model
        return self._cached_pairs

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        self.module.load_state_dict(state, strict=strict)
