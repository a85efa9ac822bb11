"""Architecture benchmark: per registered generator, as configured by its shipped training option
file: parameters, inference time (NCHW and channels_last) and peak memory for a fixed input, and
the time of one training step (forward, L1, backward, Adam).

Each architecture runs in its own process, so that its peak memory is its own: on CUDA
``torch.cuda.max_memory_allocated`` during inference; on the CPU the growth of the process's
peak RSS (``ru_maxrss``) during inference, over its peak after building the network. Times are
the minimum of ``--repeats`` runs after one warm-up (noise on a shared host only adds time).
The channels_last column is NCHW time / NHWC time; the verdict (helps >= 1.10, hurts <= 0.91,
else neutral) is what the capability table's ``channels_last`` field records for this device.

    python tools/benchmark_archs.py [--archs SPAN EDSR] [--size 64] [--train-size 32]
                                    [--batch 4] [--repeats 3] [--device cpu|cuda]

``--checkpointing``: for the networks with gradient checkpointing (``use_checkpoint``), the bytes
a training forward keeps for backward with and without it (counted with
``torch.autograd.graph.saved_tensors_hooks``: device-independent), the peak memory of a training
step on CUDA (``max_memory_allocated`` over the memory held before the step), and the step
time with / without.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent

from basicsr_lite.archs import build_network
from basicsr_lite.archs.capabilities import capability
from basicsr_lite.archs.constraints import network_needs
from basicsr_lite.options.zoo import reference_option_file
from basicsr_lite.registry import ARCH_REGISTRY

HELPS, HURTS = 1.10, 0.91


def second_input(net: torch.nn.Module, opt: dict, n: int, device: str) -> list:
    """Conditioned networks' second input: SFTMD's metadata vector, ArbSR's scale."""
    if hasattr(net, 'num_meta'):
        return [torch.zeros(n, net.num_meta, device=device)]
    if opt['network_g']['type'] == 'ArbSR':
        return [float(opt['scale'])]
    return []


def best_time(fn, repeats: int, device: str) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(opt_path: Path, args) -> dict:
    """One architecture, in this (child) process."""
    opt = yaml.safe_load(opt_path.read_text())
    device = args.device
    torch.manual_seed(0)
    net = build_network(opt['network_g']).to(device)
    cap = capability(opt['network_g'])
    side = -(-max(args.size, cap.min_size) // cap.size_multiple) * cap.size_multiple
    channels = network_needs(opt['network_g']).in_ch or 3  # FSRCNN works on the Y channel
    x = torch.rand(1, channels, side, side, device=device)
    rest = second_input(net, opt, 1, device)
    result = {'params': sum(p.numel() for p in net.parameters()), 'side': side}
    net.eval()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        result['infer_s'] = best_time(lambda: net(x, *rest), args.repeats, device)
        if device == 'cuda':
            result['peak_mb'] = torch.cuda.max_memory_allocated() / 2**20
        else:
            result['peak_mb'] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                 - rss_before) / 1024
        x_cl = x.contiguous(memory_format=torch.channels_last)
        from basicsr_lite.runtime.speed import network_to_channels_last
        network_to_channels_last(net)
        result['infer_cl_s'] = best_time(lambda: net(x_cl, *rest), args.repeats, device)
    net = build_network(opt['network_g']).to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-7)
    t_side = -(-max(args.train_size, cap.min_size) // cap.size_multiple) * cap.size_multiple
    batch = torch.rand(args.batch, channels, t_side, t_side, device=device)
    rest = second_input(net, opt, args.batch, device)

    def step() -> None:
        out = net(batch, *rest)
        loss = (out - out.detach().mean()).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    result['train_s'] = best_time(step, args.repeats, device)
    return result


def measure_checkpointing(opt_path: Path, args) -> dict:
    """Saved bytes, CUDA peak and step time of a training step with and without checkpointing."""
    from basicsr_lite.runtime.activation_memory import count_saved_tensors
    opt = yaml.safe_load(opt_path.read_text())
    device = args.device
    cap = capability(opt['network_g'])
    side = -(-max(args.train_size, cap.min_size) // cap.size_multiple) * cap.size_multiple
    channels = network_needs(opt['network_g']).in_ch or 3
    result = {'side': side}
    for flag in (False, True):
        torch.manual_seed(0)
        net = build_network({**opt['network_g'], 'use_checkpoint': flag}).to(device).train()
        batch = torch.rand(args.batch, channels, side, side, device=device)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-7)

        def step() -> None:
            out = net(batch)
            loss = (out - out.detach().mean()).abs().mean()
            optimizer.zero_grad(set_to_none=False)
            loss.backward()
            optimizer.step()

        step()  # gradients and optimizer state exist before the measured step
        with count_saved_tensors(net) as counter:
            out = net(batch)
        del out
        tag = 'ckpt' if flag else 'plain'
        result[f'saved_mb_{tag}'] = counter.bytes / 2**20
        if device == 'cuda':
            torch.cuda.synchronize()
            held = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            step()
            torch.cuda.synchronize()
            result[f'peak_mb_{tag}'] = (torch.cuda.max_memory_allocated() - held) / 2**20
        result[f'step_s_{tag}'] = best_time(step, args.repeats, device)
        net = optimizer = None  # freed before the next build (step() refers to both)
        if device == 'cuda':
            torch.cuda.empty_cache()
    return result


def print_checkpointing_table(names: list[str], args) -> None:
    names = [n for n in names if capability({'type': n}).checkpointing]
    cuda = args.device == 'cuda'
    print(f'Gradient checkpointing (use_checkpoint): one training step of batch {args.batch} at '
          f'{args.train_size}x{args.train_size} LQ, Adam; saved = activations kept for backward '
          '(saved_tensors_hooks)' + ('; peak = CUDA max_memory_allocated above the memory held '
                                     'before the step' if cuda else '') + '.\n')
    head = '| arch | option file | saved MB | saved MB, checkpointed | ratio |'
    rule = '|---|---|---:|---:|---:|'
    if cuda:
        head += ' peak MB | peak MB, checkpointed | ratio |'
        rule += '---:|---:|---:|'
    print(head + ' step ms | step ms, checkpointed | time ratio |')
    print(rule + '---:|---:|---:|')
    for name in names:
        path = reference_option_file(name)
        r = run_child(name, path, args, ['--checkpointing'])
        if isinstance(r, str):
            print(f'| {name} | {r} |', flush=True)
            continue
        row = (f"| {name} | {path.relative_to(ROOT)} | {r['saved_mb_plain']:.0f} | "
               f"{r['saved_mb_ckpt']:.0f} | {r['saved_mb_ckpt'] / r['saved_mb_plain']:.2f} |")
        if cuda:
            row += (f" {r['peak_mb_plain']:.0f} | {r['peak_mb_ckpt']:.0f} | "
                    f"{r['peak_mb_ckpt'] / r['peak_mb_plain']:.2f} |")
        print(row + f" {r['step_s_plain'] * 1e3:.0f} | {r['step_s_ckpt'] * 1e3:.0f} | "
              f"{r['step_s_ckpt'] / r['step_s_plain']:.2f} |", flush=True)


def run_child(name: str, path: Path | None, args, extra: list[str]) -> dict | str:
    """The measurement of one architecture in its own process (a message if it failed)."""
    if path is None:
        return '(no training option file)'
    cmd = [sys.executable, __file__, '--child', str(path), '--size', str(args.size),
           '--train-size', str(args.train_size), '--batch', str(args.batch),
           '--repeats', str(args.repeats), '--device', args.device, *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith('{')]
    if done.returncode != 0 or not lines:
        error = (done.stderr.strip().splitlines() or ['no output'])[-1]
        return f'{path.relative_to(ROOT)} | failed: {error}'
    return json.loads(lines[-1])


def verdict(ratio: float) -> str:
    return 'helps' if ratio >= HELPS else 'hurts' if ratio <= HURTS else 'neutral'


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--archs', nargs='*', help='registered names (default: every generator)')
    parser.add_argument('--size', type=int, default=64, help='LQ side for inference')
    parser.add_argument('--train-size', type=int, default=32, help='LQ patch side for training')
    parser.add_argument('--batch', type=int, default=4, help='training batch')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        choices=('cpu', 'cuda'))
    parser.add_argument('--checkpointing', action='store_true',
                        help='the gradient-checkpointing table instead (saved bytes, peak '
                             'memory, step time with and without use_checkpoint)')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run = measure_checkpointing if args.checkpointing else measure
        print(json.dumps(run(Path(args.child), args)))
        return
    names = args.archs or [n for n in ARCH_REGISTRY.keys()
                           if capability({'type': n}).scales != ()]
    if args.checkpointing:
        print_checkpointing_table(names, args)
        return
    machine = (f'{os.cpu_count()} CPU cores, torch {torch.__version__}, '
               f'{torch.get_num_threads()} threads')
    if args.device == 'cuda':
        machine += f', {torch.cuda.get_device_name(0)}'
    print(f'Architectures on {args.device} ({machine}): inference of one {args.size}x{args.size} '
          f'LQ image, training step of batch {args.batch} at {args.train_size}x{args.train_size} '
          f'LQ (Adam); min of {args.repeats} after a warm-up; each in its own process.\n')
    print('| arch | option file | params | inference ms | channels_last ms | NCHW/NHWC | '
          'channels_last | peak MB | train step ms |')
    print('|---|---|---:|---:|---:|---:|---|---:|---:|')
    for name in names:
        path = reference_option_file(name)
        r = run_child(name, path, args, [])
        if isinstance(r, str):
            print(f'| {name} | {r} | | | | | | |', flush=True)
            continue
        ratio = r['infer_s'] / r['infer_cl_s']
        print(f"| {name} | {path.relative_to(ROOT)} | {r['params']:,} | "
              f"{r['infer_s'] * 1e3:.1f} | {r['infer_cl_s'] * 1e3:.1f} | {ratio:.2f} | "
              f"{verdict(ratio)} | {r['peak_mb']:.0f} | {r['train_s'] * 1e3:.1f} |", flush=True)


if __name__ == '__main__':
    main()
