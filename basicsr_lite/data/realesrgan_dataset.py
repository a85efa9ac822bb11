"""RealESRGANDataset: GT images and the blur kernels with which the model degrades them."""
from __future__ import annotations

import random
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from basicsr_lite.data.contract import DatasetTraits
from basicsr_lite.data.degrade.kernels import KERNEL_TYPES, random_blur_kernel, random_final_sinc
from basicsr_lite.data.io.file_client import FileClient
from basicsr_lite.data.io.listing import image_paths, lmdb_keys
from basicsr_lite.data.io.pixels import load_image, to_float
from basicsr_lite.data.transforms import augment
from basicsr_lite.registry import DATASET_REGISTRY
from basicsr_lite.utils.checks import (odd_size, one_of_each, positive, probabilities, probability,
                                       value_range)
from basicsr_lite.utils.img_util import img2tensor

SMALLEST_KERNEL = 7  # kernel sizes are drawn from the odd sizes 7 .. blur_kernel_size
FINAL_SINC_SIZE = 21

# key -> check, for the keys of one blur stage (suffix '' or '2')
_STAGE_CHECKS = {
    'blur_kernel_size': odd_size(3),
    'kernel_list': one_of_each(KERNEL_TYPES),
    'kernel_prob': probabilities(),
    'sinc_prob': probability,
    'blur_sigma': value_range(0.01),
    'betag_range': value_range(0.01),
    'betap_range': value_range(0.01),
}
_OTHER_CHECKS = {'final_sinc_prob': probability, 'crop_pad_size': positive}
_X4PLUS_KERNEL_PROB = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)


@DATASET_REGISTRY.register()
class RealESRGANDataset(Dataset):
    """GT images, flipped / rotated, then cropped (or reflect-padded) to ``crop_pad_size``
    (BasicSR: a fixed 400), and three kernels drawn from the sample's seed: ``kernel1`` and
    ``kernel2`` (the blur of each degradation stage: a sinc with ``sinc_prob``, else a kernel of
    ``kernel_list`` drawn with ``kernel_prob``; sizes odd from 7 to ``blur_kernel_size``,
    zero-padded to it) and ``sinc_kernel`` (the final sinc with ``final_sinc_prob``, else an
    impulse). The model (RealESRNetModel / RealESRGANModel) makes the LQ images from them.

    BasicSR's option keys; defaults are Real-ESRGAN's x4plus recipe. ``gt_size`` is accepted
    for BasicSR's files: the model crops its top-level ``gt_size`` (they must agree).
    Items: ``{'gt', 'kernel1', 'kernel2', 'sinc_kernel', 'gt_path'}``.
    """

    traits = DatasetTraits(model_crops=True)  # the model cuts gt_size patches, after degrading

    def __init__(self, dataroot_gt: str, meta_info: str | None = None,
                 io_backend: dict | None = None,
                 blur_kernel_size: int = 21, kernel_list: Sequence[str] = KERNEL_TYPES,
                 kernel_prob: Sequence[float] = _X4PLUS_KERNEL_PROB, sinc_prob: float = 0.1,
                 blur_sigma: Sequence[float] = (0.2, 3), betag_range: Sequence[float] = (0.5, 4),
                 betap_range: Sequence[float] = (1, 2),
                 blur_kernel_size2: int = 21, kernel_list2: Sequence[str] = KERNEL_TYPES,
                 kernel_prob2: Sequence[float] = _X4PLUS_KERNEL_PROB, sinc_prob2: float = 0.1,
                 blur_sigma2: Sequence[float] = (0.2, 1.5),
                 betag_range2: Sequence[float] = (0.5, 4),
                 betap_range2: Sequence[float] = (1, 2),
                 final_sinc_prob: float = 0.8, use_hflip: bool = True, use_rot: bool = False,
                 crop_pad_size: int = 400, gt_size: int | None = None) -> None:
        super().__init__()
        options = {k: v for k, v in locals().items() if k in (*self._checks(), 'gt_size')}
        problems = self.option_problems(options)
        if problems:
            raise ValueError(' '.join(f'{key}: {message}' for key, message in problems))
        io_backend = dict(io_backend or {'type': 'disk'})
        backend = io_backend.pop('type')
        if backend == 'lmdb':
            io_backend.update(db_paths=[dataroot_gt], client_keys=['gt'])
            self.paths = sorted(lmdb_keys(dataroot_gt))
        else:
            self.paths = image_paths(dataroot_gt, meta_info)
        self.file_client = FileClient(backend, **io_backend)
        self.client_key = 'gt' if backend == 'lmdb' else 'default'
        self.stages = [
            dict(kernel_sizes=self._sizes(blur_kernel_size), sinc_prob=sinc_prob,
                 kernel_list=list(kernel_list), kernel_prob=list(kernel_prob),
                 blur_sigma=blur_sigma, betag_range=betag_range, betap_range=betap_range,
                 pad_to=blur_kernel_size),
            dict(kernel_sizes=self._sizes(blur_kernel_size2), sinc_prob=sinc_prob2,
                 kernel_list=list(kernel_list2), kernel_prob=list(kernel_prob2),
                 blur_sigma=blur_sigma2, betag_range=betag_range2, betap_range=betap_range2,
                 pad_to=blur_kernel_size2)]
        self.final_sinc_prob = final_sinc_prob
        self.use_hflip, self.use_rot = use_hflip, use_rot
        self.crop_pad_size = crop_pad_size

    @staticmethod
    def _sizes(largest: int) -> list[int]:
        return list(range(SMALLEST_KERNEL, largest + 1, 2)) or [largest]

    @staticmethod
    def _checks() -> dict:
        """key -> check of every checked key (both stages)."""
        return {**_STAGE_CHECKS, **{f'{k}2': c for k, c in _STAGE_CHECKS.items()},
                **_OTHER_CHECKS}

    @classmethod
    def option_problems(cls, options: dict[str, Any],
                        check_files: bool = True) -> list[tuple[str, str]]:
        """``(key, what is wrong)`` for the values of ``options`` (a dataset entry) that this
        dataset cannot use; checked with the option file, before anything runs."""
        problems = []
        for name, check in cls._checks().items():
            if name in options:
                try:
                    message = check(options[name])
                except TypeError:  # a value of the wrong type: the type check reports it
                    continue
                if message:
                    problems.append((name, message))
        for suffix in ('', '2'):
            kernels = options.get(f'kernel_list{suffix}', KERNEL_TYPES)
            probs = options.get(f'kernel_prob{suffix}', _X4PLUS_KERNEL_PROB)
            if isinstance(kernels, (list, tuple)) and isinstance(probs, (list, tuple)) and \
                    len(kernels) != len(probs):
                problems.append((f'kernel_prob{suffix}', f'has {len(probs)} probabilities for '
                                 f'the {len(kernels)} kernels of kernel_list{suffix}.'))
        gt_size, crop = options.get('gt_size'), options.get('crop_pad_size', 400)
        if isinstance(gt_size, int) and isinstance(crop, int) and gt_size > crop:
            problems.append(('gt_size', f'{gt_size} is larger than crop_pad_size {crop}, the '
                             f'size of the GT images the model crops from.'))
        return problems

    def __len__(self) -> int:
        return len(self.paths)

    def _crop_or_pad(self, img: np.ndarray) -> np.ndarray:
        """Reflect-pad (bottom / right) to at least ``crop_pad_size``, then a random crop."""
        size = self.crop_pad_size
        h, w = img.shape[:2]
        if h < size or w < size:
            img = cv2.copyMakeBorder(img, 0, max(0, size - h), 0, max(0, size - w),
                                     cv2.BORDER_REFLECT_101)
            h, w = img.shape[:2]
        if h > size or w > size:
            top, left = random.randint(0, h - size), random.randint(0, w - size)
            img = img[top:top + size, left:left + size]
        return img

    def __getitem__(self, index: int) -> dict:
        gt_path = self.paths[index]
        img = load_image(self.file_client, gt_path, self.client_key)
        img = self._crop_or_pad(augment(img, self.use_hflip, self.use_rot))
        kernel1, kernel2 = (random_blur_kernel(**stage) for stage in self.stages)
        sinc = random_final_sinc(self._sizes(FINAL_SINC_SIZE), self.final_sinc_prob,
                                 FINAL_SINC_SIZE)
        return {'gt': img2tensor(to_float(img)),
                'kernel1': torch.from_numpy(kernel1).float(),
                'kernel2': torch.from_numpy(kernel2).float(),
                'sinc_kernel': torch.from_numpy(sinc).float(), 'gt_path': gt_path}
