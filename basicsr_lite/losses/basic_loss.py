"""Pixel losses with BasicSR's arguments: ``loss_weight``, ``reduction`` and an optional
element-wise ``weight`` map in ``forward``."""
from __future__ import annotations

import torch
from torch import nn

from basicsr_lite.registry import LOSS_REGISTRY

_REDUCTIONS = ('none', 'mean', 'sum')


class _PixelLoss(nn.Module):
    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean') -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}; got '{reduction}'.")
        self.loss_weight = loss_weight
        self.reduction = reduction

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weight: torch.Tensor | None = None) -> torch.Tensor:
        loss = self.elementwise(pred, target)
        if weight is not None:
            loss = loss * weight
        if self.reduction == 'mean':
            # With a weight map, BasicSR averages over the weighted elements only.
            loss = loss.mean() if weight is None else loss.sum() / weight.expand_as(loss).sum()
        elif self.reduction == 'sum':
            loss = loss.sum()
        return self.loss_weight * loss


@LOSS_REGISTRY.register()
class L1Loss(_PixelLoss):
    """``|pred - target|`` per element, reduced by ``reduction`` (the mean by default), times
    ``loss_weight`` (BasicSR's L1Loss)."""

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs()


@LOSS_REGISTRY.register()
class MSELoss(_PixelLoss):
    """``(pred - target)^2`` per element, reduced by ``reduction`` (the mean by default), times
    ``loss_weight`` (BasicSR's MSELoss)."""

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target)**2


@LOSS_REGISTRY.register()
class CharbonnierLoss(_PixelLoss):
    """sqrt((pred - target)^2 + eps): a differentiable L1 (Lai et al., LapSRN)."""

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean',
                 eps: float = 1e-12) -> None:
        super().__init__(loss_weight, reduction)
        self.eps = eps

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((pred - target)**2 + self.eps)
