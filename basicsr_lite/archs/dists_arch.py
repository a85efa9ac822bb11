"""DISTS (Ding, Ma, Wang & Simoncelli, "Image Quality Assessment: Unifying Structure and Texture
Similarity", TPAMI 2020): a full-reference distance in the features of an ImageNet VGG16 whose
max-pools are replaced by L2 pooling; shared by the DISTS loss and the DISTS metric.

For each of six feature maps (the image itself, relu1_2, relu2_2, relu3_3, relu4_3, relu5_3) and
each channel, with spatial means ``mx, my``, variances ``vx, vy`` and covariance ``cxy``:
``texture = (2 mx my + c1) / (mx^2 + my^2 + c1)``, ``structure = (2 cxy + c2) / (vx + vy + c2)``,
``DISTS = 1 - sum_channels(alpha * texture + beta * structure)`` with the learned ``alpha`` /
``beta`` (1475 = 3 + 64 + 128 + 256 + 512 + 512 channels each) normalised to sum to 1 together.

Module and key names follow the authors' ``DISTS_pytorch/DISTS_pt.py`` (dingkeyan93/DISTS):
``stage1`` .. ``stage5`` hold torchvision's ``vgg16.features`` modules under their indices
(``stage2.5.weight`` is ``features.5.weight``), ``stageN.<i>.filter`` the L2 pooling filters,
then ``mean``, ``std``, ``alpha``, ``beta``. No torchvision: the VGG16 weights are torchvision's
ImageNet file (given by path, or from the torch hub cache, see ``vgg_arch.imagenet_state_dict``);
``alpha`` / ``beta`` are the authors' ``weights.pt``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from basicsr_lite.archs.vgg_arch import (IMAGENET_MEAN, IMAGENET_STD, WIDTHS, imagenet_state_dict,
                                         layer_names)
from basicsr_lite.errors import UserError
from basicsr_lite.runtime.weights import load_torch

CHANNELS = (3, 64, 128, 256, 512, 512)  # of the six compared feature maps, the image first
# vgg16.features indices of each stage; stages 2-5 start with the pool that L2 pooling replaces
STAGES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))
C1 = C2 = 1e-6  # the authors' stabilising constants of the texture and structure terms
DEFAULT_WEIGHTS = Path.home() / '.cache' / 'basicsr_lite' / 'dists' / 'weights.pt'
WEIGHTS_ENV = 'BASICSR_LITE_DISTS_WEIGHTS'


class L2pooling(nn.Module):
    """``sqrt(hanning * x^2 + 1e-12)``, per channel, with stride 2: the anti-aliased pooling
    DISTS uses instead of max pooling. ``filter_size`` 5 gives the 3x3 filter
    ``outer(h, h) / sum`` with ``h = hanning(5)[1:-1] = (0.5, 1, 0.5)``, padded by 1."""

    def __init__(self, filter_size: int = 5, stride: int = 2, channels: int = 64) -> None:
        super().__init__()
        self.padding = (filter_size - 2) // 2
        self.stride = stride
        self.channels = channels
        taps = np.hanning(filter_size)[1:-1]
        window = torch.tensor(np.outer(taps, taps), dtype=torch.float32)
        window = window / window.sum()
        self.register_buffer('filter', window.expand(channels, 1, -1, -1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.conv2d(x ** 2, self.filter, stride=self.stride, padding=self.padding,
                          groups=x.shape[1])
        return (pooled + 1e-12).sqrt()


def dists_weights_file(path: str | None = None) -> Path:
    """The authors' ``weights.pt`` (``alpha`` and ``beta``): ``path``, else
    ``$BASICSR_LITE_DISTS_WEIGHTS``, else ``~/.cache/basicsr_lite/dists/weights.pt``."""
    target = Path(path or os.environ.get(WEIGHTS_ENV) or DEFAULT_WEIGHTS)
    if not target.is_file():
        raise UserError(
            f'DISTS needs its learned alpha / beta file weights.pt (dingkeyan93/DISTS: '
            f'DISTS_pytorch/weights.pt, 12 KB); not found at {target}. Give dists_weights, set '
            f'{WEIGHTS_ENV}, or copy it to {DEFAULT_WEIGHTS}.')
    return target


def dists_score(feats: list[torch.Tensor], feats2: list[torch.Tensor], alpha: torch.Tensor,
                beta: torch.Tensor) -> torch.Tensor:
    """DISTS of each image pair (shape (N,)) from the six feature maps of either image and the
    raw ``alpha`` / ``beta`` (1, 1475, 1, 1), normalised here as the authors do."""
    total = alpha.sum() + beta.sum()
    alphas = torch.split(alpha / total, list(CHANNELS), dim=1)
    betas = torch.split(beta / total, list(CHANNELS), dim=1)
    texture_sum = structure_sum = 0
    for x, y, a, b in zip(feats, feats2, alphas, betas):
        x_mean = x.mean([2, 3], keepdim=True)
        y_mean = y.mean([2, 3], keepdim=True)
        texture = (2 * x_mean * y_mean + C1) / (x_mean ** 2 + y_mean ** 2 + C1)
        texture_sum = texture_sum + (a * texture).sum(1)
        x_var = ((x - x_mean) ** 2).mean([2, 3], keepdim=True)
        y_var = ((y - y_mean) ** 2).mean([2, 3], keepdim=True)
        covariance = (x * y).mean([2, 3], keepdim=True) - x_mean * y_mean
        structure = (2 * covariance + C2) / (x_var + y_var + C2)
        structure_sum = structure_sum + (b * structure).sum(1)
    return 1 - (texture_sum + structure_sum).flatten()


class DISTS(nn.Module):
    """``forward(x, y)``: N x 3 x H x W RGB in [0, 1] each -> N distances (0: identical).

    ``vgg_weights``: 'imagenet' (torchvision's ``vgg16-397923af.pth`` from the torch hub cache,
    downloaded there where there is internet), a path to a torchvision-layout VGG16 file, or
    None (random backbone: tests only). ``dists_weights``: the ``alpha`` / ``beta`` file, see
    :func:`dists_weights_file`. Frozen; always in eval mode. The caller chooses where gradients
    flow (:meth:`features` of the prediction with grad, of the reference without).
    """

    def __init__(self, vgg_weights: str | None = 'imagenet', dists_weights: str | None = None,
                 weights_hint: str = 'give DISTS a vgg_weights path') -> None:
        super().__init__()
        names = layer_names('vgg16')
        channels = 3
        for stage, (start, stop) in enumerate(STAGES, 1):
            modules = nn.Sequential()
            for index in range(start, stop):
                name = names[index]
                if name.startswith('conv'):
                    width = WIDTHS[int(name[4]) - 1]
                    modules.add_module(str(index), nn.Conv2d(channels, width, 3, 1, 1))
                    channels = width
                elif name.startswith('relu'):
                    modules.add_module(str(index), nn.ReLU())
                else:
                    modules.add_module(str(index), L2pooling(channels=channels))
            setattr(self, f'stage{stage}', modules)
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        weights = load_torch(dists_weights_file(dists_weights))
        shape = (1, sum(CHANNELS), 1, 1)
        for key in ('alpha', 'beta'):
            value = weights.get(key) if isinstance(weights, dict) else None
            if value is None or tuple(value.shape) != shape:
                raise UserError(f'{dists_weights_file(dists_weights)} is not the DISTS '
                                f'weights.pt: {key} should be a tensor of shape {shape}.')
            self.register_parameter(key, nn.Parameter(value.float(), requires_grad=False))
        if vgg_weights is not None:
            self._load_vgg(vgg_weights, weights_hint)
        self.requires_grad_(False)
        self.eval()

    def _load_vgg(self, vgg_weights: str, hint: str) -> None:
        state = imagenet_state_dict('vgg16', None if vgg_weights == 'imagenet' else vgg_weights,
                                    hint)
        own = {}
        for name, module in self.named_modules():
            if isinstance(module, nn.Conv2d):  # name: 'stage<s>.<features index>'
                for leaf in ('weight', 'bias'):
                    source = f"features.{name.split('.')[1]}.{leaf}"
                    shape = getattr(module, leaf).shape
                    if source not in state or state[source].shape != shape:
                        raise UserError(f'The VGG weights lack {source} of shape '
                                        f'{tuple(shape)}: not a torchvision vgg16 state dict.')
                    own[f'{name}.{leaf}'] = state[source]
        self.load_state_dict(own, strict=False)

    def train(self, mode: bool = True) -> 'DISTS':
        return super().train(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The six compared maps: the input itself, then relu1_2 .. relu5_3 of the
        ImageNet-normalised input."""
        feats = [x]
        h = (x - self.mean) / self.std
        for stage in (self.stage1, self.stage2, self.stage3, self.stage4, self.stage5):
            h = stage(h)
            feats.append(h)
        return feats

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return dists_score(self.features(x), self.features(y), self.alpha, self.beta)
