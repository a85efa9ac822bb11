"""MS-SSIM (Wang, Simoncelli & Bovik 2003) as a validation metric, in numpy (one HWC image, like
``calculate_ssim``) and torch (NCHW batches, like ``calculate_ssim_pt``).

Same conventions as psnr_ssim_metric.py: images brought to 0..255 (``data_range``), optional
BT.601 Y channel, ``crop_border`` shaved from every side, one ``band``; computed per channel in
float64 and averaged over the channels. The computation is the core in utils/ssim_util.py,
shared with the SSIM / MS-SSIM losses (numbers equal pytorch-msssim's for sides >= 161; smaller
images use fewer scales, see there).
"""
from __future__ import annotations

import numpy as np
import torch

from basicsr_lite.metrics.psnr_ssim_metric import _prepare_numpy, _prepare_torch
from basicsr_lite.registry import METRIC_REGISTRY
from basicsr_lite.utils.ssim_util import ms_ssim_per_channel


@METRIC_REGISTRY.register()
def calculate_ms_ssim(img: np.ndarray, img2: np.ndarray, crop_border: int,
                      input_order: str = 'HWC', test_y_channel: bool = False,
                      data_range: float = 255.0, band: int | None = None) -> float:
    """MS-SSIM of two images in [0, data_range], BGR when 3-channel, averaged over channels."""
    img, img2 = _prepare_numpy(img, img2, crop_border, input_order, test_y_channel, data_range,
                               band)
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    y = torch.from_numpy(np.ascontiguousarray(img2.transpose(2, 0, 1)))[None]
    return float(ms_ssim_per_channel(x, y, data_range=255.0).mean())


@METRIC_REGISTRY.register()
def calculate_ms_ssim_pt(img: torch.Tensor, img2: torch.Tensor, crop_border: int,
                         test_y_channel: bool = False, data_range: float = 1.0,
                         band: int | None = None) -> torch.Tensor:
    """Per-image MS-SSIM of NCHW tensors (RGB when 3-channel) in [0, data_range], averaged over
    bands; returns a tensor of shape (N,)."""
    img, img2 = _prepare_torch(img, img2, crop_border, test_y_channel, data_range, band)
    return ms_ssim_per_channel(img, img2, data_range=255.0).mean(dim=1)


# Validation hands this function tensors instead of uint8 images.
calculate_ms_ssim_pt.takes_tensors = True
