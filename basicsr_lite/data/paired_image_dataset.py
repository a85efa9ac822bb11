from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from torch.utils.data import Dataset

from basicsr_lite.data.degrade.imresize import imresize
from basicsr_lite.data.io.file_client import FileClient
from basicsr_lite.data.io.listing import (lmdb_keys, paired_paths_from_folder,
                                          paired_paths_from_lmdb, paired_paths_from_meta_info_file)
from basicsr_lite.data.io.metadata import MetadataVector, metadata_problems, read_metadata_file
from basicsr_lite.data.io.pixels import PixelReader, pixel_option_problems
from basicsr_lite.data.io.scan import scan_disk_pairs, scan_lmdb_pairs
from basicsr_lite.data.transforms import augment, paired_random_crop
from basicsr_lite.registry import DATASET_REGISTRY

LQ_INTERPOLATIONS = (None, 'bicubic')


@DATASET_REGISTRY.register()
class PairedImageDataset(Dataset):
    """LQ/GT image pairs, read from folders (paired by ``filename_tmpl``), from a
    ``meta_info_file``, or from two LMDBs (``io_backend: {type: lmdb}``, dataroots ending in
    ``.lmdb``). In the train phase: a random ``gt_size`` crop and flips/rotations.

    Items: ``{'lq', 'gt', 'lq_path', 'gt_path'}``, tensors CHW RGB in [0, 1] (normalised by
    ``mean``/``std`` if given); with ``read_mode: unchanged``, images of any bit depth and band
    count, normalised per band by ``normalize`` (data/io/pixels.py). ``lq_interp: bicubic`` gives
    the LQ upsampled to the GT's size (MATLAB bicubic on the stored pixels, after the crop), for
    pre-upsampling networks. ``metadata_file`` (CSV / JSON, see data/io/metadata.py) with
    ``metadata: [names]`` adds ``'meta'``, the GT image's values, for conditioned networks.
    """

    def __init__(self, dataroot_gt: str, dataroot_lq: str, scale: int = 1, phase: str = 'train',
                 io_backend: dict | None = None, meta_info_file: str | None = None,
                 filename_tmpl: str = '{}', gt_size: int | None = None, use_hflip: bool = False,
                 use_rot: bool = False, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, color: str | None = None,
                 scan: bool = True, lq_interp: str | None = None, read_mode: str = 'color',
                 normalize: dict | None = None, metadata_file: str | None = None,
                 metadata: list[str] | None = None,
                 metadata_range: dict[str, list[float]] | None = None) -> None:
        super().__init__()
        if lq_interp not in LQ_INTERPOLATIONS:
            raise ValueError(f'lq_interp must be one of {list(LQ_INTERPOLATIONS)}; got '
                             f'{lq_interp!r}.')
        self.lq_interp = lq_interp
        io_backend = dict(io_backend or {'type': 'disk'})
        backend = io_backend.pop('type')
        self.scale, self.phase = scale, phase
        self.gt_size, self.use_hflip, self.use_rot = gt_size, use_hflip, use_rot
        self.pixels = PixelReader(read_mode, color, mean, std, normalize)
        folders = (dataroot_lq, dataroot_gt)
        if backend == 'lmdb':
            io_backend.update(db_paths=list(folders), client_keys=['lq', 'gt'])
        self.file_client = FileClient(backend, **io_backend)
        self.paths = self._list_pairs(backend == 'lmdb', folders, meta_info_file, filename_tmpl,
                                      scan)
        if self.paths:
            self.pixels.start(self.file_client, self.paths[0]['gt_path'], 'gt',
                              f'{type(self).__name__} {dataroot_gt}')
        self._read_metadata(metadata, metadata_range, metadata_file)

    def _list_pairs(self, lmdb: bool, folders: tuple[str, str], meta_info_file: str | None,
                    filename_tmpl: str, scan: bool) -> list[dict]:
        """The LQ/GT pairs (two LMDBs, a meta_info file or two folders); with ``scan``, their
        sizes checked from the headers (for a ``gt_size`` patch in the train phase)."""
        keys, patch = ('lq', 'gt'), self.gt_size if self.phase == 'train' else None
        if lmdb:
            lq_keys, gt_keys = lmdb_keys(folders[0]), lmdb_keys(folders[1])
            paths = paired_paths_from_lmdb(folders, keys, lq_keys, gt_keys, filename_tmpl)
            if scan:
                scan_lmdb_pairs(paths, gt_keys, lq_keys, folders, self.scale, patch, self.phase)
            return paths
        if meta_info_file:
            paths = paired_paths_from_meta_info_file(folders, keys, meta_info_file,
                                                     filename_tmpl)
        else:
            paths = paired_paths_from_folder(folders, keys, filename_tmpl)
        if scan:
            scan_disk_pairs(paths, self.scale, patch, self.phase)
        return paths

    def _read_metadata(self, metadata: list[str] | None,
                       metadata_range: dict[str, list[float]] | None,
                       metadata_file: str | None) -> None:
        """``metadata`` (the vector's layout) and ``metadata_table`` (each GT image's values)."""
        self.metadata, self.metadata_table = None, {}
        problems = self.option_problems({'metadata': metadata, 'metadata_range': metadata_range,
                                         'metadata_file': metadata_file})
        if problems:
            raise ValueError(f'{problems[0][0]}: {problems[0][1]}')
        if metadata is not None:
            self.metadata = MetadataVector(metadata, metadata_range)
            self.metadata_table = read_metadata_file(metadata_file)
            self.metadata.check_table(self.metadata_table,
                                      [Path(p['gt_path']).stem for p in self.paths],
                                      f'Metadata file {metadata_file}')

    @classmethod
    def option_problems(cls, options: dict[str, Any],
                        check_files: bool = True) -> list[tuple[str, str]]:
        """``(key, what is wrong)`` for values of a dataset entry; checked with the option
        file, before anything runs."""
        problems = pixel_option_problems(options, check_files) + metadata_problems(options)
        if (options.get('metadata') is None) != (options.get('metadata_file') is None):
            problems.append(('metadata', 'metadata and metadata_file go together (the names of '
                                         'the values, and the file that holds them).'))
        return problems

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        gt_path, lq_path = self.paths[index]['gt_path'], self.paths[index]['lq_path']
        img_gt = self.pixels.load(self.file_client, gt_path, 'gt')
        img_lq = self.pixels.load(self.file_client, lq_path, 'lq')
        if self.phase == 'train':  # crop the stored pixels: only the patch becomes float
            img_gt, img_lq = paired_random_crop(img_gt, img_lq, self.gt_size, self.scale, gt_path)
            img_gt, img_lq = augment([img_gt, img_lq], self.use_hflip, self.use_rot)
        else:  # GT may be a little larger than scale * LQ when it was not mod-cropped
            img_gt = img_gt[:img_lq.shape[0] * self.scale, :img_lq.shape[1] * self.scale, :]
        if self.lq_interp == 'bicubic':  # pre-upsampling networks (VDSR): LQ at the GT's size
            img_lq = imresize(img_lq, self.scale, output_shape=img_gt.shape[:2])
        item = {'lq': self.pixels.to_tensor(img_lq), 'gt': self.pixels.to_tensor(img_gt),
                'lq_path': lq_path, 'gt_path': gt_path}
        if self.metadata is not None:
            item['meta'] = self.metadata(self.metadata_table[Path(gt_path).stem])
        return item
