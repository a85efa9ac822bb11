"""A 2-process torchrun run on CPU (gloo): rank-0-only files, sharded validation."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import write_yaml
from tests.runs import children_by_rank, configure, run_to_end, start_run, wait_for

ROOT = Path(__file__).resolve().parent.parent


def torchrun(tmp_path, script: str, opt_path: Path, *extra: str):
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
           str(ROOT / script), '-opt', str(opt_path), '--launcher', 'pytorch', *extra]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # two processes with gloo: about 5 s
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
    for it in (3, 6):  # every rank's weights hashed and compared at each checkpoint
        assert f'Saving models and training state at iter {it} (weights identical on all 2 ' \
               f'ranks).' in log


def test_rank_disagreement_is_reported(caplog):
    import logging

    from basicsr_lite.engine.checkpoint import rank_agreement
    logging.getLogger('basicsr_lite').addHandler(caplog.handler)  # it does not propagate
    assert rank_agreement([], 5) == ''
    assert rank_agreement(['a', 'a'], 5) == ' (weights identical on all 2 ranks)'
    assert rank_agreement(['a', 'a', 'b'], 5) == ' (weights DIFFER between ranks)'
    assert "Iteration 5: the weights of rank(s) [2] differ from rank 0's" in caplog.text


@pytest.mark.slow
def test_gathered_validation_equals_one_process(tiny_opt, tmp_path):
    """test.py on 2 processes (each scores a shard, rank 0 gathers) writes the same per-image
    and mean metrics as on 1 process."""
    tiny_opt['train']['total_iter'] = 2
    run_to_end(write_yaml(tmp_path / 'train.yml', tiny_opt))
    weights = Path(tiny_opt['path']['experiments_root']) / 'models' / 'net_g_latest.pth'
    test_opt = {k: v for k, v in tiny_opt.items() if k not in ('train', 'logger')}
    test_opt['datasets'] = {'test_1': tiny_opt['datasets']['val']}
    tables = {}
    for nproc in (1, 2):
        test_opt['path'] = {'pretrain_network_g': str(weights),
                            'results_root': str(tmp_path / f'results{nproc}')}
        opt_path = write_yaml(tmp_path / f'test{nproc}.yml', test_opt)
        cmd = ([sys.executable, str(ROOT / 'test.py')] if nproc == 1 else
               [sys.executable, '-m', 'torch.distributed.run', '--standalone',
                '--nproc_per_node=2', str(ROOT / 'test.py')])
        extra = ['--launcher', 'pytorch'] if nproc == 2 else []
        proc = subprocess.run([*cmd, '-opt', str(opt_path), *extra], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        tables[nproc] = (tmp_path / f'results{nproc}' / 'metrics.csv').read_text()
    assert tables[1].count('\n') == 4  # header, a, b, mean
    assert tables[1] == tables[2]


@pytest.mark.slow
def test_config_error_reported_once_not_a_hang(tiny_opt, tmp_path):
    tiny_opt['train']['optim_g']['lrr'] = 1
    proc = torchrun(tmp_path, 'train.py', write_yaml(tmp_path / 'opt.yml', tiny_opt))
    assert proc.returncode != 0
    combined = proc.stdout + proc.stderr
    assert combined.count("train.optim_g.lrr: unknown argument") == 1


@pytest.mark.slow
def test_torchrun_without_launcher_is_refused(tiny_opt, tmp_path):
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
         str(ROOT / 'train.py'), '-opt', str(write_yaml(tmp_path / 'opt.yml', tiny_opt))],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert (proc.stdout + proc.stderr).count('add --launcher pytorch') == 1
    assert not Path(tiny_opt['path']['experiments_root']).exists()


def long_run_with_checkpoint(tiny_opt: dict, tmp_path: Path):
    """A 2-process run that would go on for long; returned once its checkpoint 20 exists."""
    opt = configure(tiny_opt, Path(tiny_opt['path']['experiments_root']), 100000, 20)
    opt_path = write_yaml(tmp_path / 'opt.yml', opt)
    proc = start_run(opt_path, nproc=2)
    wait_for(Path(opt['path']['experiments_root']) / 'training_states' / '20.state', proc)
    return proc


@pytest.mark.slow
def test_dead_rank_ends_the_run_with_a_message(tiny_opt, tmp_path):
    proc = long_run_with_checkpoint(tiny_opt, tmp_path)
    os.kill(children_by_rank(proc.pid)[1], signal.SIGKILL)
    killed_at = time.time()
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert time.time() - killed_at < 60
    shown = '\n'.join(line for line in output.splitlines() if ' INFO: ' not in line)[-4000:]
    assert 'Another process of this distributed run stopped or became unreachable' in output, shown
    assert 'Last good checkpoint:' in output, shown


@pytest.mark.slow
def test_hung_rank_ends_the_run_after_dist_params_timeout(tiny_opt, tmp_path):
    """A rank that stops answering without closing its connections (SIGSTOP) is only noticed
    through dist_params.timeout: the other rank exits with the message once it has passed."""
    tiny_opt['dist_params'] = {'timeout': 5}
    proc = long_run_with_checkpoint(tiny_opt, tmp_path)
    ranks = children_by_rank(proc.pid)
    os.kill(ranks[1], signal.SIGSTOP)
    stopped_at = time.time()
    try:
        while proc.poll() is None and ranks[0] in children_by_rank(proc.pid).values():
            assert time.time() - stopped_at < 90, 'rank 0 did not give up on the hung rank'
            time.sleep(0.1)
        waited = time.time() - stopped_at
    finally:
        os.kill(ranks[1], signal.SIGKILL)
    output, _ = proc.communicate(timeout=120)
    assert 4 <= waited < 60  # the 5 s timeout, not an immediate connection error
    assert 'Another process of this distributed run stopped or became unreachable' in output


@pytest.mark.slow
def test_early_stopping_ends_every_rank_at_the_same_iteration(tiny_opt, tmp_path):
    """Sharded validation is gathered on every rank, so each rank's early-stopping hook takes the
    same decision: the run ends complete, with one checkpoint at the stop."""
    tiny_opt['train']['total_iter'] = 50
    tiny_opt['val'].update(val_freq=2, save_img=False,
                           early_stopping={'metric': 'psnr', 'patience': 1, 'min_delta': 100.0})
    tiny_opt['logger'].update(save_checkpoint_freq=1000, keep_best_checkpoints={'metric': 'psnr'})
    proc = torchrun(tmp_path, 'train.py', write_yaml(tmp_path / 'opt.yml', tiny_opt))
    assert proc.returncode == 0, proc.stderr[-3000:]
    exp = Path(tiny_opt['path']['experiments_root'])
    log = next(exp.glob('train_tiny_*.log')).read_text()
    assert 'Training ends at iteration 4: early stopping' in log
    assert sorted(p.name for p in (exp / 'training_states').iterdir()) == ['4.state']
    assert (exp / 'models' / 'net_g_best_psnr.pth').is_file()


@pytest.mark.slow
def test_fast_dev_run_under_torchrun_leaves_nothing(tiny_opt, tmp_path, monkeypatch):
    monkeypatch.setenv('TMPDIR', str(tmp_path / 'tmp'))
    (tmp_path / 'tmp').mkdir()
    proc = torchrun(tmp_path, 'train.py', write_yaml(tmp_path / 'opt.yml', tiny_opt),
                    '--fast_dev_run', '2')
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert output.count('--fast_dev_run: the pipeline works.') == 1
    assert 'world size 2' in output and 'iter:       2' in output
    assert list((tmp_path / 'tmp').glob('basicsr_lite_*')) == []
    assert not Path(tiny_opt['path']['experiments_root']).exists()
