"""TensorBoard beyond the losses: learning rate per optimizer, gradient norm per network, timing,
system load, histograms (``TrainingStats``), and LR / SR / GT images of validation
(``ValidationImages``). Everything is written on logging iterations only (values read from the
device there anyway) and on rank 0."""
from __future__ import annotations

import os
import resource
import sys
import time
from typing import Any

import cv2
import numpy as np
import torch

from basicsr_lite.engine.hooks import Hook, Run
from basicsr_lite.runtime.dist import unwrap


def process_memory_mb() -> float:
    """Resident memory of this process now (Linux), else its peak."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == 'darwin' else peak / 1024


class CpuMeter:
    """CPU use of this process (100 = one core busy) since the previous reading."""

    def __init__(self) -> None:
        self.last = (time.perf_counter(), self._cpu_seconds())

    @staticmethod
    def _cpu_seconds() -> float:
        times = os.times()
        return times.user + times.system

    def read(self) -> float:
        now = (time.perf_counter(), self._cpu_seconds())
        wall, cpu = now[0] - self.last[0], now[1] - self.last[1]
        self.last = now
        return 100.0 * cpu / wall if wall > 0 else 0.0


def gpu_stats(device: torch.device) -> dict[str, float]:
    """Memory of this process on ``device`` (MB), and the GPU's utilisation when NVML is there."""
    if device.type != 'cuda':
        return {}
    stats = {'gpu_memory_allocated_mb': torch.cuda.memory_allocated(device) / 2**20,
             'gpu_memory_reserved_mb': torch.cuda.memory_reserved(device) / 2**20,
             'gpu_memory_peak_mb': torch.cuda.max_memory_allocated(device) / 2**20}
    try:
        stats['gpu_utilization_percent'] = float(torch.cuda.utilization(device))
    except Exception:  # pynvml missing or not usable: utilisation is optional
        pass
    return stats


class TrainingStats(Hook):
    """On every logging iteration: ``lr/<optimizer>``, ``grad_norm/<network>`` (the global norm
    of the last step, before clipping), ``perf/iter_time``, ``perf/data_wait_share``,
    ``system/*`` (CPU %, RSS; GPU memory and utilisation on CUDA) and, every
    ``histogram_freq`` iterations, weight and gradient histograms of each network."""

    def __init__(self, system: bool = True, histogram_freq: int = 0) -> None:
        self.system, self.histogram_freq = system, histogram_freq
        self.cpu = CpuMeter()

    @classmethod
    def from_opt(cls, opt: dict) -> 'TrainingStats':
        return cls(opt['logger']['system_metrics'], opt['logger']['tb_histogram_freq'])

    def on_train_start(self, run: Run) -> None:
        if self.histogram_freq and run.tb_logger is not None:
            run.model.keep_gradients(True)  # gradient histograms need them after the step

    def on_iter_end(self, run: Run, it: int, log: dict[str, Any] | None) -> None:
        if log is not None and run.tb_logger is not None:
            self._scalars(run, it, log)
        if run.tb_logger is not None and self.histogram_freq and it % self.histogram_freq == 0:
            self._histograms(run, it)

    def _scalars(self, run: Run, it: int, log: dict) -> None:
        tb = run.tb_logger
        for name, lr in run.model.learning_rates().items():
            tb.add_scalar(f'lr/{name}', lr, it)
        for label, norm in run.model.gradient_norms().items():
            tb.add_scalar(f'grad_norm/{label}', norm, it)
        if 'time' in log:
            tb.add_scalar('perf/iter_time', log['time'], it)
            tb.add_scalar('perf/data_wait_share', log['data_time'] / max(log['time'], 1e-12), it)
        if self.system:
            tb.add_scalar('system/cpu_percent', self.cpu.read(), it)
            tb.add_scalar('system/rss_mb', process_memory_mb(), it)
            for key, value in gpu_stats(run.model.device).items():
                tb.add_scalar(f'system/{key}', value, it)

    def _histograms(self, run: Run, it: int) -> None:
        for label, net in run.model.named_networks().items():
            for name, param in unwrap(net).named_parameters():
                run.tb_logger.add_histogram(f'weights/{label}/{name}', param.detach().float().cpu(),
                                            it)
                if param.grad is not None:
                    run.tb_logger.add_histogram(f'grads/{label}/{name}',
                                                param.grad.detach().float().cpu(), it)


def fit_image(image: np.ndarray, size: int, fit: str) -> np.ndarray:
    """An HWC image made at most ``size`` on its longer side: downsized (area) or centre-cropped."""
    h, w = image.shape[:2]
    if max(h, w) <= size:
        return image
    if fit == 'crop':
        top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
        return image[top:top + size, left:left + size]
    ratio = size / max(h, w)
    return cv2.resize(image, (max(1, round(w * ratio)), max(1, round(h * ratio))),
                      interpolation=cv2.INTER_AREA)


def triplet(visuals: dict[str, torch.Tensor], size: int, fit: str) -> np.ndarray:
    """LR (nearest-upsampled to the SR size), SR and GT side by side, uint8 HWC RGB."""
    sr = visuals['result'][0].detach().float().clamp(0, 1).cpu()
    height, width = sr.shape[-2:]
    lq = visuals['lq'][0].detach().float().clamp(0, 1).cpu()[None]
    lq = torch.nn.functional.interpolate(lq, size=(height, width), mode='nearest')[0]
    panels = [lq, sr] + ([visuals['gt'][0].detach().float().clamp(0, 1).cpu()]
                         if 'gt' in visuals and visuals['gt'].shape[-2:] == sr.shape[-2:] else [])
    images = [fit_image((p.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), size, fit)
              for p in panels]
    gap = np.full((images[0].shape[0], 4, images[0].shape[2]), 255, np.uint8)
    row = [images[0]]
    for image in images[1:]:
        row += [gap, image]
    return np.concatenate(row, axis=1)


class ValidationImages(Hook):
    """``val.tb_images`` first validation images of each dataset as LR | SR | GT at every
    validation (``images/<dataset>/<name>``), at most ``size`` pixels per panel side."""

    def __init__(self, count: int, size: int = 256, fit: str = 'resize') -> None:
        self.count, self.size, self.fit = count, size, fit

    def on_validation_end(self, run: Run, it: int, results: dict) -> None:
        if run.tb_logger is None:
            return
        for dataset, result in results.items():
            for name, visuals in result.samples[:self.count]:
                run.tb_logger.add_image(f'images/{dataset}/{name}',
                                        triplet(visuals, self.size, self.fit), it,
                                        dataformats='HWC')
