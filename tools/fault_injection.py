"""Fault injection: SIGKILL a tiny training run at random moments, resume it each time with
--auto_resume, and check that it ends bitwise identical to an uninterrupted run.

    python tools/fault_injection.py --kills 10 --iters 300 --workers 2

Saves are slowed down (``--save-delay`` seconds before each file's rename). Every other kill is
sent the moment a save's temp file appears (so it lands mid-save); the others at random
moments. Exit code 0 when the final ``params`` and ``params_ema`` are identical, 1 otherwise.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent

from basicsr_lite.prep.synthetic import make_paired_folder  # noqa: E402
from basicsr_lite.engine.checkpoint import state_iterations  # noqa: E402
from basicsr_lite.utils.files import TEMP_MARK  # noqa: E402

SAVE_FREQ = 5


@dataclass
class Report:
    kills: list[dict] = field(default_factory=list)  # when, newest state, mid-save or not
    identical: bool = False
    straight_s: float = 0.0

    def summary(self) -> str:
        lines = [f'{"kill":>4} {"alive_s":>8} {"newest_state":>12} {"mid_save":>8}']
        for i, kill in enumerate(self.kills, 1):
            lines.append(f'{i:>4} {kill["alive_s"]:>8.2f} {str(kill["newest_state"]):>12} '
                         f'{str(kill["mid_save"]):>8}')
        mid = sum(k['mid_save'] for k in self.kills)
        lines.append(f'{len(self.kills)} kills ({mid} during a save); final weights '
                     f'{"IDENTICAL" if self.identical else "DIFFERENT"} to the uninterrupted run.')
        return '\n'.join(lines)


def write_options(work: Path, name: str, iters: int, workers: int) -> Path:
    gt, lq = make_paired_folder(work / 'data', [f'im{i}' for i in range(6)], (40, 40), 2, seed=3)
    opt = {
        'name': name, 'scale': 2, 'num_gpu': 0, 'manual_seed': 123,
        'datasets': {'train': {
            'type': 'PairedImageDataset', 'dataroot_gt': str(gt), 'dataroot_lq': str(lq),
            'filename_tmpl': '{}x2', 'gt_size': 16, 'use_hflip': True, 'use_rot': True,
            'batch_size_per_gpu': 2, 'num_worker_per_gpu': workers, 'dataset_enlarge_ratio': 3}},
        'network_g': {'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': 2},
        'train': {'total_iter': iters, 'ema_decay': 0.9, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
                  'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [iters]},
                  'pixel_opt': {'type': 'L1Loss'}},
        'logger': {'print_freq': 50, 'save_checkpoint_freq': SAVE_FREQ, 'use_tb_logger': False,
                   'keep_last_checkpoints': 3},
        'path': {'experiments_root': str(work / name)},
    }
    path = work / f'{name}.yml'
    path.write_text(yaml.safe_dump(opt))
    return path


def _newest(exp: Path) -> int:
    iters = state_iterations(exp / 'training_states')
    return iters[0] if iters else 0


def start(opt_path: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / 'train.py'), '-opt', str(opt_path),
                             '--auto_resume'], cwd=opt_path.parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f'training run failed ({proc.returncode}):\n{err.decode()[-3000:]}')


def _temp_files(exp: Path, pid: int) -> list[Path]:
    """Temp files of the saves in progress of process ``pid`` (their names end with it)."""
    return list(exp.rglob(f'.*{TEMP_MARK}{pid}')) if exp.exists() else []


def _kill_moment(proc: subprocess.Popen, exp: Path, after_iter: int, mid_save: bool,
                 extra_wait: float) -> None:
    """Wait until the run has a checkpoint at ``after_iter`` or later; then, for a mid-save kill,
    until a temp file of the next save appears, else ``extra_wait`` more seconds."""
    while proc.poll() is None and _newest(exp) < after_iter:
        time.sleep(0.005)
    if mid_save:
        while proc.poll() is None and not _temp_files(exp, proc.pid):
            time.sleep(0.002)
    else:
        time.sleep(extra_wait)


def run_fault_injection(kills: int, iters: int, workers: int, save_delay: float, seed: int,
                        work: Path) -> Report:
    """Every other kill is aimed at a save in progress (sent as soon as a temp file of the save
    exists); the others at a random moment, often inside a save too."""
    rng = random.Random(seed)
    env = {**os.environ, 'BASICSR_LITE_FAULT_SAVE_DELAY': str(save_delay)}
    report = Report()
    straight_opt = write_options(work, 'straight', iters, workers)
    faulty_opt = write_options(work, 'faulty', iters, workers)
    began = time.time()
    finish(start(straight_opt, env))
    report.straight_s = time.time() - began
    faulty = work / 'faulty'
    # Targets end 2 checkpoints before the last one, so that a run is still going at each kill.
    targets = sorted(rng.sample(range(SAVE_FREQ, iters - 2 * SAVE_FREQ), kills))
    for i, target in enumerate(targets):
        proc = start(faulty_opt, env)
        began = time.time()
        _kill_moment(proc, faulty, target - target % SAVE_FREQ, mid_save=i % 2 == 0,
                     extra_wait=rng.uniform(0.0, 4 * save_delay + 0.05))
        if proc.poll() is not None:
            raise RuntimeError(f'the run ended ({proc.returncode}) before kill {i + 1}: '
                               f'{proc.stderr.read().decode()[-2000:]}')
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        newest = state_iterations(faulty / 'training_states')
        report.kills.append({'alive_s': time.time() - began,
                             'newest_state': newest[0] if newest else None,
                             'mid_save': bool(_temp_files(faulty, proc.pid))})
    finish(start(faulty_opt, env))
    a = torch.load(work / 'straight' / 'models' / 'net_g_latest.pth', weights_only=True)
    b = torch.load(faulty / 'models' / 'net_g_latest.pth', weights_only=True)
    report.identical = all(torch.equal(a[k][n], b[k][n]) for k, v in a.items() for n in v)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--kills', type=int, default=10)
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--workers', type=int, default=0)
    parser.add_argument('--save-delay', type=float, default=0.05,
                        help='seconds each checkpoint file waits before its rename')
    parser.add_argument('--seed', type=int, default=0, help='seed of the kill times')
    parser.add_argument('--work-dir', default=None, help='default: a temporary folder')
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        report = run_fault_injection(args.kills, args.iters, args.workers, args.save_delay,
                                     args.seed, work)
    print(report.summary())
    return 0 if report.identical else 1


if __name__ == '__main__':
    sys.exit(main())
