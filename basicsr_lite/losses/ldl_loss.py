"""LDL: Liang, Zeng & Zhang, CVPR 2022, "Details or Artifacts: A Locally Discriminative Learning
Approach to Realistic Image Super-Resolution" (authors' csjliang/LDL, as BasicSR's ``ldl_opt``).

A pixel loss between ``map * output`` and ``map * gt``, where the artefact map is large where the
GAN output's residual is locally noisy and larger than that of the EMA network's output."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from basicsr_lite.losses.basic_loss import CharbonnierLoss, L1Loss, MSELoss
from basicsr_lite.registry import LOSS_REGISTRY

CRITERIA = {'l1': L1Loss, 'l2': MSELoss, 'charbonnier': CharbonnierLoss}


def local_variance(residual: torch.Tensor, ksize: int) -> torch.Tensor:
    """Unbiased variance of each pixel's ``ksize`` x ``ksize`` neighbourhood (reflect padding),
    ``(N, C, H, W)`` -> ``(N, C, H, W)``."""
    pad = (ksize - 1) // 2
    padded = F.pad(residual, [pad, pad, pad, pad], mode='reflect')
    windows = padded.unfold(2, ksize, 1).unfold(3, ksize, 1)  # (N, C, H, W, k, k)
    return windows.var(dim=(-1, -2), unbiased=True)


def artifact_map(gt: torch.Tensor, output: torch.Tensor, output_ema: torch.Tensor,
                 ksize: int = 7) -> torch.Tensor:
    """The refined artefact map ``(N, 1, H, W)`` of the authors' ``get_refined_artifact_map``:
    residual r = sum over channels of |gt - output|; map = var(r over the image)^(1/5) * local
    variance of r, set to 0 where r is smaller than the EMA output's residual (there the GAN
    output is at least as faithful as the stable EMA one: detail, not artefact). Not detached:
    as in the authors' code, G's gradient also flows through the map."""
    residual = (gt - output).abs().sum(1, keepdim=True)
    residual_ema = (gt - output_ema).abs().sum(1, keepdim=True)
    patch_level = residual.var(dim=(-1, -2, -3), keepdim=True) ** (1 / 5)
    weight = patch_level * local_variance(residual, ksize)
    return weight.masked_fill(residual < residual_ema, 0.0)


@LOSS_REGISTRY.register()
class LDLLoss(nn.Module):
    """``forward(output, gt, output_ema)``: ``criterion`` ('l1', as the authors' L1Loss; 'l2';
    'charbonnier') with ``loss_weight`` and ``reduction`` between ``map * output`` and
    ``map * gt``; ``ksize``: the local window (7 in the paper). The models pass the EMA
    network's output of the same batch (LDL needs ``train.ema_decay > 0``)."""

    needs_ema_output = True

    def __init__(self, loss_weight: float = 1.0, criterion: str = 'l1', reduction: str = 'mean',
                 ksize: int = 7) -> None:
        super().__init__()
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {list(CRITERIA)}; got '{criterion}'.")
        if ksize < 3 or ksize % 2 == 0:
            raise ValueError(f'ksize must be odd and >= 3; got {ksize}.')
        self.loss_weight = loss_weight
        self.ksize = ksize
        self.criterion = CRITERIA[criterion](loss_weight, reduction)

    def forward(self, output: torch.Tensor, gt: torch.Tensor,
                output_ema: torch.Tensor) -> torch.Tensor:
        weight = artifact_map(gt, output, output_ema, self.ksize)
        return self.criterion(weight * output, weight * gt)
