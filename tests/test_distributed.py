"""A 2-process torchrun run on CPU (gloo): rank-0-only files, sharded validation."""
from __future__ import annotations

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
