"""DISTS (Ding et al., TPAMI 2020) as a full-reference metric: lower is more similar, 0 for
identical images. The network and where its weights come from: archs/dists_arch.py.

Images are scored at their own size; the authors' demo script first resizes images whose
shorter side exceeds 256 pixels to 256, but the published calibration values (IQA-PyTorch's
TID2013 pairs) are at full size, and so is this metric.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from basicsr_lite.archs.dists_arch import DISTS, dists_weights_file
from basicsr_lite.archs.vgg_arch import hub_weight_path
from basicsr_lite.metrics.lpips_metric import bgr_images_as_tensors
from basicsr_lite.registry import METRIC_REGISTRY
from basicsr_lite.utils.img_util import border_pair

_HINT = 'give calculate_dists a vgg_weights path'


@functools.lru_cache(maxsize=4)
def _cached_model(vgg_weights: str, dists_weights: str, device: str, hub_file: str) -> DISTS:
    """``hub_file``: where 'imagenet' weights come from now (part of the cache key only)."""
    return DISTS(vgg_weights, dists_weights, weights_hint=_HINT).to(device)


def _model(vgg_weights: str | None, dists_weights: str | None, device: torch.device) -> DISTS:
    """One DISTS per (weight files, device), built on first use."""
    return _cached_model(vgg_weights or 'imagenet', str(dists_weights_file(dists_weights)),
                         str(device), str(hub_weight_path('vgg16')))


def _crop(t: torch.Tensor, border: int | tuple[int, int]) -> torch.Tensor:
    bh, bw = border_pair(border)
    return t[..., bh:t.shape[-2] - bh, bw:t.shape[-1] - bw]


@METRIC_REGISTRY.register()
def calculate_dists_pt(img: torch.Tensor, img2: torch.Tensor, crop_border: int | tuple = 0,
                       vgg_weights: str | None = None,
                       dists_weights: str | None = None) -> torch.Tensor:
    """DISTS of each pair of two N x 3 x H x W RGB batches in [0, 1], on their device (float32,
    autocast off)."""
    model = _model(vgg_weights, dists_weights, img.device)
    with torch.no_grad(), torch.autocast(img.device.type, enabled=False):
        return model(_crop(img.float(), crop_border), _crop(img2.float(), crop_border))


@METRIC_REGISTRY.register()
def calculate_dists(img: np.ndarray, img2: np.ndarray, crop_border: int | tuple = 0,
                    input_order: str = 'HWC', vgg_weights: str | None = None,
                    dists_weights: str | None = None) -> float:
    """DISTS of two 8-bit BGR images (BasicSR's convention), on the CPU."""
    a, b = bgr_images_as_tensors(img, img2, input_order)
    return float(calculate_dists_pt(a, b, crop_border, vgg_weights, dists_weights)[0])


for _func in (calculate_dists, calculate_dists_pt):
    _func.better = 'lower'
calculate_dists_pt.takes_tensors = True
