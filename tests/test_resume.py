"""Exact resume: an interrupted and resumed run ends bitwise identical to an uninterrupted one."""
from __future__ import annotations

import copy
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from basicsr_lite.train import main as train_main
from tests.conftest import write_yaml

ROOT = Path(__file__).resolve().parent.parent


def configure(opt, root: Path, total: int, save_freq: int, workers: int, enlarge: int) -> dict:
    opt = copy.deepcopy(opt)
    opt['datasets']['train'].update(num_worker_per_gpu=workers, dataset_enlarge_ratio=enlarge)
    opt['train']['total_iter'] = total
    opt['train']['scheduler'] = {'type': 'CosineAnnealingRestartLR', 'periods': [total]}
    opt['logger'].update(save_checkpoint_freq=save_freq, print_freq=save_freq)
    opt['val']['val_freq'] = 10**6
    opt['path']['experiments_root'] = str(root)
    return opt


def final_weights(root: Path, total: int) -> dict:
    return torch.load(root / 'models' / 'net_g_latest.pth', weights_only=True)


def assert_identical(a: dict, b: dict) -> None:
    for key in ('params', 'params_ema'):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f'{key}.{name} differs'


def straight_run(tiny_opt, tmp_path, total, workers, enlarge) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    opt = configure(tiny_opt, tmp_path / 'straight', total, 4, workers, enlarge)
    assert train_main(['-opt', str(write_yaml(tmp_path / 'straight.yml', opt))]) == 0
    return final_weights(tmp_path / 'straight', total)


@pytest.mark.parametrize('workers,enlarge', [(0, 1), (0, 3), (2, 1), (2, 3)])
def test_stop_at_checkpoint_then_auto_resume(tiny_opt, tmp_path, workers, enlarge):
    expected = straight_run(tiny_opt, tmp_path, 10, workers, enlarge)
    opt = configure(tiny_opt, tmp_path / 'run', 6, 3, workers, enlarge)
    opt['train']['scheduler']['periods'] = [10]  # same schedule as the 10-iteration run
    assert train_main(['-opt', str(write_yaml(tmp_path / 'a.yml', opt))]) == 0
    opt['train']['total_iter'] = 10
    assert train_main(['-opt', str(write_yaml(tmp_path / 'b.yml', opt)), '--auto_resume']) == 0
    assert_identical(expected, final_weights(tmp_path / 'run', 10))


def test_data_does_not_depend_on_worker_count(tiny_opt, tmp_path):
    a = straight_run(tiny_opt, tmp_path / 'w0', 6, 0, 2)
    b = straight_run(tiny_opt, tmp_path / 'w2', 6, 2, 2)
    assert_identical(a, b)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.time() < deadline, f'{path} never appeared'
        time.sleep(0.02)


def start_run(opt_path: Path, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    import os
    return subprocess.Popen([sys.executable, str(ROOT / 'train.py'), '-opt', str(opt_path),
                             '--auto_resume'], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


@pytest.mark.parametrize('workers,enlarge', [(0, 3), (2, 1)])
def test_sigkill_between_checkpoints_then_auto_resume(tiny_opt, tmp_path, workers, enlarge):
    total = 300
    expected = straight_run(tiny_opt, tmp_path, total, workers, enlarge)
    opt = configure(tiny_opt, tmp_path / 'run', total, 20, workers, enlarge)
    opt_path = write_yaml(tmp_path / 'run.yml', opt)
    proc = start_run(opt_path, tmp_path)
    wait_for(tmp_path / 'run' / 'training_states' / '40.state', proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / 'run' / 'training_states' / f'{total}.state').exists()
    proc = start_run(opt_path, tmp_path)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()[-2000:]
    assert_identical(expected, final_weights(tmp_path / 'run', total))


def test_sigterm_saves_and_exits_0_then_resume_is_exact(tiny_opt, tmp_path):
    total = 300
    expected = straight_run(tiny_opt, tmp_path, total, 0, 2)
    opt = configure(tiny_opt, tmp_path / 'run', total, 50, 0, 2)
    opt_path = write_yaml(tmp_path / 'run.yml', opt)
    proc = start_run(opt_path, tmp_path)
    wait_for(tmp_path / 'run' / 'training_states' / '50.state', proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    stderr = proc.stderr.read()
    assert 'SIGTERM received: saving a resumable state' in stderr
    assert 'the training state is saved. Resume with:' in stderr and '--auto_resume' in stderr
    stop_iter = max(int(p.stem) for p in (tmp_path / 'run' / 'training_states').glob('*.state'))
    assert 50 <= stop_iter < total
    assert not (tmp_path / 'run' / 'models' / 'net_g_latest.pth').exists()
    proc = start_run(opt_path, tmp_path)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()[-2000:]
    assert_identical(expected, final_weights(tmp_path / 'run', total))


def test_second_signal_exits_at_once_and_run_stays_resumable(tiny_opt, tmp_path):
    opt = configure(tiny_opt, tmp_path / 'run', 200, 10, 0, 1)
    opt_path = write_yaml(tmp_path / 'run.yml', opt)
    proc = start_run(opt_path, tmp_path, env={'BASICSR_LITE_FAULT_SAVE_DELAY': '1.5'})
    states = tmp_path / 'run' / 'training_states'
    wait_for(states / '10.state', proc)
    proc.send_signal(signal.SIGTERM)  # starts a (slow) save ...
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)  # ... which the second signal cuts short
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert 'Second SIGTERM: exiting now' in proc.stderr.read()
    leftovers = [p for p in (tmp_path / 'run').rglob('.*.tmp*')]
    proc = start_run(opt_path, tmp_path)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()[-2000:]
    assert (states / '200.state').exists()
    assert not [p for p in leftovers if p.exists()]  # stale temp files cleaned at start
