"""Helpers for tests that run train.py in subprocesses (single process or torchrun) and compare
the weights they end with."""
from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from tests.conftest import write_yaml

ROOT = Path(__file__).resolve().parent.parent


def configure(opt: dict, root: Path, total: int, save_freq: int, workers: int = 0,
              enlarge: int = 1) -> dict:
    """A copy of ``opt`` for ``total`` iterations, checkpoints every ``save_freq``, no
    validation during training, its experiment in ``root``."""
    opt = copy.deepcopy(opt)
    opt['datasets']['train'].update(num_worker_per_gpu=workers, dataset_enlarge_ratio=enlarge)
    opt['train']['total_iter'] = total
    opt['train']['scheduler'] = {'type': 'CosineAnnealingRestartLR', 'periods': [total]}
    opt['logger'].update(save_checkpoint_freq=save_freq, print_freq=save_freq)
    opt['val']['val_freq'] = 10**6
    opt['path']['experiments_root'] = str(root)
    return opt


def killed_run_resumes_exactly(opt: dict, tmp_path: Path, total: int, kill_after: int,
                               workers: int = 0, labels: tuple[str, ...] = ('net_g',)) -> None:
    """Run ``opt`` straight; run it again, SIGKILL it once the state of ``kill_after`` exists,
    ``--auto_resume`` it to the end; the final networks ``labels`` must be bitwise equal."""
    straight = configure(opt, tmp_path / 'straight', total, 10, workers)
    run_to_end(write_yaml(tmp_path / 'straight.yml', straight))
    killed = configure(opt, tmp_path / 'run', total, 10, workers)
    opt_path = write_yaml(tmp_path / 'run.yml', killed)
    proc = start_run(opt_path, '--auto_resume')
    wait_for(tmp_path / 'run' / 'training_states' / f'{kill_after}.state', proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert kill_after <= saved_iterations(tmp_path / 'run')[-1] < total
    run_to_end(opt_path, '--auto_resume')
    for label in labels:
        a, b = (load(tmp_path / p / 'models' / f'{label}_latest.pth') for p in ('straight', 'run'))
        assert_identical(a, b, tuple(a))


def train_in_process(tmp_path: Path, opt: dict, *extra: str) -> int:
    """train.py's main on ``opt`` (written to ``tmp_path/opt.yml``) in this process."""
    from basicsr_lite.train import main as train_main
    return train_main(['-opt', str(write_yaml(tmp_path / 'opt.yml', opt)), *extra])


def load(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)


def final_weights(root: Path) -> dict:
    return load(root / 'models' / 'net_g_latest.pth')


def assert_identical(a: dict, b: dict, keys: tuple[str, ...] = ('params', 'params_ema')) -> None:
    for key in keys:
        assert set(a[key]) == set(b[key])
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f'{key}.{name} differs'


def saved_iterations(root: Path) -> list[int]:
    return sorted(int(p.stem) for p in (root / 'training_states').glob('*.state'))


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f'the run ended ({proc.returncode}) before {path} appeared'
        assert time.time() < deadline, f'{path} never appeared'
        time.sleep(0.02)


def train_command(opt_path: Path, *extra: str, nproc: int = 1) -> list[str]:
    if nproc == 1:
        return [sys.executable, str(ROOT / 'train.py'), '-opt', str(opt_path), *extra]
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone',
            f'--nproc_per_node={nproc}', str(ROOT / 'train.py'), '-opt', str(opt_path),
            '--launcher', 'pytorch', *extra]


def start_run(opt_path: Path, *extra: str, nproc: int = 1, env: dict | None = None,
              new_session: bool = False) -> subprocess.Popen:
    """train.py (or torchrun with ``nproc`` processes) in the background; stdout and stderr
    together in ``proc.stdout``. ``new_session``: its own process group (to signal the group)."""
    return subprocess.Popen(train_command(opt_path, *extra, nproc=nproc), cwd=opt_path.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=new_session)


def run_to_end(opt_path: Path, *extra: str, nproc: int = 1, timeout: float = 300) -> str:
    """Run train.py to completion; returns its output (asserts exit code 0)."""
    proc = subprocess.run(train_command(opt_path, *extra, nproc=nproc), cwd=opt_path.parent,
                          capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    return output


def straight_weights(opt: dict, tmp_path: Path, name: str, nproc: int = 1) -> dict:
    """The final weights of an uninterrupted run of ``opt`` (its experiment in tmp_path/name)."""
    opt = copy.deepcopy(opt)
    opt['path']['experiments_root'] = str(tmp_path / name)
    run_to_end(write_yaml(tmp_path / f'{name}.yml', opt), nproc=nproc)
    return final_weights(tmp_path / name)


def children_by_rank(parent_pid: int) -> dict[int, int]:
    """{RANK: pid} of the worker processes started by torchrun (read from /proc)."""
    ranks = {}
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / 'stat').read_text().rsplit(')', 1)[1].split()[1])
            env = (entry / 'environ').read_bytes().split(b'\0')
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent_pid:
            for item in env:
                if item.startswith(b'RANK='):
                    ranks[int(item[5:])] = int(entry.name)
    return ranks
