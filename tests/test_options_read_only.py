"""Options are read-only after parsing (issue 24): a training run, and its resume, leave the
parsed options exactly as parsing returned them; run-time decisions live elsewhere."""
from __future__ import annotations

import copy

from basicsr_lite.options import parse_options
from basicsr_lite.train import train_run
from tests.conftest import write_yaml


def parse(tmp_path, opt: dict, *extra: str) -> dict:
    parsed, _ = parse_options(['-opt', str(write_yaml(tmp_path / 'opt.yml', opt)), *extra],
                              is_train=True)
    return parsed


def test_a_run_and_its_resume_leave_the_parsed_options_unchanged(tiny_opt, tmp_path):
    tiny_opt['num_gpu'] = 'auto'  # resolved into the device, not written back
    tiny_opt['train']['total_iter'] = 4
    tiny_opt['logger'].update(print_freq=2, save_checkpoint_freq=2)
    tiny_opt['val']['val_freq'] = 2
    opt = parse(tmp_path, tiny_opt)
    parsed = copy.deepcopy(opt)
    train_run(opt)
    assert opt == parsed

    tiny_opt['train']['total_iter'] = 6
    opt = parse(tmp_path, tiny_opt, '--auto_resume')
    parsed = copy.deepcopy(opt)
    train_run(opt)
    assert opt == parsed
