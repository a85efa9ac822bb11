"""Data-feeding benchmark, all measured in one run on this machine:

1. loader throughput (samples/s) of a naive loader (a plain DataLoader over cv2.imread of whole
   images converted to float, no workers, no prefetch) vs basicsr_lite's loader reading from
   disk and from LMDB;
2. the share of iteration time spent waiting for data in short real training runs: the demo
   config, and an EDSR x4 / gt_size 128 / batch 16 config, vs the naive loader feeding the same
   EDSR step.

    python tools/benchmark_data.py [--images 24] [--workers 1] [--edsr-iters 8]

Training images are 480x480 crops of the demo photos (datasets/demo), LR = MATLAB bicubic x4.
"""
from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent

from basicsr_lite.archs import build_network  # noqa: E402
from basicsr_lite.data import build_dataloader, build_dataset  # noqa: E402
from basicsr_lite.data.degrade.imresize import imresize  # noqa: E402
from basicsr_lite.data.loading.sample_wrappers import SeededSamples  # noqa: E402
from basicsr_lite.data.loading.sampler import EnlargedSampler  # noqa: E402
from basicsr_lite.prep.lmdb_util import make_lmdb_from_folder  # noqa: E402
from basicsr_lite.train import main as train_main  # noqa: E402
from basicsr_lite.utils.img_util import imwrite  # noqa: E402

SCALE, GT_SIZE, BATCH = 4, 128, 16


def make_data(work: Path, count: int) -> dict:
    rng = np.random.default_rng(0)
    photos = [cv2.imread(str(p)) for p in sorted((ROOT / 'datasets/demo/train_HR').glob('*.png'))]
    for i in range(count):
        photo = cv2.resize(photos[i % len(photos)], None, fx=2, fy=2,
                           interpolation=cv2.INTER_CUBIC)
        y, x = rng.integers(0, photo.shape[0] - 480), rng.integers(0, photo.shape[1] - 480)
        hr = photo[y:y + 480, x:x + 480]
        imwrite(hr, work / 'HR' / f'{i:04d}.png')
        imwrite(imresize(hr, 1 / SCALE), work / 'LR' / f'{i:04d}.png')
    data = {'disk': (work / 'HR', work / 'LR')}
    for level in (1, 0):  # BasicSR's default PNG level, and stored (faster to decode, 2x larger)
        for name in ('HR', 'LR'):
            make_lmdb_from_folder(work / name, work / f'{name}{level}.lmdb', level, workers=2)
        data[f'lmdb level {level}'] = (work / f'HR{level}.lmdb', work / f'LR{level}.lmdb')
    return data


class NaiveDataset(torch.utils.data.Dataset):
    """What a first training script does: read whole images, convert to float, then crop."""

    def __init__(self, gt_dir: Path, lq_dir: Path) -> None:
        self.names = sorted(p.name for p in gt_dir.iterdir())
        self.gt_dir, self.lq_dir = gt_dir, lq_dir

    def __len__(self) -> int:
        return len(self.names) * 100  # like dataset_enlarge_ratio: 100 passes per epoch

    def __getitem__(self, index: int) -> dict:
        name = self.names[index % len(self.names)]
        gt = cv2.imread(str(self.gt_dir / name)).astype(np.float32) / 255
        lq = cv2.imread(str(self.lq_dir / name)).astype(np.float32) / 255
        lq_patch = GT_SIZE // SCALE
        top, left = random.randint(0, lq.shape[0] - lq_patch), random.randint(0, lq.shape[1] -
                                                                              lq_patch)
        lq = lq[top:top + lq_patch, left:left + lq_patch]
        gt = gt[top * SCALE:(top + lq_patch) * SCALE, left * SCALE:(left + lq_patch) * SCALE]
        if random.random() < 0.5:
            gt, lq = gt[:, ::-1], lq[:, ::-1]
        to_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))  # noqa
        return {'gt': to_tensor(gt), 'lq': to_tensor(lq)}


def naive_loader(paths: tuple[Path, Path]):
    return torch.utils.data.DataLoader(NaiveDataset(*paths), batch_size=BATCH, shuffle=True,
                                       drop_last=True, num_workers=0)


def our_loader(paths: tuple[Path, Path], backend: str, workers: int):
    opt = {'type': 'PairedImageDataset', 'dataroot_gt': str(paths[0]),
           'dataroot_lq': str(paths[1]), 'io_backend': {'type': backend}, 'gt_size': GT_SIZE,
           'use_hflip': True, 'use_rot': True, 'batch_size_per_gpu': BATCH,
           'num_worker_per_gpu': workers}
    dataset = build_dataset(opt, 'train', SCALE)
    sampler = EnlargedSampler(len(dataset), ratio=100, with_sample_seeds=True)
    return build_dataloader(SeededSamples(dataset), opt, 'train', sampler)


def samples_per_second(make_loader, batches: int, repeats: int = 2) -> float:
    """Best of ``repeats`` timings of ``batches`` batches (start-up not counted)."""
    best = 0.0
    for _ in range(repeats):
        loader = make_loader()
        iterator = iter(loader)
        next(iterator)  # start-up (worker processes) is not counted
        start, seen = time.perf_counter(), 0
        while seen < batches:
            if next(iterator, None) is None:
                iterator = iter(loader)
                continue
            seen += 1
        best = max(best, batches * BATCH / (time.perf_counter() - start))
    return best


def edsr_options(work: Path, paths: tuple[Path, Path], iters: int, workers: int) -> dict:
    return {
        'name': 'bench_edsr', 'scale': SCALE, 'num_gpu': 'auto', 'manual_seed': 0,
        'datasets': {'train': {
            'type': 'PairedImageDataset', 'dataroot_gt': str(paths[0]),
            'dataroot_lq': str(paths[1]), 'filename_tmpl': '{}', 'gt_size': GT_SIZE,
            'use_hflip': True, 'use_rot': True, 'batch_size_per_gpu': BATCH,
            'num_worker_per_gpu': workers, 'dataset_enlarge_ratio': 100}},
        'network_g': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64,
                      'num_block': 16, 'upscale': SCALE},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-4}, 'total_iter': iters,
                  'pixel_opt': {'type': 'L1Loss'}},
        'logger': {'print_freq': 1000, 'save_checkpoint_freq': 10**6, 'use_tb_logger': False},
        'path': {'experiments_root': str(work / 'exp_edsr')},
    }


def training_data_wait(argv: list[str], experiments_root: Path) -> float:
    assert train_main(argv) == 0
    log = next(experiments_root.glob('train_*.log')).read_text()
    return float(re.search(r'Data wait: ([\d.]+)%', log)[1])


def naive_training_data_wait(paths: tuple[Path, Path], iters: int) -> float:
    """The same EDSR step fed by the naive loader: % of iteration time spent waiting."""
    torch.manual_seed(0)
    net = build_network({'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'upscale': SCALE})
    optimizer = torch.optim.Adam(net.parameters(), 1e-4)
    loader = naive_loader(paths)
    iterator = iter(loader)
    wait = total = 0.0
    for _ in range(iters):
        tick = time.perf_counter()
        batch = next(iterator, None)
        if batch is None:
            iterator = iter(loader)
            batch = next(iterator)
        wait += time.perf_counter() - tick
        optimizer.zero_grad()
        torch.nn.functional.l1_loss(net(batch['lq']), batch['gt']).backward()
        optimizer.step()
        total += time.perf_counter() - tick
    return 100 * wait / total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', type=int, default=24)
    parser.add_argument('--workers', type=int, default=2, help='loader workers, throughput test')
    parser.add_argument('--train-workers', type=int, default=1, help='loader workers, training')
    parser.add_argument('--batches', type=int, default=20, help='batches per throughput test')
    parser.add_argument('--demo-iters', type=int, default=100)
    parser.add_argument('--edsr-iters', type=int, default=8)
    args = parser.parse_args(argv)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, '
          f'gt_size {GT_SIZE}, x{SCALE}, {args.images} training images of 480x480')
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = make_data(work, args.images)
        rates = {'naive (whole image to float, then crop; no workers)': samples_per_second(
            lambda: naive_loader(data['disk']), args.batches)}
        for workers in sorted({0, args.workers}):
            for source, paths in data.items():
                backend = 'disk' if source == 'disk' else 'lmdb'
                rates[f'basicsr_lite {source}, {workers} worker(s)'] = samples_per_second(
                    lambda: our_loader(paths, backend, workers), args.batches)
        base = next(iter(rates.values()))
        print('\nLoader throughput (best of 2)')
        for name, rate in rates.items():
            print(f'  {name:<52} {rate:7.1f} samples/s  ({rate / base:4.2f}x naive)')

        demo_root = work / 'exp_demo'
        demo_wait = training_data_wait(
            ['-opt', str(ROOT / 'options/train/demo.yml'), '--force_yml',
             f'train:total_iter={args.demo_iters}', 'train:scheduler=~', 'val=~',
             'logger:use_tb_logger=false', 'logger:print_freq=1000',
             'logger:save_checkpoint_freq=100000', f'path:experiments_root={demo_root}',
             f'datasets:train:num_worker_per_gpu={args.train_workers}'], demo_root)
        edsr_opt = work / 'edsr.yml'
        edsr_opt.write_text(yaml.safe_dump(edsr_options(work, data['disk'], args.edsr_iters,
                                                        args.train_workers)))
        edsr_wait = training_data_wait(['-opt', str(edsr_opt)], work / 'exp_edsr')
        naive_wait = naive_training_data_wait(data['disk'], args.edsr_iters)
    print('\nData wait as a share of iteration time (goal: under 5%)')
    print(f'  demo config (MSRResNet x4, batch 8), {args.train_workers} worker  {demo_wait:6.1f}%')
    print(f'  EDSR x4, gt_size 128, batch 16, {args.train_workers} worker     {edsr_wait:6.1f}%')
    print(f'  EDSR x4, same step, naive loader         {naive_wait:6.1f}%')
    return 0


if __name__ == '__main__':
    sys.exit(main())
