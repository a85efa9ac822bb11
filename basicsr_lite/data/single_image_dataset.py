from __future__ import annotations

from typing import Any, Sequence

from torch.utils.data import Dataset

from basicsr_lite.data.io.file_client import FileClient
from basicsr_lite.data.io.listing import image_paths, lmdb_keys
from basicsr_lite.data.io.pixels import PixelReader, pixel_option_problems
from basicsr_lite.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class SingleImageDataset(Dataset):
    """LQ images only (inference on images without ground truth). Items: ``{'lq', 'lq_path'}``.
    ``read_mode`` / ``normalize`` as in PairedImageDataset."""

    def __init__(self, dataroot_lq: str, scale: int = 1, phase: str = 'test',
                 io_backend: dict | None = None, meta_info_file: str | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 color: str | None = None, read_mode: str = 'color',
                 normalize: dict | None = None) -> None:
        super().__init__()
        io_backend = dict(io_backend or {'type': 'disk'})
        backend = io_backend.pop('type')
        if backend == 'lmdb':
            io_backend.update(db_paths=[dataroot_lq], client_keys=['lq'])
        self.file_client = FileClient(backend, **io_backend)
        self.client_key = 'lq' if backend == 'lmdb' else 'default'
        self.pixels = PixelReader(read_mode, color, mean, std, normalize)
        if backend == 'lmdb':
            self.paths = sorted(lmdb_keys(dataroot_lq))
        else:
            self.paths = image_paths(dataroot_lq, meta_info_file)
        if self.paths:
            self.pixels.start(self.file_client, self.paths[0], self.client_key,
                              f'{type(self).__name__} {dataroot_lq}')

    @classmethod
    def option_problems(cls, options: dict[str, Any],
                        check_files: bool = True) -> list[tuple[str, str]]:
        return pixel_option_problems(options, check_files)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        lq_path = self.paths[index]
        img_lq = self.pixels.load(self.file_client, lq_path, self.client_key)
        return {'lq': self.pixels.to_tensor(img_lq), 'lq_path': lq_path}
