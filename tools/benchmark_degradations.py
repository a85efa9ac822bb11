"""Cost of Real-ESRGAN's training-pair synthesis, measured in one run on this machine:

1. per sample in the loader workers: drawing the three kernels (RealESRGANDataset);
2. per batch on the training device: the whole second-order degradation of ``--batch`` GT crops
   of ``--crop`` pixels (x4plus: 12 x 400), the USM sharpening, the crop to ``--gt_size`` and
   the pair pool, and its main parts alone (blur, JPEG, noise);
3. for scale: one training step (forward + backward + Adam) of an RRDBNet with ``--rrdb-blocks``
   blocks on the resulting batch (x4plus: 23 blocks, 64 features).

    python tools/benchmark_degradations.py [--device cuda] [--batch 12] [--crop 400]
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from typing import Callable

import numpy as np
import torch

from basicsr_lite.archs.rrdbnet_arch import RRDBNet  # noqa: E402
from basicsr_lite.data.degrade.batch_degradations import (USMSharp, filter2d,  # noqa: E402
                                                          poisson_noise)
from basicsr_lite.data.degrade.diffjpeg import DiffJPEG  # noqa: E402
from basicsr_lite.data.degrade.kernels import (KERNEL_TYPES, random_blur_kernel,  # noqa: E402
                                               random_final_sinc)
from basicsr_lite.data.degrade.realesrgan_pipeline import (PIPELINE_OPTIONS,  # noqa: E402
                                                           HighOrderDegradation, TrainingPairPool,
                                                           paired_random_crop_batch)
from basicsr_lite.runtime.random_streams import RandomStreams  # noqa: E402

KERNEL_PROB = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]


def timed(func: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Mean seconds per call after one warm-up call."""
    func()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        func()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def draw_kernels() -> list[np.ndarray]:
    stage = dict(kernel_sizes=list(range(7, 22, 2)), sinc_prob=0.1, kernel_list=KERNEL_TYPES,
                 kernel_prob=KERNEL_PROB, blur_sigma=(0.2, 3), betag_range=(0.5, 4),
                 betap_range=(1, 2), pad_to=21)
    return [random_blur_kernel(**stage), random_blur_kernel(**stage),
            random_final_sinc(list(range(7, 22, 2)), 0.8, 21)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch', type=int, default=12)
    parser.add_argument('--crop', type=int, default=400)
    parser.add_argument('--gt_size', type=int, default=256)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--rrdb-blocks', type=int, default=23)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    b, size = args.batch, args.crop

    kernel_s = timed(draw_kernels, 50, torch.device('cpu'))
    kernels = [torch.from_numpy(np.stack(k)).float().to(device)
               for k in zip(*[draw_kernels() for _ in range(b)])]
    gt = torch.rand(b, 3, size, size, device=device)
    gt = filter2d(gt, torch.ones(5, 5, device=device) / 25)
    options = {key: default for key, (default, _) in PIPELINE_OPTIONS.items()}
    synthesis = HighOrderDegradation(options, 4, device)
    usm = USMSharp().to(device)
    streams = RandomStreams(0, device)
    pool = TrainingPairPool(b * 15)
    jpeg = DiffJPEG(differentiable=False).to(device)

    def whole() -> tuple[torch.Tensor, torch.Tensor]:
        sharp = usm(gt)
        lq = synthesis(sharp, *kernels, streams)
        (target,), lq = paired_random_crop_batch([sharp], lq, args.gt_size, 4, streams)
        return pool.exchange(lq, target, streams)

    rows = [
        ('whole synthesis (USM, 2 stages, crop, pool)', timed(whole, args.repeats, device)),
        ('  USM sharpening', timed(lambda: usm(gt), args.repeats, device)),
        ('  blur, 21x21 kernel per image', timed(lambda: filter2d(gt, kernels[0]),
                                                 args.repeats, device)),
        ('  JPEG (torch)', timed(lambda: jpeg(gt, torch.full((b,), 60.0, device=device)),
                                 args.repeats, device)),
        ('  Poisson noise', timed(lambda: poisson_noise(gt, torch.ones(b, device=device),
                                                        torch.zeros(b, device=device),
                                                        streams.torch), args.repeats, device)),
    ]
    lq, target = whole()
    net = RRDBNet(3, 3, num_feat=64, num_block=args.rrdb_blocks, num_grow_ch=32).to(device)
    optimizer = torch.optim.Adam(net.parameters(), 1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.l1_loss(net(lq), target).backward()
        optimizer.step()

    step_s = timed(step, max(1, args.repeats // 2), device)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'
    print(f'Real-ESRGAN synthesis on {name} ({torch.get_num_threads()} CPU threads), batch {b} '
          f'x {size}x{size} -> LQ patches {args.gt_size // 4}x{args.gt_size // 4}:')
    print(f'  kernels per sample (loader worker, CPU):      {kernel_s * 1e3:8.2f} ms')
    for label, seconds in rows:
        print(f'  {label:<46s} {seconds * 1e3:8.1f} ms per batch')
    print(f'  RRDBNet ({args.rrdb_blocks} blocks) training step:          {step_s * 1e3:8.1f} ms '
          f'per batch')
    print(f'Synthesis / training step: {rows[0][1] / step_s:.1%}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
