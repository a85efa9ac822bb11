"""Colour losses in BT.601 YCbCr (MATLAB / BasicSR convention, utils/img_util.py): chroma
(CbCr) and luma (Y). Inputs are NCHW RGB in [0, 1]."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from basicsr_lite.losses.loss_util import pointwise_criterion
from basicsr_lite.registry import LOSS_REGISTRY
from basicsr_lite.utils.img_util import rgb2y, rgb2ycbcr


def _check_rgb(x: torch.Tensor, name: str) -> None:
    if x.dim() != 4 or x.size(1) != 3:
        raise ValueError(f'{name} needs NCHW RGB tensors; got shape {tuple(x.shape)}.')


@LOSS_REGISTRY.register()
class ColorLoss(nn.Module):
    """traiNNer-redux's ``ColorLoss`` (same arguments and criterion): ``criterion`` between the
    CbCr channels of pred and target, each first averaged over ``scale`` x ``scale`` blocks
    (``avg_pool2d``, a remainder dropped; ``scale`` 1: no pooling), so that only the colour of
    regions counts, not chroma detail."""

    def __init__(self, criterion: str = 'l1', loss_weight: float = 1.0, scale: int = 4) -> None:
        super().__init__()
        if scale < 1:
            raise ValueError(f'scale must be >= 1; got {scale}.')
        self.loss_weight = loss_weight
        self.scale = scale
        self.criterion = pointwise_criterion(criterion)

    def chroma(self, x: torch.Tensor) -> torch.Tensor:
        _check_rgb(x, 'ColorLoss')
        cbcr = rgb2ycbcr(x)[:, 1:]
        return F.avg_pool2d(cbcr, self.scale) if self.scale > 1 else cbcr

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss_weight * self.criterion(self.chroma(pred), self.chroma(target))


@LOSS_REGISTRY.register()
class LumaLoss(nn.Module):
    """``criterion`` between the BT.601 Y channels of pred and target (the Y of the PSNR / SSIM
    tables, ``rgb2y``). traiNNer-redux's ``LumaLoss`` has the same arguments but compares CIE
    L* instead."""

    def __init__(self, criterion: str = 'l1', loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.criterion = pointwise_criterion(criterion)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_rgb(pred, 'LumaLoss')
        return self.loss_weight * self.criterion(rgb2y(pred), rgb2y(target))
