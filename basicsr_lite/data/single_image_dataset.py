from __future__ import annotations

from typing import Sequence

from torch.utils.data import Dataset

from basicsr_lite.data.data_util import image_paths, lmdb_keys, load_image, normalize_, to_float
from basicsr_lite.data.file_client import FileClient
from basicsr_lite.registry import DATASET_REGISTRY
from basicsr_lite.utils.img_util import img2tensor


@DATASET_REGISTRY.register()
class SingleImageDataset(Dataset):
    """LQ images only (inference on images without ground truth). Items: ``{'lq', 'lq_path'}``."""

    def __init__(self, dataroot_lq: str, scale: int = 1, phase: str = 'test',
                 io_backend: dict | None = None, meta_info_file: str | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 color: str | None = None) -> None:
        super().__init__()
        io_backend = dict(io_backend or {'type': 'disk'})
        backend = io_backend.pop('type')
        if backend == 'lmdb':
            io_backend.update(db_paths=[dataroot_lq], client_keys=['lq'])
        self.file_client = FileClient(backend, **io_backend)
        self.client_key = 'lq' if backend == 'lmdb' else 'default'
        self.mean, self.std, self.color = mean, std, color
        if backend == 'lmdb':
            self.paths = sorted(lmdb_keys(dataroot_lq))
        else:
            self.paths = image_paths(dataroot_lq, meta_info_file)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        lq_path = self.paths[index]
        img_lq = img2tensor(to_float(load_image(self.file_client, lq_path, self.client_key),
                                     self.color))
        normalize_(img_lq, self.mean, self.std)
        return {'lq': img_lq, 'lq_path': lq_path}
