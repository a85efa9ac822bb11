"""Issue 24's proof that the refactor changed nothing a run computes: the training states and
network files written by the code before it (``tests/fixtures/pre_renovation``, an SRModel and an
ESRGANModel run saved at iteration 4 of 8) resume with today's code to the very networks those
runs ended with."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from basicsr_lite.train import main as train_main
from tests.fixtures.pre_renovation.spec import RUNS, data_roots, make_data, run_options, write_vgg
from tests.runs import load

FIXTURE = Path(__file__).resolve().parent / 'fixtures' / 'pre_renovation'
MADE_ON = json.loads((FIXTURE / 'made_on.json').read_text())


@pytest.mark.parametrize('name', list(RUNS))
def test_pre_renovation_state_resumes_to_the_same_networks(tmp_path, monkeypatch, name):
    """Bitwise on the fixture's torch and CPU kernels (``made_on.json``), else to float
    tolerance: other instruction sets round differently."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    roots = data_roots(tmp_path)
    make_data(roots)
    write_vgg(tmp_path / 'torch_home')
    exp = tmp_path / 'experiments' / name
    for sub in ('training_states', 'models'):
        (exp / sub).mkdir(parents=True)
    shutil.copy(FIXTURE / name / 'training_states' / '4.state', exp / 'training_states')
    for label in RUNS[name]['labels']:
        shutil.copy(FIXTURE / name / 'models' / f'{label}_4.pth', exp / 'models')
    opt_path = tmp_path / f'{name}.yml'
    opt_path.write_text(yaml.safe_dump(run_options(name, roots, exp), sort_keys=False))

    assert train_main(['-opt', str(opt_path), '--auto_resume']) == 0

    # the same kernels (instruction set) give the same bits; another CPU only float tolerance
    same_kernels = (torch.__version__ == MADE_ON['torch'] and
                    torch.backends.cpu.get_cpu_capability() == MADE_ON['cpu_capability'])
    for label in RUNS[name]['labels']:
        expected = load(FIXTURE / name / 'models' / f'{label}_8.pth')
        got = load(exp / 'models' / f'{label}_8.pth')
        assert set(got) == set(expected)
        for key in expected:
            assert set(got[key]) == set(expected[key])
            for tensor_name, value in expected[key].items():
                if same_kernels:
                    assert torch.equal(got[key][tensor_name], value), f'{label}.{key}.{tensor_name}'
                else:
                    torch.testing.assert_close(got[key][tensor_name], value, rtol=1e-3, atol=1e-5)
    log = next(exp.glob('train_*.log')).read_text()
    assert 'Resumed from' in log and 'iter 4.' in log  # it did resume, not retrain from 0
    assert not re.search(r'iter:\s+2,', log) and re.search(r'iter:\s+6,', log)
