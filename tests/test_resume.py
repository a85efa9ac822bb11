"""Exact resume: an interrupted and resumed run ends bitwise identical to an uninterrupted one."""
from __future__ import annotations

import signal
import time

import pytest

from basicsr_lite.train import main as train_main
from tests.conftest import write_yaml
from tests.runs import (assert_identical, configure, final_weights, run_to_end, saved_iterations,
                        start_run, wait_for)


def straight_run(tiny_opt, tmp_path, total, workers, enlarge) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    opt = configure(tiny_opt, tmp_path / 'straight', total, 4, workers, enlarge)
    assert train_main(['-opt', str(write_yaml(tmp_path / 'straight.yml', opt))]) == 0
    return final_weights(tmp_path / 'straight')


@pytest.mark.parametrize('workers,enlarge', [(0, 1), (0, 3), (2, 1), (2, 3)])
def test_stop_at_checkpoint_then_auto_resume(tiny_opt, tmp_path, workers, enlarge):
    expected = straight_run(tiny_opt, tmp_path, 10, workers, enlarge)
    opt = configure(tiny_opt, tmp_path / 'run', 6, 3, workers, enlarge)
    opt['train']['scheduler']['periods'] = [10]  # same schedule as the 10-iteration run
    assert train_main(['-opt', str(write_yaml(tmp_path / 'a.yml', opt))]) == 0
    opt['train']['total_iter'] = 10
    assert train_main(['-opt', str(write_yaml(tmp_path / 'b.yml', opt)), '--auto_resume']) == 0
    assert_identical(expected, final_weights(tmp_path / 'run'))


def test_data_does_not_depend_on_worker_count(tiny_opt, tmp_path):
    a = straight_run(tiny_opt, tmp_path / 'w0', 6, 0, 2)
    b = straight_run(tiny_opt, tmp_path / 'w2', 6, 2, 2)
    assert_identical(a, b)


@pytest.mark.slow
@pytest.mark.parametrize('workers,enlarge', [(0, 3), (2, 1)])
def test_sigkill_between_checkpoints_then_auto_resume(tiny_opt, tmp_path, workers, enlarge):
    total = 300
    expected = straight_run(tiny_opt, tmp_path, total, workers, enlarge)
    opt = configure(tiny_opt, tmp_path / 'run', total, 20, workers, enlarge)
    opt_path = write_yaml(tmp_path / 'run.yml', opt)
    proc = start_run(opt_path, '--auto_resume')
    wait_for(tmp_path / 'run' / 'training_states' / '40.state', proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = saved_iterations(tmp_path / 'run')[-1]
    assert 40 <= killed_at < total
    output = run_to_end(opt_path, '--auto_resume')
    assert 'Start training from epoch' in output and f'iter {killed_at}.' in output
    assert_identical(expected, final_weights(tmp_path / 'run'))


@pytest.mark.slow
def test_sigterm_saves_and_exits_0_then_resume_is_exact(tiny_opt, tmp_path):
    total = 300
    expected = straight_run(tiny_opt, tmp_path, total, 0, 2)
    opt = configure(tiny_opt, tmp_path / 'run', total, 50, 0, 2)
    opt_path = write_yaml(tmp_path / 'run.yml', opt)
    proc = start_run(opt_path, '--auto_resume')
    wait_for(tmp_path / 'run' / 'training_states' / '50.state', proc)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert 'SIGTERM received: saving a resumable state' in output
    assert 'the training state is saved. Resume with:' in output and '--auto_resume' in output
    stop_iter = saved_iterations(tmp_path / 'run')[-1]
    assert 50 <= stop_iter < total
    assert not (tmp_path / 'run' / 'models' / 'net_g_latest.pth').exists()
    run_to_end(opt_path, '--auto_resume')
    assert_identical(expected, final_weights(tmp_path / 'run'))


@pytest.mark.slow
def test_second_signal_exits_at_once_and_run_stays_resumable(tiny_opt, tmp_path):
    total = 200
    expected = straight_run(tiny_opt, tmp_path, total, 0, 1)
    opt = configure(tiny_opt, tmp_path / 'run', total, 10, 0, 1)
    opt_path = write_yaml(tmp_path / 'run.yml', opt)
    # Each checkpoint file waits 1.5 s before its rename: the second signal lands mid-save.
    proc = start_run(opt_path, '--auto_resume', env={'BASICSR_LITE_FAULT_SAVE_DELAY': '1.5'})
    wait_for(tmp_path / 'run' / 'training_states' / '10.state', proc)
    proc.send_signal(signal.SIGTERM)  # starts a (slow) save ...
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)  # ... which the second signal cuts short
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert 'Second SIGTERM: exiting now' in output
    leftovers = list((tmp_path / 'run').rglob(f'.*.tmp{proc.pid}'))
    assert leftovers  # the interrupted save's temp file
    assert saved_iterations(tmp_path / 'run') == [10]  # the cut save never became a checkpoint
    run_to_end(opt_path, '--auto_resume')
    assert not [p for p in leftovers if p.exists()]  # stale temp files cleaned at start
    assert saved_iterations(tmp_path / 'run')[-1] == total
    assert_identical(expected, final_weights(tmp_path / 'run'))
