"""A 2-process torchrun run on CPU (gloo): rank-0-only files, sharded validation."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.conftest import write_yaml

ROOT = Path(__file__).resolve().parent.parent


def torchrun(tmp_path, script: str, opt_path: Path, *extra: str):
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
           str(ROOT / script), '-opt', str(opt_path), '--launcher', 'pytorch', *extra]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_two_process_training_on_cpu(tiny_opt, tmp_path):
    tiny_opt['datasets']['train']['num_worker_per_gpu'] = 1
    proc = torchrun(tmp_path, 'train.py', write_yaml(tmp_path / 'opt.yml', tiny_opt))
    assert proc.returncode == 0, proc.stderr[-3000:]
    exp = Path(tiny_opt['path']['experiments_root'])
    assert len(list(exp.glob('train_tiny_*.log'))) == 1  # one log, written by rank 0
    log = next(exp.glob('train_tiny_*.log')).read_text()
    assert 'world size 2' in log
    assert 'batch 2 x 2 process(es)' in log
    # Each rank validated one of the two images; the gathered result covers both.
    assert 'Validation tiny_val (2 images)' in log
    assert log.count('Validation tiny_val') == 2  # iter 3 and the final report
    state = torch.load(exp / 'training_states' / '6.state', weights_only=True)
    assert len(state['rng_states']) == 2  # one per rank
    assert sorted(p.name for p in (exp / 'models').iterdir()) == \
        ['net_g_3.pth', 'net_g_6.pth', 'net_g_latest.pth']


def test_config_error_reported_once_not_a_hang(tiny_opt, tmp_path):
    tiny_opt['train']['optim_g']['lrr'] = 1
    proc = torchrun(tmp_path, 'train.py', write_yaml(tmp_path / 'opt.yml', tiny_opt))
    assert proc.returncode != 0
    combined = proc.stdout + proc.stderr
    assert combined.count("train.optim_g.lrr: unknown argument") == 1


def test_torchrun_without_launcher_is_refused(tiny_opt, tmp_path):
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
         str(ROOT / 'train.py'), '-opt', str(write_yaml(tmp_path / 'opt.yml', tiny_opt))],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert (proc.stdout + proc.stderr).count('add --launcher pytorch') == 1
    assert not Path(tiny_opt['path']['experiments_root']).exists()


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


def test_dead_rank_ends_the_run_with_a_message(tiny_opt, tmp_path):
    import signal
    import time
    tiny_opt['train']['total_iter'] = 100000
    tiny_opt['logger'].update(save_checkpoint_freq=20, print_freq=1000)
    tiny_opt['val']['val_freq'] = 10**6
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
           str(ROOT / 'train.py'), '-opt', str(write_yaml(tmp_path / 'opt.yml', tiny_opt)),
           '--launcher', 'pytorch']
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    state = Path(tiny_opt['path']['experiments_root']) / 'training_states' / '20.state'
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert state.exists()
    os.kill(children_by_rank(proc.pid)[1], signal.SIGKILL)
    killed_at = time.time()
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert time.time() - killed_at < 60
    assert 'Another process of this distributed run stopped or became unreachable' in output
    assert 'Last good checkpoint:' in output
