"""GT images only; LR images made on the fly at arbitrary scales (ArbSR's data)."""
from __future__ import annotations

import copy
import math
import random
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from basicsr_lite.data.contract import DatasetTraits
from basicsr_lite.data.degrade.imresize import imresize
from basicsr_lite.data.degrade.scales import (Pair, evaluation_crop, is_integer, lr_crop_size,
                                              make_lr, parse_scales, scale_label, scale_step)
from basicsr_lite.data.io.file_client import FileClient
from basicsr_lite.data.io.listing import image_paths
from basicsr_lite.data.io.pixels import PixelReader
from basicsr_lite.data.io.scan import image_size
from basicsr_lite.data.transforms import augment
from basicsr_lite.errors import DataError
from basicsr_lite.registry import DATASET_REGISTRY

MARGIN = 3  # LR pixels of context around a patch: past the bicubic kernel's reach (2 + 1/s)


@DATASET_REGISTRY.register()
class MultiScaleDataset(Dataset):
    """Arbitrary-scale SR data from GT images: ``scales`` is a list (numbers, or [height, width]
    pairs for asymmetric scales) or a range ``{min: 1.1, max: 4.0, step: 0.1}``.

    Train: every batch has one scale, drawn from the batch's seed: during the first
    ``integer_scale_epochs`` epochs only among the integer scales of the list (ArbSR trains one
    epoch on x2, x3, x4 for stability), then among all. A sample is an ``lq_size`` LR patch
    on the scale's grid and its ``round(scale * lq_size)`` GT patch; the LR patch is exactly the
    patch of the whole image's MATLAB-bicubic LR (ArbSR's pre-made files), computed from the GT
    patch and a margin. Flips, and 90-degree rotations when the scale is symmetric.

    Val / test: one copy of the dataset per scale (:meth:`at_scale`): whole images, LR made and
    cropped as ArbSR evaluates. Items: ``{'lq', 'gt', 'lq_path', 'gt_path', 'scale'}`` with
    ``scale`` = (scale_h, scale_w).
    """

    # the sampler gives each sample its batch's seed (one scale per batch)
    traits = DatasetTraits(per_batch=True, gives_scale=True)

    def __init__(self, dataroot_gt: str, scales: Any, phase: str = 'train',
                 io_backend: dict | None = None, meta_info_file: str | None = None,
                 lq_size: int = 50, use_hflip: bool = False, use_rot: bool = False,
                 integer_scale_epochs: int = 1, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, scan: bool = True) -> None:
        super().__init__()
        self.scales = parse_scales(scales)
        if lq_size < 1 or integer_scale_epochs < 0:
            raise ValueError(f'lq_size must be >= 1 and integer_scale_epochs >= 0; got '
                             f'{lq_size}, {integer_scale_epochs}.')
        io_backend = dict(io_backend or {'type': 'disk'})
        backend = io_backend.pop('type')
        if backend != 'disk':
            raise DataError('MultiScaleDataset reads GT images from disk (io_backend: disk).')
        self.file_client = FileClient(backend, **io_backend)
        self.pixels = PixelReader('color', None, mean, std)
        self.phase, self.lq_size = phase, lq_size
        self.use_hflip, self.use_rot = use_hflip, use_rot
        self.integer_scales = [p for p in self.scales if is_integer(p)]
        self.integer_scale_epochs = integer_scale_epochs if self.integer_scales else 0
        self.paths = image_paths(dataroot_gt, meta_info_file)
        if scan and phase == 'train':
            self._check_sizes()
        self.fixed_scale: Pair | None = self.scales[0] if len(self.scales) == 1 else None
        self._batch: tuple[int, int] | None = None

    def lr_length(self, length: int, scale: float) -> int:
        """The LR size at ``scale`` of a GT side of ``length`` pixels."""
        return round(lr_crop_size(length, scale) / scale)

    def _check_sizes(self) -> None:
        """Start-up scan (image headers): every image must hold an LR patch at every scale."""
        problems = []
        for path in self.paths:
            size = image_size(path)  # None: not a PNG / JPEG / BMP header, checked when loaded
            for pair in ([] if size is None else self.scales):
                if min(self.lr_length(n, s) for n, s in zip(size, pair)) < self.lq_size:
                    problems.append(f'{path} ({size[1]}x{size[0]}) at {scale_label(pair)}')
                    break
        if problems:
            more = f' and {len(problems) - 5} more' if len(problems) > 5 else ''
            raise DataError(f'{len(problems)} image(s) are too small for an LR patch of '
                            f'{self.lq_size} (lq_size) at some scale: '
                            f'{"; ".join(problems[:5])}{more}.')

    def at_scale(self, pair: Pair) -> 'MultiScaleDataset':
        """This dataset at one scale (an evaluation set per scale)."""
        variant = copy.copy(self)
        variant.fixed_scale = pair
        return variant

    def begin_batch_sample(self, batch_seed: int, epoch: int) -> None:
        """Called by the training sampler's wrapper before each sample: its batch's seed and
        the epoch, which fix the batch's scale."""
        self._batch = (batch_seed, epoch)

    def batch_scale(self) -> Pair:
        if self.fixed_scale is not None:
            return self.fixed_scale
        if self._batch is None:
            raise RuntimeError('MultiScaleDataset draws one scale per batch: it must be read '
                               'through the training sampler (or at_scale for evaluation).')
        batch_seed, epoch = self._batch
        choices = self.integer_scales if epoch < self.integer_scale_epochs else self.scales
        return random.Random(batch_seed).choice(choices)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        img = self.pixels.load(self.file_client, path)
        pair = self.batch_scale()
        if self.phase == 'train':
            lq, gt = self._patch(img, pair, path)
            lq, gt = augment([lq, gt], self.use_hflip, self.use_rot and pair[0] == pair[1])
        else:
            gt, lq = make_lr(img, pair)
            lq, gt = evaluation_crop(lq, gt, pair)
        return {'lq': self.pixels.to_tensor(lq), 'gt': self.pixels.to_tensor(gt),
                'lq_path': path, 'gt_path': path,
                'scale': torch.tensor(pair, dtype=torch.float64)}

    def _patch(self, img: np.ndarray, pair: Pair, path: str) -> tuple[np.ndarray, np.ndarray]:
        """A random LR patch on the scale's grid, computed from its GT region plus a margin,
        and the GT patch it comes from."""
        size = self.lq_size
        lq_slices, gt_slices, region_slices, region_lr = [], [], [], []
        for axis, s in enumerate(pair):
            step = scale_step(s)
            lr_len = self.lr_length(img.shape[axis], s)
            if lr_len < size:
                raise DataError(f'{path} is {img.shape[1]}x{img.shape[0]}: too small for an LR '
                                f'patch of {size} at scale {s} (needs {math.ceil(size * s)} '
                                f'pixels).')
            start = random.randrange(0, (lr_len - size) // step + 1) * step
            margin = step * math.ceil(MARGIN / step)
            end = math.ceil((start + size + margin) / step) * step  # on the grid too
            low, high = max(0, start - margin), min(lr_len, end)
            region_lr.append(high - low)
            region_slices.append(slice(round(low * s), round(high * s)))
            lq_slices.append(slice(start - low, start - low + size))
            gt_slices.append(slice(round(start * s), round(start * s) + round(size * s)))
        region = img[region_slices[0], region_slices[1]]
        lq = imresize(region, 1 / pair[0], output_shape=tuple(region_lr))
        return lq[lq_slices[0], lq_slices[1]], img[gt_slices[0], gt_slices[1]]

    @classmethod
    def option_problems(cls, options: dict[str, Any],
                        check_files: bool = True) -> list[tuple[str, str]]:
        problems = []
        try:
            parse_scales(options.get('scales'))
        except ValueError as err:
            problems.append(('scales', str(err)))
        for key, low in (('lq_size', 1), ('integer_scale_epochs', 0)):
            value = options.get(key)
            if isinstance(value, int) and value < low:
                problems.append((key, f'must be >= {low}; got {value}.'))
        return problems
