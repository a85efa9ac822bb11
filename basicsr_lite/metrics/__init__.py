"""Metrics: every ``*_metric.py`` here registers its functions in METRIC_REGISTRY."""
from pathlib import Path
from typing import Any

from basicsr_lite.registry import METRIC_REGISTRY
from basicsr_lite.utils.misc import import_modules_with_suffix

import_modules_with_suffix(__name__, Path(__file__).parent, '_metric')

from basicsr_lite.metrics.psnr_ssim_metric import (  # noqa: E402
    calculate_psnr, calculate_psnr_pt, calculate_ssim, calculate_ssim_pt)

__all__ = ['calculate_metric', 'is_no_reference', 'metric_better', 'calculate_psnr',
           'calculate_ssim', 'calculate_psnr_pt', 'calculate_ssim_pt']


def is_no_reference(metric_opt: dict) -> bool:
    """Whether a metric scores an image alone (NIQE), without a GT image."""
    return getattr(METRIC_REGISTRY.get(metric_opt['type']), 'no_reference', False)


def metric_better(metric_opt: dict) -> str:
    """'higher' or 'lower': the option's ``better``, else the metric's own (PSNR: higher)."""
    return metric_opt.get('better') or getattr(METRIC_REGISTRY.get(metric_opt['type']),
                                               'better', 'higher')


def calculate_metric(data: dict, opt: dict) -> Any:
    """Call the metric ``opt['type']`` on ``data`` (keys img/img2) with the rest of ``opt``."""
    kwargs = {k: v for k, v in opt.items() if k not in ('type', 'better')}
    return METRIC_REGISTRY.get(opt['type'])(**data, **kwargs)
