"""Training-speed benchmark: basicsr_lite's loop against a bare PyTorch loop, and the speed options.

0. loop cost: what ``train_loop`` adds to every iteration (step helper, EMA mask, hooks,
   loader, timers), measured as its time minus the bare loop's on a network so small that a step
   costs about a millisecond (many long windows: a difference of tenths of a millisecond that a
   noisy host does not hide), and divided by each network's bare step in the overhead table;

Then for each option file (defaults: MSRResNet x4, EDSR x4, RRDBNet x4 and SwinIR-light x4 from
``options/train``, fed the demo images) and each ``--sizes`` entry (gt_size x batch; ``--full``:
the sizes people train at, gt 128 and 192, batch 4 and 16, beside the small gt 64 x 4):

1. overhead: (a) a bare loop - the same network, optimizer (same kernel), L1 loss, EMA and
   scheduler, on batches pre-loaded on the device - and (b) ``train.py``'s own loop
   (``train_loop``: the step helper, logging, hooks), first both on the pre-loaded batches, then
   both on real data (a plain DataLoader / basicsr_lite's loader, ``--workers`` workers), all in
   one process, interleaved window after window (``--repeats`` windows of ``--iters``
   iterations); the minimum and the median of the per-window seconds per iteration (noise on a
   shared host only adds time), wall and CPU time;
2. end to end: ``python train.py`` as a process, with loader workers, timed over two run lengths
   (start-up cancels out), wall and CPU seconds (workers included), against the bare loop;
3. each speed option on and off, every variant in its own process, with ``speed_policy: force``
   (what is asked): default options, ``channels_last``, ``compile``, ``optimizer_impl:
   for_loop``, ``amp: bf16``, and on CUDA ``bf16 + channels_last + compile`` (peak memory).

Every table starts with the machine: the CPU model, torch's CPU capability and the CPU flags
that decide whether bf16 / fp16 are native, torch's version and threads (the GPU on CUDA).

    python tools/benchmark_train.py [--opt FILE ...] [--sizes 128x4 192x16 | --full]
                                    [--iters 20] [--repeats 5] [--workers 2] [--device cpu]
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent

import basicsr_lite  # noqa: E402
from basicsr_lite.archs import build_network  # noqa: E402
from basicsr_lite.data.loading.loaders import build_train_loader  # noqa: E402
from basicsr_lite.engine.experiment import open_run_folder, start_processes  # noqa: E402
from basicsr_lite.engine.logger import get_root_logger  # noqa: E402
from basicsr_lite.engine.checkpoint import LoopState  # noqa: E402
from basicsr_lite.engine.builtin_hooks import build_hooks  # noqa: E402
from basicsr_lite.engine.hooks import Run  # noqa: E402
from basicsr_lite.engine.signals import GracefulStop  # noqa: E402
from basicsr_lite.losses import build_loss  # noqa: E402
from basicsr_lite.models import build_model  # noqa: E402
from basicsr_lite.options import parse_options  # noqa: E402
from basicsr_lite.runtime.lr_scheduler import build_scheduler  # noqa: E402
from basicsr_lite.runtime.optim import build_optimizer  # noqa: E402
from basicsr_lite.runtime.speed import set_backend_flags, to_memory_format  # noqa: E402
from basicsr_lite.runtime.cpu_features import cpu_summary  # noqa: E402
from basicsr_lite.engine.loop import train_loop  # noqa: E402
from basicsr_lite.utils.misc import set_random_seed  # noqa: E402

DEFAULT_OPTS = {
    'MSRResNet x4': ('options/train/MSRResNet/train_MSRResNet_x4.yml', {}),
    'EDSR x4': ('options/train/EDSR/train_EDSR_x4.yml', {}),
    'RRDBNet x4 (6 blocks)': ('options/train/RRDBNet/train_RRDBNet_x4.yml', {'num_block': 6}),
    'SwinIR-light x4': ('options/train/SwinIR/train_SwinIR_x4.yml', {}),
}
QUICK_SIZES = ['64x4']  # gt_size x batch: a CPU-only machine finishes the quick run in minutes
FULL_SIZES = ['64x4', '128x4', '128x16', '192x4', '192x16']  # --full: the sizes people train

VARIANTS = {
    'default': {},
    '+ channels_last': {'channels_last': True},
    '+ compile': {'compile': True},
    'optimizer_impl: for_loop': {'optimizer_impl': 'for_loop'},
    '+ amp bf16': {'amp': 'bf16'},
    'bf16 + channels_last + compile': {'amp': 'bf16', 'channels_last': True, 'compile': True},
}
CPU_VARIANTS = ('default', '+ channels_last', '+ compile', 'optimizer_impl: for_loop',
                '+ amp bf16')


def benchmark_options(opt_file: str, net_overrides: dict, work: Path, device: str,
                      train_overrides: dict, gt_size: int = 64, batch: int = 4,
                      workers: int = 1) -> Path:
    """The option file with the demo images as training data, small patches, no validation,
    its experiment in ``work``; written to ``work/opt.yml``."""
    opt = yaml.safe_load((ROOT / opt_file).read_text())
    opt['name'] = 'benchmark'
    opt['num_gpu'] = 1 if device == 'cuda' else 0
    demo = ROOT / 'datasets' / 'demo'
    opt['datasets'] = {'train': {
        **opt['datasets']['train'], 'name': 'demo', 'type': 'PairedImageDataset',
        'dataroot_gt': str(demo / 'train_HR'), 'dataroot_lq': str(demo / 'train_LR_bicubic/X4'),
        'filename_tmpl': '{}x4', 'io_backend': {'type': 'disk'}, 'gt_size': gt_size,
        'batch_size_per_gpu': batch, 'num_worker_per_gpu': workers, 'dataset_enlarge_ratio': 1000,
        'prefetch_mode': 'cuda' if device == 'cuda' else None}}
    opt['network_g'].update(net_overrides)
    if opt['network_g']['type'] == 'SwinIR':
        opt['network_g']['img_size'] = gt_size // opt['scale']
    opt['val'] = None
    opt['train'].update({'speed_policy': 'force', **train_overrides})  # measure what is asked
    opt['logger'] = {'print_freq': 10**9, 'save_checkpoint_freq': 10**9, 'use_tb_logger': False}
    opt['path'] = {'experiments_root': str(work / 'experiment')}
    path = work / 'opt.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


class Framework:
    """``train.py``'s loop, built as train.py builds it; ``run(n)`` runs n more iterations."""

    def __init__(self, opt_path: Path) -> None:
        self.opt, _ = parse_options(['-opt', str(opt_path)], is_train=True)
        self.device = start_processes(self.opt)
        get_root_logger(rank=0, level=logging.WARNING)
        set_random_seed(self.opt['manual_seed'])
        set_backend_flags(self.opt['train'])
        self.loader, self.sampler = build_train_loader(self.opt, self.device)
        self.model = build_model(self.opt, self.device)
        open_run_folder(self.opt)
        self.loop = LoopState()
        self.opt['logger']['progress_bar'] = False
        self.hooks = build_hooks(self.opt)  # what a run has (TensorBoard off: no tracker)
        self.run_state = Run(self.model, self.opt, self.loop)
        self.data_wait: list[float] = []
        self.logged = LOG_CAPTURE.attach()  # get_root_logger removed the handlers

    def run(self, n: int) -> float:
        self.opt['train']['total_iter'] = self.loop.current_iter + n
        synchronize(self.device)
        start, cpu = time.perf_counter(), time.process_time()
        with GracefulStop() as stopper:
            train_loop(self.run_state, self.loader, self.sampler, stopper, self.hooks)
        synchronize(self.device)
        self.cpu_s = (time.process_time() - cpu) / n
        seconds = (time.perf_counter() - start) / n
        wait = self.logged.data_wait()
        if wait is not None:
            self.data_wait.append(wait)
        return seconds


class LogCapture(logging.Handler):
    """Keeps the loop's 'Data wait: x% of iteration time' line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.last: str | None = None

    def attach(self) -> 'LogCapture':
        """Listen to the project logger; its other handlers show warnings only."""
        log = logging.getLogger('basicsr_lite')
        log.addHandler(self)
        log.setLevel(logging.INFO)
        for handler in log.handlers:
            if handler is not self:
                handler.setLevel(logging.WARNING)
        return self

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith('Data wait:'):
            self.last = record.getMessage()

    def data_wait(self) -> float | None:
        match = re.match(r'Data wait: ([\d.]+)%', self.last or '')
        self.last = None
        return float(match.group(1)) if match else None


LOG_CAPTURE = LogCapture()


class BareLoop:
    """What a hand-written loop does with the same parts: network, optimizer (the same kernel as
    the framework's), L1 loss, EMA, scheduler; batches pre-loaded on the device."""

    def __init__(self, opt: dict, device: torch.device, batches: list[dict]) -> None:
        train = opt['train']
        self.device = device
        self.channels_last = train['channels_last']
        torch.manual_seed(0)
        self.net = build_network(opt['network_g'], 'network_g').to(device)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        self.optimizer = build_optimizer(self.net.parameters(), train['optim_g'],
                                         impl=train['optimizer_impl'])
        self.scheduler = build_scheduler(self.optimizer, train['scheduler'], opt)
        self.loss = build_loss(train['pixel_opt'] or {'type': 'L1Loss'},  # list form: L1
                               'train.pixel_opt').to(device)
        self.decay = train['ema_decay']
        self.amp = train['amp']
        self.batches = [{k: to_memory_format(v.to(device), self.channels_last)
                         for k, v in b.items() if k in ('lq', 'gt')} for b in batches]
        self.step_count = 0
        self.loader_iter = None  # set: batches come from it instead of the pre-loaded ones

    def next_batch(self) -> dict:
        if self.loader_iter is None:
            return self.batches[self.step_count % len(self.batches)]
        batch = next(self.loader_iter)
        return {k: to_memory_format(batch[k].to(self.device, non_blocking=True),
                                    self.channels_last) for k in ('lq', 'gt')}

    def run(self, n: int) -> float:
        synchronize(self.device)
        start, cpu = time.perf_counter(), time.process_time()
        ema_params, params = list(self.ema.parameters()), list(self.net.parameters())
        for _ in range(n):
            batch = self.next_batch()
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bool(self.amp)):
                out = self.net(batch['lq'])
            loss = self.loss(out.float(), batch['gt'])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            with torch.no_grad():
                torch._foreach_lerp_(ema_params, params, 1 - self.decay)
            self.step_count += 1
        synchronize(self.device)
        self.cpu_s = (time.process_time() - cpu) / n  # this process's threads (not workers)
        return (time.perf_counter() - start) / n


def peak_memory(device: torch.device) -> dict:
    peak = {'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == 'cuda':
        peak['peak_cuda_mb'] = torch.cuda.max_memory_allocated(device) / 2**20
    return peak


class CachedBatches(torch.utils.data.Dataset):
    """Pre-loaded batches, endlessly (``batch_size=None``: each item is a batch)."""

    def __init__(self, batches: list[dict]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, index: int) -> dict:
        return self.batches[index % len(self.batches)]


def preloaded(loader, count: int = 4) -> tuple[list[dict], torch.utils.data.DataLoader]:
    """``count`` batches of ``loader``, and a loader that yields them again and again."""
    batches = [next(iter(loader)) for _ in range(count)]
    return batches, torch.utils.data.DataLoader(CachedBatches(batches), batch_size=None)


def child_overhead(opt_path: Path, iters: int, repeats: int) -> dict:
    """Interleaved: the bare loop and train_loop on the same pre-loaded batches (the loop's own
    overhead), then both on real data: the bare loop through a plain DataLoader over the same
    dataset with as many workers, train_loop through its own loader."""
    framework = Framework(opt_path)
    real_loader = framework.loader
    batches, cached_loader = preloaded(real_loader)
    bare = BareLoop(framework.opt, framework.device, batches)
    train_opt = framework.opt['datasets']['train']
    dataset = real_loader.dataset
    dataset = getattr(dataset, 'dataset', dataset)  # without the per-sample seeding wrapper
    plain_loader = torch.utils.data.DataLoader(
        dataset, batch_size=train_opt['batch_size_per_gpu'],
        sampler=torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=10**8),
        num_workers=train_opt['num_worker_per_gpu'], drop_last=True,
        pin_memory=framework.device.type == 'cuda', persistent_workers=True)
    plain_batches = iter(plain_loader)
    keys = ('bare', 'ours', 'bare_real', 'ours_real')
    times: dict[str, list[float]] = {k: [] for k in keys}
    cpu: dict[str, list[float]] = {k: [] for k in keys}
    for repeat in range(repeats + 1):  # the first round warms up (allocator, kernels, workers)
        bare.loader_iter, framework.loader = None, cached_loader
        round_times = {'bare': bare.run(iters)}
        round_cpu = {'bare': bare.cpu_s}
        round_times['ours'], round_cpu['ours'] = framework.run(iters), framework.cpu_s
        bare.loader_iter = plain_batches
        framework.loader = real_loader
        round_times['bare_real'], round_cpu['bare_real'] = bare.run(iters), bare.cpu_s
        round_times['ours_real'], round_cpu['ours_real'] = framework.run(iters), framework.cpu_s
        if repeat:
            for key in keys:
                times[key].append(round_times[key])
                cpu[key].append(round_cpu[key])
    return {**window_stats(times), **{f'{k}_cpu_s': statistics.median(v) for k, v in cpu.items()},
            'ratios': [o / b for o, b in zip(times['ours'], times['bare'])],
            'data_wait': statistics.median(framework.data_wait[-repeats:])}


def window_stats(times: dict[str, list[float]]) -> dict[str, float]:
    """The minimum and the median of each key's per-window seconds per iteration (noise on a
    shared host only adds time: the minimum is the least disturbed window)."""
    return {**{f'{k}_s': statistics.median(v) for k, v in times.items()},
            **{f'{k}_min_s': min(v) for k, v in times.items()}}


def child_loop_cost(opt_path: Path, iters: int, repeats: int) -> dict:
    """The loop's own work per iteration (logging, hooks, step helper, EMA mask, loader,
    timers): train_loop and the bare loop on a network so small that its step costs about a
    millisecond, so that their difference is what the loop adds to every iteration of any
    network; windows of ``iters`` iterations, ``repeats`` of each, in alternating order."""
    framework = Framework(opt_path)
    batches, framework.loader = preloaded(framework.loader)
    bare = BareLoop(framework.opt, framework.device, batches)
    bare.run(iters), framework.run(iters)  # warm-up
    times: dict[str, list[float]] = {'bare': [], 'ours': []}
    for repeat in range(repeats):
        runs = [('bare', bare.run), ('ours', framework.run)]
        for key, run in (runs if repeat % 2 == 0 else runs[::-1]):
            times[key].append(run(iters))
    return window_stats(times)


def child_memory(opt_path: Path, iters: int) -> dict:
    """Peak memory of a basicsr_lite run alone (default options)."""
    framework = Framework(opt_path)
    framework.run(iters)
    return peak_memory(framework.device)


def child_variants(opt_paths: list[Path], iters: int, repeats: int) -> list[dict]:
    """Every variant of one network in this process, interleaved (the same machine state for
    all); on CUDA each one's peak memory over its own runs."""
    frameworks, results = [], []
    for path in opt_paths:
        framework = Framework(path)
        start = time.perf_counter()
        framework.run(3)  # warm-up, compilation included
        frameworks.append(framework)
        results.append({'warm_up_s': time.perf_counter() - start, 'times': []})
    for _ in range(repeats):
        for framework, result in zip(frameworks, results):
            if framework.device.type == 'cuda':
                torch.cuda.reset_peak_memory_stats(framework.device)
            result['times'].append(framework.run(iters))
            if framework.device.type == 'cuda':
                result['peak_cuda_mb'] = max(result.get('peak_cuda_mb', 0),
                                             torch.cuda.max_memory_allocated() / 2**20)
    for framework, result in zip(frameworks, results):
        times = result.pop('times')
        result.update(framework_s=statistics.median(times), framework_min_s=min(times),
                      data_wait=statistics.median(framework.data_wait[1:]))
    return results


def run_in_child(kind: str, paths: list[Path], iters: int, repeats: int):
    """What a ``--child`` process measures, by ``kind``."""
    if kind == 'overhead':
        return child_overhead(paths[0], iters, repeats)
    if kind == 'loopcost':
        return child_loop_cost(paths[0], iters, repeats)
    if kind == 'memory':
        return child_memory(paths[0], iters)
    return child_variants(paths, iters, repeats)


def child_env() -> dict[str, str]:
    """The environment of a ``--child`` run: it imports the same basicsr_lite as this process (a
    script's own folder, tools/, is what Python puts on its path, not the repository)."""
    code = str(Path(basicsr_lite.__file__).resolve().parent.parent)
    paths = [code, *filter(None, os.environ.get('PYTHONPATH', '').split(os.pathsep))]
    return {**os.environ, 'PYTHONWARNINGS': 'ignore', 'PYTHONPATH': os.pathsep.join(paths)}


def run_child(kind: str, label: str, variants: list[str], args, size: tuple[int, int]):
    """A measurement in a fresh process (its own peak memory, no compile cache)."""
    opt_file, net_overrides = args.configs[label]
    with tempfile.TemporaryDirectory() as work:
        paths = []
        for i, variant in enumerate(variants):
            folder = Path(work) / f'v{i}'
            folder.mkdir()
            paths.append(str(benchmark_options(opt_file, net_overrides, folder, args.device,
                                               VARIANTS[variant], *size, args.workers)))
        cmd = [sys.executable, __file__, '--child', kind, *paths, '--iters', str(args.iters),
               '--repeats', str(args.repeats)]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=work, env=child_env())
        lines = [line for line in done.stdout.splitlines() if line.startswith(('{', '['))]
        if done.returncode != 0 or not lines:
            raise SystemExit(f'{label} / {variants} failed:\n{done.stderr[-3000:]}')
        return json.loads(lines[-1])


def end_to_end(label: str, args, size: tuple[int, int]) -> dict:
    """``python train.py`` as a user runs it (loader workers, logging every 100 iterations, no
    validation), twice: ``w`` and ``w + n`` iterations; the difference over ``n`` is the time
    per iteration without start-up. Wall and CPU seconds (the process and its workers)."""
    opt_file, net_overrides = args.configs[label]
    warm, n = 3, 2 * args.iters
    seconds = []
    with tempfile.TemporaryDirectory() as work:
        for total in (warm, warm + n):
            folder = Path(work) / f'it{total}'
            folder.mkdir()
            path = benchmark_options(opt_file, net_overrides, folder, args.device, {}, *size,
                                     args.workers)
            opt = yaml.safe_load(path.read_text())
            opt['train']['total_iter'] = total
            opt['logger']['print_freq'] = 100
            path.write_text(yaml.safe_dump(opt, sort_keys=False))
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run([sys.executable, str(ROOT / 'train.py'), '-opt', str(path)],
                                  capture_output=True, text=True, cwd=work,
                                  env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode != 0:
                raise SystemExit(f'train.py on {label} failed:\n{done.stderr[-3000:]}')
            seconds.append((wall, after.ru_utime + after.ru_stime - before.ru_utime
                            - before.ru_stime))
    return {'wall_s': (seconds[1][0] - seconds[0][0]) / n,
            'cpu_s': (seconds[1][1] - seconds[0][1]) / n}


def machine(device: str) -> str:
    text = (f'{os.cpu_count()} CPU cores, {cpu_summary()}; torch {torch.__version__}, '
            f'{torch.get_num_threads()} threads')
    if device == 'cuda':
        text += f'; {torch.cuda.get_device_name(0)}'
    return text


def parse_size(text: str) -> tuple[int, int]:
    gt, _, batch = text.partition('x')
    return int(gt), int(batch)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--opt', nargs='*', help='option files (default: four architectures)')
    parser.add_argument('--iters', type=int, default=20, help='iterations per window')
    parser.add_argument('--repeats', type=int, default=5, help='interleaved windows')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        choices=('cpu', 'cuda'))
    parser.add_argument('--variants', nargs='*', help=f'subset of {list(VARIANTS)}')
    parser.add_argument('--sizes', nargs='*', help=f'gt_size x batch (default {QUICK_SIZES}; '
                        f'--full: {FULL_SIZES})')
    parser.add_argument('--full', action='store_true', help='the sizes people train at')
    parser.add_argument('--workers', type=int, default=2, help='loader workers')
    parser.add_argument('--tables', nargs='*', default=['loopcost', 'overhead', 'e2e', 'variants'],
                        choices=('loopcost', 'overhead', 'e2e', 'variants'),
                        help='which tables to measure')
    parser.add_argument('--child', nargs='+', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *paths = args.child
        print(json.dumps(run_in_child(kind, [Path(p) for p in paths], args.iters, args.repeats)))
        return
    args.configs = {Path(p).stem: (str(Path(p).resolve()), {}) for p in args.opt} if args.opt \
        else DEFAULT_OPTS
    sizes = [parse_size(t) for t in args.sizes or (FULL_SIZES if args.full else QUICK_SIZES)]
    variants = args.variants or (list(VARIANTS) if args.device == 'cuda' else CPU_VARIANTS)
    overhead, loop_cost = {}, None
    if 'loopcost' in args.tables:
        loop_cost = loop_cost_line(args)
    if 'overhead' in args.tables or 'e2e' in args.tables:
        overhead = overhead_table(args, sizes, loop_cost)
    if 'e2e' in args.tables:
        e2e_table(args, sizes, overhead)
    if 'variants' in args.tables:
        variants_table(args, variants, sizes[0])


def header(args, what: str) -> None:
    """Every table names the machine it was measured on."""
    print(f'\n{what}. Machine: {machine(args.device)}; device {args.device}; '
          f'{args.workers} loader worker(s); windows of {args.iters} iterations x '
          f'{args.repeats}, interleaved; min / median of the per-window s/it.\n', flush=True)


TINY_NET = ('options/train/MSRResNet/train_MSRResNet_x4.yml', {'num_feat': 8, 'num_block': 1})


def loop_cost_line(args) -> float:
    """The loop's own seconds per iteration (:func:`child_loop_cost`: windows of 100
    iterations, 10 of each), printed; the overhead table divides it by each bare step."""
    with tempfile.TemporaryDirectory() as work:
        path = benchmark_options(*TINY_NET, Path(work), args.device, {}, 32, 1, 0)
        cmd = [sys.executable, __file__, '--child', 'loopcost', str(path), '--iters', '100',
               '--repeats', '10']
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=work, env=child_env())
        lines = [line for line in done.stdout.splitlines() if line.startswith('{')]
        if done.returncode != 0 or not lines:
            raise SystemExit(f'loop cost failed:\n{done.stderr[-3000:]}')
    r = json.loads(lines[-1])
    cost = r['ours_min_s'] - r['bare_min_s']
    print(f"\nThe loop's own cost per iteration. Machine: {machine(args.device)}; device "
          f"{args.device}. MSRResNet with 8 channels and 1 block, LQ 8x8, batch 1, on pre-loaded "
          f"batches; 10 windows of 100 iterations each way, alternating; min / median ms per "
          f"iteration: bare loop {r['bare_min_s'] * 1e3:.2f} / {r['bare_s'] * 1e3:.2f}, "
          f"basicsr_lite {r['ours_min_s'] * 1e3:.2f} / {r['ours_s'] * 1e3:.2f}: the loop adds "
          f"{cost * 1e3:.2f} ms (min) / {(r['ours_s'] - r['bare_s']) * 1e3:.2f} ms (median) to "
          f"every iteration of any network.", flush=True)
    return cost


def overhead_table(args, sizes: list[tuple[int, int]], loop_cost: float | None = None) -> dict:
    header(args, 'Overhead against the bare loop')
    print('| network | gt x batch | bare loop s/it min / med | basicsr_lite s/it min / med | '
          'overhead min / med (each window) | CPU s/it bare / ours | on real data: bare + '
          'DataLoader s/it min / med | basicsr_lite s/it min / med | ratio min / med | '
          'data wait | peak RSS MB' + (' / CUDA MB |' if args.device == 'cuda' else ' |')
          + (' loop cost / bare step |' if loop_cost is not None else ''))
    print('|---|---|---|---|---|---|---|---|---|---|---|' + ('---|' if loop_cost is not None else ''))
    results = {}
    for label in args.configs:
        for size in sizes:
            r = run_child('overhead', label, ['default'], args, size)
            memory = run_child('memory', label, ['default'], args, size)
            results[label, size] = r
            peak = f"{memory['peak_rss_mb']:.0f}" + (f" / {memory['peak_cuda_mb']:.0f}"
                                                     if 'peak_cuda_mb' in memory else '')
            print(f"| {label} | {size[0]} x {size[1]} | {r['bare_min_s']:.4f} / {r['bare_s']:.4f}"
                  f" | {r['ours_min_s']:.4f} / {r['ours_s']:.4f} | "
                  f"{r['ours_min_s'] / r['bare_min_s']:.3f}x / {r['ours_s'] / r['bare_s']:.3f}x "
                  f"({', '.join(f'{x:.3f}' for x in r['ratios'])}) | "
                  f"{r['bare_cpu_s']:.3f} / {r['ours_cpu_s']:.3f} | "
                  f"{r['bare_real_min_s']:.4f} / {r['bare_real_s']:.4f} | "
                  f"{r['ours_real_min_s']:.4f} / {r['ours_real_s']:.4f} | "
                  f"{r['ours_real_min_s'] / r['bare_real_min_s']:.3f}x / "
                  f"{r['ours_real_s'] / r['bare_real_s']:.3f}x | {r['data_wait']:.1f}% | "
                  f"{peak} |" + (f" {1 + loop_cost / r['bare_min_s']:.4f}x |"
                                  if loop_cost is not None else ''), flush=True)
    return results


def e2e_table(args, sizes: list[tuple[int, int]], overhead: dict) -> None:
    header(args, 'End to end: python train.py as a process')
    print('| network | gt x batch | train.py s/it | train.py CPU s/it (with workers) | '
          'bare + DataLoader s/it (min) | ratio |')
    print('|---|---|---|---|---|---|')
    for label in args.configs:
        for size in sizes:
            e2e = end_to_end(label, args, size)
            bare = overhead[label, size]['bare_real_min_s']
            print(f"| {label} | {size[0]} x {size[1]} | {e2e['wall_s']:.4f} | "
                  f"{e2e['cpu_s']:.3f} | {bare:.4f} | {e2e['wall_s'] / bare:.3f}x |", flush=True)


def variants_table(args, variants: list[str], size: tuple[int, int]) -> None:
    header(args, f'Speed options at gt {size[0]} x batch {size[1]}')
    print('| network | variant | s/it min / med | speed vs default | warm-up s | data wait |'
          + (' peak CUDA MB |' if args.device == 'cuda' else ''))
    print('|---|---|---|---|---|---|' + ('---|' if args.device == 'cuda' else ''))
    for label in args.configs:
        results = run_child('variants', label, variants, args, size)
        base = results[0]['framework_min_s']
        for variant, r in zip(variants, results):
            cuda = f" {r['peak_cuda_mb']:.0f} |" if 'peak_cuda_mb' in r else ''
            print(f"| {label} | {variant} | {r['framework_min_s']:.4f} / "
                  f"{r['framework_s']:.4f} | {base / r['framework_min_s']:.2f}x | "
                  f"{r['warm_up_s']:.1f} | {r['data_wait']:.1f}% |{cuda}", flush=True)


if __name__ == '__main__':
    main()
