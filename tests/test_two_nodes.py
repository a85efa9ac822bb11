"""Several nodes: two torchrun "nodes" on one host (c10d rendezvous on localhost, one process
each) stopped by SIGTERM and resumed, or restarted by torchrun after a killed rank; and the
pieces behind them (elastic restart -> auto resume, the ranks' agreement, the resume command)."""
from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from basicsr_lite.engine import elastic
from basicsr_lite.engine.checkpoint import find_resume_state
from basicsr_lite.engine.experiment import resume_command
from basicsr_lite.options import parse_options
from basicsr_lite.runtime import dist
from basicsr_lite.runtime.weights import CheckpointError
from tests.conftest import write_yaml
from tests.runs import (ROOT, assert_identical, children_by_rank, configure, final_weights,
                        saved_iterations, wait_for)

TOTAL, SAVE_FREQ = 120, 10
RESTART_ENV = ('TORCHELASTIC_RESTART_COUNT', 'TORCHELASTIC_MAX_RESTARTS')


# ---- elastic restart: options and resume-state lookup (one process) ----

class Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def log_messages():
    """The project logger's messages (whether it propagates to the root logger or not)."""
    project, handler = logging.getLogger('basicsr_lite'), Messages()
    level = project.level
    project.addHandler(handler)
    project.setLevel(logging.INFO)
    yield lambda: handler.messages
    project.removeHandler(handler)
    project.setLevel(level)


def fake_checkpoints(root: Path, iters: tuple[int, ...]) -> None:
    """Training states (with their network files) at ``iters``: enough for the lookup."""
    (root / 'training_states').mkdir(parents=True)
    (root / 'models').mkdir()
    for it in iters:
        torch.save({'iter': it, 'epoch': it // 2, 'optimizers': [], 'schedulers': []},
                   root / 'training_states' / f'{it}.state')
        torch.save({}, root / 'models' / f'net_g_{it}.pth')


@pytest.mark.parametrize('env, extra, expected', [
    ({'TORCHELASTIC_RESTART_COUNT': '2', 'TORCHELASTIC_MAX_RESTARTS': '3'}, [], [2, 3]),
    ({'TORCHELASTIC_RESTART_COUNT': '0', 'TORCHELASTIC_MAX_RESTARTS': '3'}, [], None),
    ({}, [], None),
    ({'TORCHELASTIC_RESTART_COUNT': '1', 'TORCHELASTIC_MAX_RESTARTS': '1'},
     ['--fast_dev_run', '2'], [1, 1]),
])
def test_restarted_workers_resume_by_themselves(tiny_opt, tmp_path, monkeypatch, log_messages,
                                                env, extra, expected):
    """TORCHELASTIC_RESTART_COUNT > 0 resumes the newest state as with --auto_resume (never a
    --fast_dev_run), with one log line naming the restart and the iteration."""
    for key in RESTART_ENV:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))  # --fast_dev_run's folder
    opt, _ = parse_options(['-opt', str(write_yaml(tmp_path / 'o.yml', tiny_opt)), *extra], True)
    assert opt['elastic_restart'] == expected
    resumes = expected is not None and not extra
    assert opt['auto_resume'] is resumes
    fake_checkpoints(Path(opt['path']['experiments_root']), (3, 6))
    found = find_resume_state(opt)
    lines = [line for line in log_messages() if 'torchrun restarted' in line]
    if resumes:
        assert (found[0].name, found[1]['iter']) == ('6.state', 6)
        assert lines == [f'torchrun restarted the workers (restart 2 of max 3): resuming from '
                         f'iteration 6 ({found[0]}), as with --auto_resume.']
    else:
        assert found is None and lines == []


def test_restart_seen_on_one_rank_resumes_every_rank(monkeypatch):
    """The agent of a healthy node restarts its workers without counting a restart: one rank
    that saw a restart is enough, and the highest count is reported."""
    monkeypatch.setattr(elastic, 'all_gather_objects', lambda obj: [None, [1, 2], [2, 2]])
    opt = {'auto_resume': False, 'elastic_restart': None, 'fast_dev_run': False}
    assert elastic.agree_on_auto_resume(opt) == [2, 2]  # resume, as after the restart [2, 2]
    assert opt == {'auto_resume': False, 'elastic_restart': None, 'fast_dev_run': False}
    monkeypatch.setattr(elastic, 'all_gather_objects', lambda obj: [None, None])
    assert elastic.agree_on_auto_resume(opt) is None  # nobody restarted: no resume


def test_lookup_resumes_when_only_another_rank_restarted(tmp_path, monkeypatch, log_messages):
    """This rank saw no restart (no --auto_resume either); rank 1 did: the lookup takes the
    newest state, after both ranks agreed on it."""
    monkeypatch.setattr(elastic, 'all_gather_objects',
                        lambda obj: [obj, [1, 1]] if obj is None else [obj, obj])
    fake_checkpoints(tmp_path, (3, 6))
    opt = {'auto_resume': False, 'elastic_restart': None, 'fast_dev_run': False,
           'path': {'resume_state': None, 'training_states': str(tmp_path / 'training_states'),
                    'models': str(tmp_path / 'models')}}
    found = find_resume_state(opt)
    assert (found[0], found[1]['iter']) == (tmp_path / 'training_states' / '6.state', 6)
    assert log_messages()[-1].startswith('torchrun restarted the workers (restart 1 of max 1): '
                                         'resuming from iteration 6 (')


def test_ranks_that_found_different_states_are_refused(monkeypatch):
    monkeypatch.setattr(elastic, 'all_gather_objects', lambda obj: [obj, None])
    with pytest.raises(CheckpointError, match=r'\(rank 0: iteration 20, rank 1: none\): '
                                              r'path.experiments_root must be a folder every '
                                              r'node shares'):
        elastic.check_same_state((Path('20.state'), {'iter': 20}))
    monkeypatch.setattr(elastic, 'all_gather_objects', lambda obj: [obj, obj])
    elastic.check_same_state((Path('20.state'), {'iter': 20}))  # agreed: no error


@pytest.mark.parametrize('agent_store, warned', [('True', True), ('False', False)])
def test_restarts_with_the_shared_rendezvous_store_are_warned_about(monkeypatch, log_messages,
                                                                   agent_store, warned):
    monkeypatch.setenv('TORCHELASTIC_MAX_RESTARTS', '3')
    monkeypatch.setenv('TORCHELASTIC_USE_AGENT_STORE', agent_store)
    elastic.warn_shared_store_restarts()
    assert [m for m in log_messages() if 'TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1' in m] == (
        ['torchrun --max-restarts is set with the shared rendezvous store: a restarted group '
         'may fail to connect (pytorch/pytorch#135712). Start torchrun with '
         'TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its environment.'] if warned else [])


def test_resume_command_of_a_two_node_torchrun(monkeypatch):
    """The stop message repeats this node's torchrun options (rendezvous included) and says
    what the other nodes run."""
    monkeypatch.setattr(sys, 'argv', ['/code/train.py', '-opt', 'o.yml'])
    monkeypatch.setenv('GROUP_WORLD_SIZE', '2')
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '4')
    monkeypatch.setenv('TORCHELASTIC_RUN_ID', 'job7')
    monkeypatch.setattr(dist, 'parent_argv', lambda: [
        '/usr/bin/python3', '/usr/local/bin/torchrun', '--nnodes=2', '--nproc_per_node=4',
        '--rdzv_backend=c10d', '--rdzv_endpoint=node01:29400', '--rdzv_id=job7',
        '/code/train.py', '-opt', 'o.yml', '--launcher', 'pytorch', ''])
    opt = {'launcher': 'pytorch', 'world_size': 8,
           'command_args': ['-opt', 'my run.yml', '--launcher', 'pytorch', '--auto_resume']}
    note = ('  (the command of the node of rank 0: on every node, rerun the command that node '
            'was started with, plus --auto_resume)')
    assert resume_command(opt) == (
        "torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d --rdzv_endpoint=node01:29400 "
        "--rdzv_id=job7 /code/train.py -opt 'my run.yml' --launcher pytorch --auto_resume" + note)
    monkeypatch.setattr(dist, 'parent_argv', lambda: None)  # no /proc: the options are named
    assert resume_command(opt) == (
        "torchrun --nnodes=2 --nproc_per_node=4 <the same rendezvous options> /code/train.py "
        "-opt 'my run.yml' --launcher pytorch --auto_resume" + note)


def test_slurm_local_rank_is_the_task_index_on_its_node(monkeypatch):
    """Task 5 of 8, the second on its node: LOCAL_RANK 1 (SLURM_PROCID % GPUs would give 0 on
    a CPU machine, or GPU 5 of a 4-task node)."""
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        # setenv first: monkeypatch then removes what the code sets after the test (a bare
        # delenv of an absent key records nothing, and RANK=5 would leak into later tests)
        monkeypatch.setenv(key, '')
        monkeypatch.delenv(key)
    monkeypatch.setenv('SLURM_NODELIST', 'node[01-02]')
    monkeypatch.setenv('SLURM_PROCID', '5')
    monkeypatch.setenv('SLURM_NTASKS', '8')
    monkeypatch.setenv('SLURM_LOCALID', '1')
    monkeypatch.setattr(dist.subprocess, 'getoutput', lambda command: 'node01')
    dist._env_from_slurm(29510)
    assert [os.environ[k] for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                                    'MASTER_PORT')] == ['5', '8', '1', 'node01', '29510']


# ---- two torchrun nodes on this host (slow) ----

_straight: list[dict] = []  # final weights of the uninterrupted two-node run (same data in all)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def start_nodes(opt_path: Path, *extra: str, max_restarts: int = 0) -> list[subprocess.Popen]:
    """Two torchrun agents, ``--nnodes=2 --nproc_per_node=1``, rendezvous (c10d) on a free port
    of 127.0.0.1; each one's output in ``node<N>.out`` beside the option file."""
    port = free_port()
    procs = []
    for node in (0, 1):
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--nnodes=2', '--nproc_per_node=1',
               f'--node_rank={node}', '--rdzv_backend=c10d',
               f'--rdzv_endpoint=127.0.0.1:{port}', f'--rdzv_id=two_nodes_{port}',
               f'--max-restarts={max_restarts}', str(ROOT / 'train.py'), '-opt', str(opt_path),
               '--launcher', 'pytorch', *extra]
        with open(opt_path.parent / f'node{node}.out', 'a') as out:
            # One thread per process: two single-process nodes on 2 cores (torchrun sets it
            # only for several processes per node). A store of its own for each restarted
            # group (pytorch/pytorch#135712: see engine/elastic.py).
            procs.append(subprocess.Popen(cmd, cwd=opt_path.parent, stdout=out,
                                          stderr=subprocess.STDOUT,
                                          env={**os.environ, 'OMP_NUM_THREADS': '1',
                                               'TORCH_DISABLE_SHARE_RDZV_TCP_STORE': '1'}))
    return procs


def wait_nodes(procs: list[subprocess.Popen], timeout: float = 150) -> list[int]:
    deadline = time.time() + timeout
    return [proc.wait(timeout=max(deadline - time.time(), 1)) for proc in procs]


def kill_nodes(procs: list[subprocess.Popen]) -> None:
    """Every worker, then every agent (nothing is left behind by a failed test)."""
    for proc in procs:
        if proc.poll() is None:
            for pid in children_by_rank(proc.pid).values():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.kill()
            proc.wait()


def outputs(root: Path) -> str:
    return (root / 'node0.out').read_text() + (root / 'node1.out').read_text()


def two_node_run(tiny_opt: dict, tmp_path: Path, name: str) -> tuple[dict, Path]:
    """The configuration (its experiment in ``tmp_path/name``) and its option file."""
    (tmp_path / name).mkdir()
    opt = configure(tiny_opt, tmp_path / name / 'exp', TOTAL, SAVE_FREQ)
    return opt, write_yaml(tmp_path / name / 'run.yml', opt)


def straight(tiny_opt: dict, tmp_path: Path) -> dict:
    """The same two-node configuration run uninterrupted (once per session)."""
    if not _straight:
        _, opt_path = two_node_run(tiny_opt, tmp_path, 'straight')
        procs = start_nodes(opt_path)
        try:
            codes = wait_nodes(procs)
        finally:
            kill_nodes(procs)
        assert codes == [0, 0], outputs(tmp_path / 'straight')[-3000:]
        _straight.append(final_weights(tmp_path / 'straight' / 'exp'))
    return _straight[0]


@pytest.mark.slow
def test_sigterm_to_both_nodes_then_auto_resume_is_bitwise(tiny_opt, tmp_path):
    """SIGTERM to both torchrun agents once checkpoint 10 exists: both ranks save at the same
    iteration (one state, with both ranks' RNG states), the message gives node 0's torchrun
    command; both nodes rerun with --auto_resume end with the weights of the straight two-node
    run (params and params_ema, bitwise)."""
    expected = straight(tiny_opt, tmp_path)
    opt, opt_path = two_node_run(tiny_opt, tmp_path, 'run')
    exp = Path(opt['path']['experiments_root'])
    procs = start_nodes(opt_path)
    try:
        wait_for(exp / 'training_states' / f'{SAVE_FREQ}.state', procs[0], timeout=120)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        wait_nodes(procs)  # (torchrun itself reports the signal: non-zero, checked below)
        output = outputs(tmp_path / 'run')
        stopped = re.findall(r'Stopped by SIGTERM at iteration (\d+); the training state is '
                             r'saved. Resume with:\n  (.*)', output)
        assert len(stopped) == 1, output[-3000:]  # rank 0 logs it
        stop_iter, command = int(stopped[0][0]), stopped[0][1]
        assert SAVE_FREQ <= stop_iter < TOTAL
        assert saved_iterations(exp)[-1] == stop_iter
        state = torch.load(exp / 'training_states' / f'{stop_iter}.state', weights_only=True)
        assert len(state['rng_states']) == 2
        assert not (exp / 'models' / 'net_g_latest.pth').exists()
        assert re.match(r'torchrun --nnodes=2 --nproc_per_node=1 --node_rank=\d '
                        r'--rdzv_backend=c10d --rdzv_endpoint=127\.0\.0\.1:\d+ '
                        r'--rdzv_id=two_nodes_\d+ --max-restarts=0 \S+train\.py -opt \S+run\.yml '
                        r'--launcher pytorch --auto_resume  \(the command of the node of rank 0',
                        command), command
        procs = start_nodes(opt_path, '--auto_resume')
        codes = wait_nodes(procs)
        output = outputs(tmp_path / 'run')
        assert codes == [0, 0], output[-3000:]
        assert f'Start training from epoch {state["epoch"]}, iter {stop_iter}.' in output
        assert_identical(expected, final_weights(exp))
    finally:
        kill_nodes(procs)


@pytest.mark.slow
def test_killed_rank_is_restarted_by_torchrun_and_resumes(tiny_opt, tmp_path):
    """``--max-restarts 1`` on both nodes; rank 1's worker is SIGKILLed once checkpoint 10
    exists: the agents restart the group, which resumes from the newest checkpoint by itself
    (no --auto_resume given), runs to the end and ends bitwise equal to the straight run."""
    expected = straight(tiny_opt, tmp_path)
    opt, opt_path = two_node_run(tiny_opt, tmp_path, 'run')
    exp = Path(opt['path']['experiments_root'])
    procs = start_nodes(opt_path, max_restarts=1)
    try:
        wait_for(exp / 'training_states' / f'{SAVE_FREQ}.state', procs[0], timeout=120)
        workers = {**children_by_rank(procs[0].pid), **children_by_rank(procs[1].pid)}
        os.kill(workers[1], signal.SIGKILL)
        codes = wait_nodes(procs)
        output = outputs(tmp_path / 'run')
        assert codes == [0, 0], output[-3000:]
        restarts = re.findall(r'torchrun restarted the workers \(restart 1 of max 1\): resuming '
                              r'from iteration (\d+) \(\S+\), as with --auto_resume\.', output)
        assert len(restarts) == 1, output[-3000:]
        resumed_at = int(restarts[0])
        assert SAVE_FREQ <= resumed_at < TOTAL and resumed_at % SAVE_FREQ == 0
        starts = re.findall(r'Start training from epoch \d+, iter (\d+)\.', output)
        # the first start, then the restarted group's (rank 0 may be on either node's output)
        assert sorted(starts, key=int) == ['0', str(resumed_at)]
        assert 'Another process of this distributed run stopped' in output  # the survivor
        assert_identical(expected, final_weights(exp))
    finally:
        kill_nodes(procs)
