"""Total variation: a smoothness prior on the output alone."""
from __future__ import annotations

import torch
from torch import nn

from basicsr_lite.registry import LOSS_REGISTRY


@LOSS_REGISTRY.register()
class TVLoss(nn.Module):
    """``loss_weight * (mean |x[i+1, j] - x[i, j]|^p + mean |x[i, j+1] - x[i, j]|^p)`` with
    p = 1 (``criterion`` 'l1', the sum of BasicSR's WeightedTVLoss two L1 terms without a
    weight map) or 2 ('l2'); ``reduction`` 'sum' sums the differences instead of averaging.

    ``forward(pred, target=None)``: the target is accepted (so TVLoss fits a list of
    ``(pred, target)`` losses) and ignored. BasicSR's ``WeightedTVLoss`` name is not taken: its
    second argument is a weight map, which a ``(pred, target)`` call would fill with the target.
    """

    def __init__(self, loss_weight: float = 1.0, criterion: str = 'l1',
                 reduction: str = 'mean') -> None:
        super().__init__()
        if criterion not in ('l1', 'l2'):
            raise ValueError(f"criterion must be 'l1' or 'l2'; got '{criterion}'.")
        if reduction not in ('mean', 'sum'):
            raise ValueError(f"reduction must be 'mean' or 'sum'; got '{reduction}'.")
        self.loss_weight = loss_weight
        self.criterion = criterion
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        del target  # a prior on pred alone
        total = pred.new_zeros(())
        for diff in (pred[..., 1:, :] - pred[..., :-1, :], pred[..., 1:] - pred[..., :-1]):
            diff = diff.abs() if self.criterion == 'l1' else diff**2
            total = total + (diff.mean() if self.reduction == 'mean' else diff.sum())
        return self.loss_weight * total
