"""Perceptual (VGG feature) and style (Gram matrix) losses, with BasicSR's options."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from basicsr_lite.archs.vgg_arch import VGGFeatureExtractor
from basicsr_lite.registry import LOSS_REGISTRY

CRITERIA = ('l1', 'l2', 'fro')


def gram_matrix(x: torch.Tensor) -> torch.Tensor:
    """``(n, c, c)`` Gram matrices of ``(n, c, h, w)`` features, divided by ``c * h * w``."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    return flat.bmm(flat.transpose(1, 2)) / (c * h * w)


@LOSS_REGISTRY.register()
class PerceptualLoss(nn.Module):
    """``forward(x, gt) -> (perceptual, style)``: sums over ``layer_weights`` (``{'conv5_4':
    1.0}``) of ``criterion`` between VGG features of ``x`` and ``gt`` (perceptual) and between
    their Gram matrices (style), times ``perceptual_weight`` / ``style_weight``; a term whose
    weight is 0 is None.

    ``vgg_weights``: None -> torchvision's ImageNet file from the torch hub cache (downloaded
    there when possible), or a path to a torchvision-layout file.
    """

    def __init__(self, layer_weights: dict, vgg_type: str = 'vgg19', use_input_norm: bool = True,
                 range_norm: bool = False, perceptual_weight: float = 1.0,
                 style_weight: float = 0.0, criterion: str = 'l1',
                 vgg_weights: str | None = None) -> None:
        super().__init__()
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {list(CRITERIA)}; got '{criterion}'.")
        if not isinstance(layer_weights, dict) or not layer_weights:
            raise ValueError(f"layer_weights must map VGG layer names to weights, e.g. "
                             f"{{'conv5_4': 1.0}}; got {layer_weights!r}.")
        self.layer_weights = {str(k): float(v) for k, v in layer_weights.items()}
        self.perceptual_weight, self.style_weight = perceptual_weight, style_weight
        self.criterion = criterion
        self.vgg = VGGFeatureExtractor(list(self.layer_weights), vgg_type, use_input_norm,
                                       range_norm, pretrained=vgg_weights or 'imagenet')

    def _distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.criterion == 'l1':
            return F.l1_loss(a, b)
        if self.criterion == 'l2':
            return F.mse_loss(a, b)
        return torch.linalg.vector_norm(a - b)  # 'fro': the Frobenius norm of the difference

    def forward(self, x: torch.Tensor, gt: torch.Tensor
                ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        x_feats = self.vgg(x.float())
        gt_feats = self.vgg(gt.detach().float())
        percep = style = None
        if self.perceptual_weight > 0:
            percep = self.perceptual_weight * sum(
                self._distance(x_feats[k], gt_feats[k]) * w for k, w in self.layer_weights.items())
        if self.style_weight > 0:
            style = self.style_weight * sum(
                self._distance(gram_matrix(x_feats[k]), gram_matrix(gt_feats[k])) * w
                for k, w in self.layer_weights.items())
        return percep, style
