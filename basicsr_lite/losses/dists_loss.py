"""DISTS as a training loss (Ding et al., TPAMI 2020; the network is archs/dists_arch.py).

Options as traiNNer-redux's / neosr's ``DISTSLoss``: ``loss_weight``, ``as_loss``. Like our
PerceptualLoss, the reference gets no gradient (its features are computed without a graph), and
the whole computation runs in float32 with autocast off: DISTS' variances and covariances are
differences of near-equal moments, which half precision cancels (traiNNer-redux casts its inputs
to float32 for the same reason).
"""
from __future__ import annotations

import torch
from torch import nn

from basicsr_lite.archs.dists_arch import DISTS, dists_score
from basicsr_lite.registry import LOSS_REGISTRY


@LOSS_REGISTRY.register()
class DISTSLoss(nn.Module):
    """``forward(x, gt)``: ``as_loss`` -> ``loss_weight * mean over the batch of DISTS(x, gt)``
    (a scalar, gradients to ``x`` only); else the N per-image DISTS values, unweighted and
    without a graph (the metric's use, as in traiNNer-redux / neosr).

    ``vgg_weights``: None -> torchvision's ImageNet ``vgg16-397923af.pth`` from the torch hub
    cache (downloaded there when possible), or a path to a torchvision-layout file.
    ``dists_weights``: the authors' alpha / beta ``weights.pt`` (None: ``$BASICSR_LITE_DISTS_
    WEIGHTS`` or ``~/.cache/basicsr_lite/dists/weights.pt``).
    """

    def __init__(self, loss_weight: float = 1.0, as_loss: bool = True,
                 vgg_weights: str | None = None, dists_weights: str | None = None) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.as_loss = as_loss
        self.dists = DISTS(vgg_weights or 'imagenet', dists_weights,
                           weights_hint='give the loss a vgg_weights path')

    def forward(self, x: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            x, gt = x.float(), gt.detach().float()
            with torch.no_grad():
                gt_feats = self.dists.features(gt)
            if not self.as_loss:
                with torch.no_grad():
                    return dists_score(self.dists.features(x), gt_feats, self.dists.alpha,
                                       self.dists.beta)
            score = dists_score(self.dists.features(x), gt_feats, self.dists.alpha,
                                self.dists.beta)
            return self.loss_weight * score.mean()
