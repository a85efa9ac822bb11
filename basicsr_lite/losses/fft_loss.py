"""Frequency-domain L1 loss, as the SAFMN recipes use it (``fft_opt``, weight 0.05; the SAFMN
authors' ``basicsr/losses/losses.py``)."""
from __future__ import annotations

import torch
from torch import nn

from basicsr_lite.registry import LOSS_REGISTRY

_REDUCTIONS = ('none', 'mean', 'sum')


@LOSS_REGISTRY.register()
class FFTLoss(nn.Module):
    """L1 between the real and imaginary parts of the 2-D real FFTs (unnormalised, over H and
    W) of prediction and target: it weighs every spatial frequency alike, so it pushes on the
    high frequencies a pixel L1 lets blur."""

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean') -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}; got '{reduction}'.")
        self.loss_weight = loss_weight
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred_f, target_f = torch.fft.rfft2(pred.float()), torch.fft.rfft2(target.float())
        diff = torch.view_as_real(pred_f) - torch.view_as_real(target_f)
        loss = diff.abs()
        if self.reduction == 'mean':
            loss = loss.mean()
        elif self.reduction == 'sum':
            loss = loss.sum()
        return self.loss_weight * loss
