"""Stops sent the way schedulers and terminals send them: to the whole process group (loader
workers included), to torchrun, or to one rank only. Each one saves a state at the iteration it
stopped at, and --auto_resume then ends bitwise identical to an uninterrupted run."""
from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from tests.conftest import write_yaml
from tests.runs import (assert_identical, children_by_rank, configure, final_weights, run_to_end,
                        saved_iterations, start_run, straight_weights, wait_for)

pytestmark = pytest.mark.slow

TOTAL, SAVE_FREQ, WORKERS = 300, 20, 2
_straight: dict[int, dict] = {}  # nproc -> final weights of the uninterrupted run


def straight(opt: dict, tmp_path: Path, nproc: int) -> dict:
    """Uninterrupted runs are the same in every test (same generated data): run each once."""
    if nproc not in _straight:
        _straight[nproc] = straight_weights(opt, tmp_path, 'straight', nproc)
    return _straight[nproc]


def stop_then_resume(tiny_opt: dict, tmp_path: Path, sig: signal.Signals, nproc: int,
                     to_rank: int | None = None) -> tuple[int, str]:
    """Start a run, send ``sig`` to its process group (or to one rank) once the first checkpoint
    exists, check the stop, resume to the end and compare with the uninterrupted run.
    Returns the stop process's exit code and output."""
    opt = configure(tiny_opt, tmp_path / 'run', TOTAL, SAVE_FREQ, WORKERS)
    expected = straight(opt, tmp_path, nproc)
    opt_path = write_yaml(tmp_path / 'run.yml', opt)
    proc = start_run(opt_path, nproc=nproc, new_session=True)
    wait_for(tmp_path / 'run' / 'training_states' / f'{SAVE_FREQ}.state', proc)
    if to_rank is None:
        os.killpg(proc.pid, sig)
    else:
        os.kill(children_by_rank(proc.pid)[to_rank], sig)
    output, _ = proc.communicate(timeout=120)
    stopped = re.findall(r'Stopped by (\w+|a signal on another rank) at iteration (\d+); the '
                         r'training state is saved', output)
    assert len(stopped) == 1, output[-3000:]
    stop_iter = int(stopped[0][1])
    assert SAVE_FREQ <= stop_iter < TOTAL
    assert saved_iterations(tmp_path / 'run')[-1] == stop_iter
    assert not (tmp_path / 'run' / 'models' / 'net_g_latest.pth').exists()
    assert 'DataLoader worker' not in output
    run_to_end(opt_path, '--auto_resume', nproc=nproc)
    assert_identical(expected, final_weights(tmp_path / 'run'))
    return proc.returncode, output


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_group_signal_single_process_with_workers(tiny_opt, tmp_path, sig):
    code, output = stop_then_resume(tiny_opt, tmp_path, sig, nproc=1)
    assert code == 0, output[-3000:]
    assert f'{sig.name} received: saving a resumable state' in output
    assert f'Stopped by {sig.name}' in output
    assert 'Traceback' not in output
    hint = output.split('Resume with:\n', 1)[1].splitlines()[0].strip()
    assert hint.startswith('python ') and 'train.py -opt' in hint
    assert hint.endswith('run.yml --auto_resume')


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_group_signal_to_torchrun_with_workers(tiny_opt, tmp_path, sig):
    """torchrun forwards the signal to each rank's process group (workers included); torchrun
    itself then exits non-zero (its own report of the signal), after the ranks saved."""
    _, output = stop_then_resume(tiny_opt, tmp_path, sig, nproc=2)
    assert f'Stopped by {sig.name}' in output
    assert 'torchrun --nproc_per_node=2 ' in output
    assert '--launcher pytorch --auto_resume' in output


def test_signal_to_one_rank_stops_all_at_the_same_iteration(tiny_opt, tmp_path):
    """Only rank 1 is signalled: rank 0 learns it through the all-reduced flag, both ranks
    stop after the same iteration (the resumed run would differ otherwise) and exit 0."""
    code, output = stop_then_resume(tiny_opt, tmp_path, signal.SIGTERM, nproc=2, to_rank=1)
    assert code == 0, output[-3000:]
    assert 'Stopped by a signal on another rank' in output
