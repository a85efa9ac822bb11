"""Options are read-only after parsing (issue 24): a training run, and its resume, leave the
parsed options exactly as parsing returned them; the run's decisions (device, resumed seed,
speed choice) are carried beside them and still reach the training state."""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from basicsr_lite.options import parse_options
from basicsr_lite.train import train_run
from tests.conftest import write_yaml


def parse(tmp_path: Path, opt: dict, *extra: str) -> dict:
    parsed, _ = parse_options(['-opt', str(write_yaml(tmp_path / 'opt.yml', opt)), *extra],
                              is_train=True)
    return parsed


def run_unchanged(opt: dict) -> None:
    """Train ``opt``; the options must come back as parsed."""
    parsed = copy.deepcopy(opt)
    train_run(opt)
    assert opt == parsed


def test_a_run_and_its_resume_leave_the_parsed_options_unchanged(tiny_opt, tmp_path):
    tiny_opt['num_gpu'] = 'auto'  # resolved into the device, not written back
    tiny_opt['train'].update(total_iter=4, channels_last='auto', speed_policy='off')
    tiny_opt['logger'].update(print_freq=2, save_checkpoint_freq=2)
    tiny_opt['val']['val_freq'] = 2
    run_unchanged(parse(tmp_path, tiny_opt))

    # a resume with another manual_seed continues with the run's own seed
    tiny_opt['train']['total_iter'] = 6
    tiny_opt['manual_seed'] = 11
    opt = parse(tmp_path, tiny_opt, '--auto_resume')
    run_unchanged(opt)
    state = torch.load(Path(opt['path']['training_states']) / '6.state', weights_only=True)
    assert state['seed'] == 10
    assert state['speed']['asked'] == {'amp': None, 'channels_last': 'auto',
                                       'speed_policy': 'off'}
