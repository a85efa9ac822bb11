"""Errors in the user's input found after the options were read (datasets, weight files, resume
states, values a constructor rejects): exit 2 with one message, and the existing experiment or
results folder exactly as it was (no archive, no new folder)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from basicsr_lite.runtime.weights import save_torch
from basicsr_lite.test import main as evaluate_main
from basicsr_lite.train import main as train_main
from tests.conftest import write_yaml


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder``'s parent (names and contents)."""
    return {str(p.relative_to(folder.parent)): p.read_bytes()
            for p in sorted(folder.parent.rglob('*')) if p.is_file()}


def existing_run(tiny_opt: dict, tmp_path: Path) -> Path:
    """A finished 3-iteration run: its experiment folder is what must survive."""
    opt = copy.deepcopy(tiny_opt)
    opt['train']['total_iter'] = 3
    assert train_main(['-opt', str(write_yaml(tmp_path / 'first.yml', opt))]) == 0
    return Path(opt['path']['experiments_root'])


def assert_user_error_keeps_disk(main, opt: dict, folder: Path, tmp_path: Path, capsys,
                                 expected: str, *extra: str) -> None:
    opt_path = write_yaml(tmp_path / 'bad.yml', opt)
    capsys.readouterr()
    before = snapshot(folder)
    assert main(['-opt', str(opt_path), *extra]) == 2
    err = capsys.readouterr().err
    assert expected in err, err[-2000:]
    assert err.count('\nError: ') + err.startswith('Error: ') == 1 and 'Traceback' not in err
    assert snapshot(folder) == before
    assert not list(folder.parent.glob('*_archived_*'))


def garbage_file(path: Path) -> Path:
    path.write_bytes(b'\x80\x02not a checkpoint at all' * 10)
    return path


CASES = {
    'constructor rejects a value': (  # (upscale: 8 is found earlier: it is not scale 2)
        lambda opt, tmp: opt['network_g'].update(type='EDSR', rgb_mean=[0.5, 0.5]),
        'network_g (EDSR) rejected its options: ValueError: rgb_mean has 2 values but num_in_ch '
        'is 3.'),
    'unreadable pretrain file': (
        lambda opt, tmp: opt['path'].update(pretrain_network_g=str(garbage_file(tmp / 'w.pth'))),
        'w.pth is not a readable checkpoint'),
    'wrong io_backend type': (
        lambda opt, tmp: opt['datasets']['train'].update(io_backend={'type': 'hdf5'}),
        "io_backend.type 'hdf5' is not supported"),
    'scheduler rejects its values': (
        lambda opt, tmp: opt['train'].update(scheduler={
            'type': 'MultiStepRestartLR', 'milestones': [2], 'restarts': [0, 4],
            'restart_weights': [1]}),
        'train.scheduler (MultiStepRestartLR) rejected its options: ValueError: restarts (2) '
        'and restart_weights (1) must have the same length.'),
    'metric rejects its values': (
        lambda opt, tmp: opt['val']['metrics']['psnr'].update(input_order='WHC'),
        "val.metrics.psnr (calculate_psnr) rejected its options: ValueError: input_order must be "
        "'HWC' or 'CHW'; got 'WHC'."),
    'optimizer rejects its values': (
        lambda opt, tmp: opt['train']['optim_g'].update(lr=-1.0),
        'train.optim_g (Adam) rejected its options: ValueError: Invalid learning rate: -1.0'),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_training_input_errors_leave_the_experiment_untouched(tiny_opt, tmp_path, capsys, case):
    folder = existing_run(tiny_opt, tmp_path)
    change, expected = CASES[case]
    change(tiny_opt, tmp_path)
    assert_user_error_keeps_disk(train_main, tiny_opt, folder, tmp_path, capsys, expected)


def test_resume_state_that_does_not_match_leaves_the_experiment_untouched(
        tiny_opt, tmp_path, capsys):
    folder = existing_run(tiny_opt, tmp_path)
    tiny_opt['network_g']['num_feat'] = 16  # the saved net_g_3.pth has 8 features
    tiny_opt['train']['total_iter'] = 6
    assert_user_error_keeps_disk(train_main, tiny_opt, folder, tmp_path, capsys,
                                 'net_g_3.pth does not match MSRResNet', '--auto_resume')


def test_test_py_with_unreadable_weights_keeps_results(tiny_opt, tmp_path, capsys):
    results = tmp_path / 'results'
    results.mkdir()
    (results / 'metrics.csv').write_text('precious')
    test_opt = {k: v for k, v in tiny_opt.items() if k not in ('train', 'logger')}
    test_opt['datasets'] = {'test_1': tiny_opt['datasets']['val']}
    test_opt['path'] = {'pretrain_network_g': str(garbage_file(tmp_path / 'w.pth')),
                        'results_root': str(results)}
    assert_user_error_keeps_disk(evaluate_main, test_opt, results, tmp_path, capsys,
                                 'w.pth is not a readable checkpoint')


def test_auto_resume_without_state_says_so(tiny_opt, tmp_path, capsys):
    folder = Path(tiny_opt['path']['experiments_root'])
    (folder / 'training_states').mkdir(parents=True)
    save_torch({'params': {'w': torch.zeros(1)}}, folder / 'models' / 'net_g_2.pth')
    tiny_opt['train']['total_iter'] = 2
    assert train_main(['-opt', str(write_yaml(tmp_path / 'o.yml', tiny_opt)),
                       '--auto_resume']) == 0
    err = capsys.readouterr().err
    assert f"--auto_resume: no loadable training state in {folder / 'training_states'}; " \
           f'starting from iteration 0' in err
    archived = list(folder.parent.glob('tiny_archived_*'))
    assert len(archived) == 1 and (archived[0] / 'models' / 'net_g_2.pth').is_file()
