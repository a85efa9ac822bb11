from __future__ import annotations

import random
from typing import Any, Sequence

import numpy as np
from torch.utils.data import Dataset

from basicsr_lite.data.degrade.degradations import degrade
from basicsr_lite.data.io.file_client import FileClient
from basicsr_lite.data.io.listing import image_paths
from basicsr_lite.data.io.metadata import (DEGRADATION_KEYS, DEGRADATION_RANGES, MetadataVector,
                                           metadata_problems)
from basicsr_lite.data.io.pixels import PixelReader
from basicsr_lite.data.transforms import augment, mod_crop
from basicsr_lite.errors import DataError
from basicsr_lite.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class DegradationDataset(Dataset):
    """GT images only; each LQ image is made on the fly: optional Gaussian blur, MATLAB bicubic
    downscaling by ``scale``, optional Gaussian noise (sigma on 0..255) and JPEG.

    Train: a random ``gt_size`` crop and flips/rotations first, then the degradation, all drawn
    from the sample's seed (reproducible for any number of workers and after a resume).
    Val/test: the whole mod-cropped image, degraded with a fixed seed per image.
    Items: ``{'lq', 'gt', 'lq_path', 'gt_path'}`` (lq_path = gt_path), and with ``metadata``
    (e.g. ``[blur_sigma]``) ``'meta'``: the values applied to this sample (blur_sigma and
    noise_sigma 0 when not applied, jpeg_quality 100), each mapped to [0, 1] by its range
    (``metadata_range``; default ``DEGRADATION_RANGES``, the same for every dataset so that
    training and validation sets map alike), for conditioned networks.
    """

    def __init__(self, dataroot_gt: str, scale: int = 4, phase: str = 'train',
                 io_backend: dict | None = None, meta_info_file: str | None = None,
                 gt_size: int | None = None, use_hflip: bool = False, use_rot: bool = False,
                 blur_prob: float = 0.0, blur_sigma: Sequence[float] = (0.2, 3.0),
                 noise_prob: float = 0.0, noise_sigma: Sequence[float] = (1.0, 25.0),
                 jpeg_prob: float = 0.0, jpeg_quality: Sequence[int] = (30, 95),
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 color: str | None = None, metadata: list[str] | None = None,
                 metadata_range: dict[str, list[float]] | None = None) -> None:
        super().__init__()
        io_backend = dict(io_backend or {'type': 'disk'})
        backend = io_backend.pop('type')
        if backend != 'disk':
            raise DataError('DegradationDataset reads GT images from disk (io_backend: disk).')
        self.file_client = FileClient(backend, **io_backend)
        self.scale, self.phase, self.gt_size = scale, phase, gt_size
        self.use_hflip, self.use_rot = use_hflip, use_rot
        self.pixels = PixelReader('color', color, mean, std)  # the degradations are 8-bit
        self.degradation = dict(blur_prob=blur_prob, blur_sigma=tuple(blur_sigma),
                                noise_prob=noise_prob, noise_sigma=tuple(noise_sigma),
                                jpeg_prob=jpeg_prob, jpeg_quality=tuple(jpeg_quality))
        self.paths = image_paths(dataroot_gt, meta_info_file)
        problems = metadata_problems({'metadata': metadata, 'metadata_range': metadata_range},
                                     DEGRADATION_KEYS)
        if problems:
            raise ValueError(f'{problems[0][0]}: {problems[0][1]}')
        self.metadata = None if metadata is None else MetadataVector(
            metadata, metadata_range, DEGRADATION_RANGES)

    @classmethod
    def option_problems(cls, options: dict[str, Any],
                        check_files: bool = True) -> list[tuple[str, str]]:
        return metadata_problems(options, DEGRADATION_KEYS)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        gt_path = self.paths[index]
        img_gt = self.pixels.load(self.file_client, gt_path)
        if self.phase == 'train':
            img_gt = self._random_crop(img_gt, gt_path)
            img_gt = augment(img_gt, self.use_hflip, self.use_rot)
            rng = np.random.default_rng(random.getrandbits(63))  # drawn from the sample's seed
        else:
            img_gt = mod_crop(img_gt, self.scale)
            rng = np.random.default_rng(index)
        applied: dict[str, float] = {}
        img_lq = degrade(img_gt, self.scale, rng, **self.degradation, applied=applied)
        item = {'lq': self.pixels.to_tensor(img_lq), 'gt': self.pixels.to_tensor(img_gt),
                'lq_path': gt_path, 'gt_path': gt_path}
        if self.metadata is not None:
            item['meta'] = self.metadata(applied)
        return item

    def _random_crop(self, img: np.ndarray, path: str) -> np.ndarray:
        h, w = img.shape[:2]
        if min(h, w) < self.gt_size:
            raise DataError(f'{path} is {w}x{h}, smaller than gt_size {self.gt_size}.')
        top, left = random.randint(0, h - self.gt_size), random.randint(0, w - self.gt_size)
        return img[top:top + self.gt_size, left:left + self.gt_size]
