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

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float | None = None,
               when: bool | torch.Tensor = True) -> None:
        """Move towards ``model``; ``when`` False (or a 0-dim False tensor, decided on the device
        without a host sync) leaves everything as it is."""
        if when is False:
            return
        decay = self.decay if decay is None else decay
        ema_params = dict(self.module.named_parameters())
        pairs = [(ema_params[name], param.detach()) for name, param in model.named_parameters()]
        ema, new = [e for e, _ in pairs], [p for _, p in pairs]
        if when is True:
            torch._foreach_lerp_(ema, new, 1.0 - decay)
        else:
            torch._foreach_lerp_(ema, new, when.to(ema[0].dtype) * (1.0 - decay))
        ema_buffers = dict(self.module.named_buffers())
        for name, buffer in model.named_buffers():
            target = ema_buffers[name]
            target.copy_(buffer if when is True else torch.where(when, buffer, target))

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        self.module.load_state_dict(state, strict=strict)
