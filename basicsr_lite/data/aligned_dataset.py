from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from basicsr_lite.data.io.file_client import FileClient
from basicsr_lite.data.io.listing import image_paths
from basicsr_lite.data.io.pixels import load_image, to_float
from basicsr_lite.data.io.scan import image_size, raise_problems
from basicsr_lite.errors import DataError
from basicsr_lite.registry import DATASET_REGISTRY
from basicsr_lite.utils.img_util import img2tensor

DIRECTIONS = ('AtoB', 'BtoA')


@DATASET_REGISTRY.register()
class AlignedDataset(Dataset):
    """Paired images for translation (pix2pix): side-by-side ``AB`` images in ``dataroot``
    (pix2pix's format: A is the left half), or two folders ``dataroot_a`` / ``dataroot_b`` with
    the same file names. ``direction`` 'AtoB' translates A into B ('BtoA' the other way).

    Train: both resized to ``load_size`` (if set), the same random ``crop_size`` crop and
    horizontal flip (``use_hflip``). Val / test: resized to ``crop_size`` (if set).
    Items: ``{'lq': input, 'gt': target, 'lq_path', 'gt_path'}``, RGB in [0, 1].

    ``scan`` (from disk): at start-up, every image's size is read from its header (never
    decoded) and the ones that cannot be used (an AB image of odd width, A and B of different
    sizes, smaller than ``crop_size``) are reported together, before training starts.
    """

    def __init__(self, dataroot: str | None = None, dataroot_a: str | None = None,
                 dataroot_b: str | None = None, direction: str = 'AtoB',
                 load_size: int | None = None, crop_size: int | None = None,
                 use_hflip: bool = True, phase: str = 'train',
                 io_backend: dict | None = None, scan: bool = True) -> None:
        super().__init__()
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'AtoB' or 'BtoA'; got '{direction}'.")
        if (dataroot is None) == (dataroot_a is None or dataroot_b is None):
            raise DataError('AlignedDataset needs either dataroot (side-by-side AB images) or '
                            'both dataroot_a and dataroot_b.')
        if phase == 'train' and crop_size is None:
            raise DataError('AlignedDataset: crop_size is required for training.')
        if load_size is not None and crop_size is not None and load_size < crop_size:
            raise DataError(f'AlignedDataset: load_size {load_size} < crop_size {crop_size}.')
        io_backend = dict(io_backend or {'type': 'disk'})
        backend = io_backend.pop('type')
        self.file_client = FileClient(backend, **io_backend)
        self.swap = direction == 'BtoA'
        self.load_size, self.crop_size = load_size, crop_size
        self.use_hflip, self.phase = use_hflip, phase
        if dataroot is not None:
            self.pairs = [(path, None) for path in image_paths(dataroot)]
        else:
            self.pairs = _pairs_from_folders(dataroot_a, dataroot_b)
        if scan and backend == 'disk':
            raise_problems([p for pair in self.pairs if (p := self._size_problem(*pair))],
                           'image(s) of AlignedDataset')

    def produces(self) -> dict:
        """What the items hold (see engine/constraints.py): RGB input and target of one size,
        ``crop_size`` patches in training."""
        patch = self.crop_size if self.phase == 'train' else None
        return {'lq_ch': 3, 'gt_ch': 3, 'scale': 1, 'gt_patch': patch, 'lq_patch': patch,
                'channels_from': 'RGB images', 'patch_from': 'crop_size'}

    def _size_problem(self, path_a: str, path_b: str | None) -> str | None:
        """What makes a pair unusable, from the image headers (None: fine, or a header this
        scan cannot read: that file is checked when it is loaded)."""
        size_a = image_size(path_a)
        if size_a is None:
            return None
        if path_b is None:  # side by side
            if size_a[1] % 2:
                return (f'{path_a} is {size_a[1]} pixels wide: an AB image has two halves of '
                        f'equal width')
            size_a = (size_a[0], size_a[1] // 2)
        else:
            size_b = image_size(path_b)
            if size_b is None:
                return None
            if size_a != size_b:
                return (f'{path_a} and {path_b}: A is {size_a[1]}x{size_a[0]} but B is '
                        f'{size_b[1]}x{size_b[0]}')
        if self.phase == 'train' and self.load_size is None and min(size_a) < self.crop_size:
            return (f'{path_a}: A is {size_a[1]}x{size_a[0]}, smaller than crop_size '
                    f'{self.crop_size}')
        return None

    def __len__(self) -> int:
        return len(self.pairs)

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray, str, str]:
        path_a, path_b = self.pairs[index]
        if path_b is None:  # side by side
            ab = load_image(self.file_client, path_a)
            if ab.shape[1] % 2:
                raise DataError(f'{path_a} is {ab.shape[1]} pixels wide: an AB image has two '
                                f'halves of equal width.')
            half = ab.shape[1] // 2
            return ab[:, :half], ab[:, half:], path_a, path_a
        return (load_image(self.file_client, path_a), load_image(self.file_client, path_b),
                path_a, path_b)

    def __getitem__(self, index: int) -> dict:
        img_a, img_b, path_a, path_b = self._load(index)
        if img_a.shape[:2] != img_b.shape[:2]:
            raise DataError(f'{path_a} and {path_b}: A is {img_a.shape[1]}x{img_a.shape[0]} but '
                            f'B is {img_b.shape[1]}x{img_b.shape[0]}.')
        if self.swap:
            img_a, img_b, path_a, path_b = img_b, img_a, path_b, path_a
        if self.phase == 'train':
            size = self.load_size
            if size is not None:
                img_a, img_b = (_resize(img, size) for img in (img_a, img_b))
            h, w = img_a.shape[:2]
            if min(h, w) < self.crop_size:
                raise DataError(f'{path_a} is {w}x{h}, smaller than crop_size {self.crop_size}.')
            top = random.randint(0, h - self.crop_size)
            left = random.randint(0, w - self.crop_size)
            img_a, img_b = (img[top:top + self.crop_size, left:left + self.crop_size]
                            for img in (img_a, img_b))
            if self.use_hflip and random.random() < 0.5:
                img_a, img_b = img_a[:, ::-1], img_b[:, ::-1]
        elif self.crop_size is not None:
            img_a, img_b = (_resize(img, self.crop_size) for img in (img_a, img_b))
        lq, gt = img2tensor([to_float(np.ascontiguousarray(img_a)),
                             to_float(np.ascontiguousarray(img_b))])
        return {'lq': lq, 'gt': gt, 'lq_path': path_a, 'gt_path': path_b}


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    """To ``size`` x ``size`` (bicubic, as pix2pix's 'resize_and_crop')."""
    if img.shape[:2] == (size, size):
        return img
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)


def _pairs_from_folders(folder_a: str, folder_b: str) -> list[tuple[str, str]]:
    a_paths = image_paths(folder_a)
    b_by_stem = {Path(p).stem: p for p in image_paths(folder_b)}
    missing = [Path(p).name for p in a_paths if Path(p).stem not in b_by_stem]
    if missing:
        raise DataError(f'{len(missing)} image(s) of {folder_a} have no partner of the same name '
                        f'in {folder_b}, e.g. {", ".join(missing[:3])}.')
    return [(p, b_by_stem[Path(p).stem]) for p in a_paths]
