"""Option files as users write them (issue 22): numbers in scientific notation, duplicate keys,
a checkpoint given as -opt, a model_type typo among other problems, unknown torch.compile
backends, BasicSR's old top-level keys, and a console that keeps to messages (the options dump
goes to the log file only)."""
from __future__ import annotations

import copy
import logging
from pathlib import Path

import pytest
import torch

from basicsr_lite.engine.logger import FILE_ONLY, attach_log_file, get_root_logger
from basicsr_lite.errors import OptionError
from basicsr_lite.options import apply_overrides, load_option_file, parse_options, validate_options
from basicsr_lite.options.legacy import move_legacy_keys
from basicsr_lite.options.yaml_loader import load_yaml
from basicsr_lite.registry import ARCH_REGISTRY
from basicsr_lite.runtime import speed
from basicsr_lite.test import main as evaluate_main
from basicsr_lite.train import main as train_main
from tests.conftest import write_yaml


def errors_of(opt: dict, is_train: bool = True) -> str:
    with pytest.raises(OptionError) as info:
        validate_options(opt, is_train, source='x.yml', check_paths=False)
    return str(info.value)


def files_below(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob('*')}


# ---- 1. numbers in scientific notation -------------------------------------------------------

def test_scientific_notation_is_a_float_and_other_scalars_keep_their_yaml_meaning():
    data = load_yaml("a: 1e-3\nb: 5e-5\nc: 1.0e3\nd: -2E+2\ne: .5e1\nf: 12\ng: 1.5\n"
                     "h: 1e3x\ni: '1e-3'\nj: [2e1, 3]\nk: e5\nl: 0x10\n")
    assert data == {'a': 0.001, 'b': 5e-05, 'c': 1000.0, 'd': -200.0, 'e': 5.0, 'f': 12,
                    'g': 1.5, 'h': '1e3x', 'i': '1e-3', 'j': [20.0, 3], 'k': 'e5', 'l': 16}
    assert type(data['c']) is float and type(data['f']) is int


def test_readme_branch_override_and_lr_without_float_tag(tiny_opt, tmp_path):
    """docs/reference/option-files.md: ``--force_yml train:optim_g:lr=5e-5``; a file's
    ``lr: 1e-3`` (no ``!!float``); ``total_iter: 1e1`` is an integer 10; the same override on a
    TOML file."""
    text = write_yaml(tmp_path / 'x.yml', tiny_opt).read_text()
    assert 'lr: 0.001' in text
    yml = tmp_path / 'sci.yml'
    yml.write_text(text.replace('lr: 0.001', 'lr: 1e-3').replace('total_iter: 6',
                                                                   'total_iter: 1e1'))
    opt, _ = parse_options(['-opt', str(yml)], is_train=True)
    assert opt['train']['optim_g']['lr'] == 0.001 and opt['train']['total_iter'] == 10
    assert type(opt['train']['total_iter']) is int
    opt, _ = parse_options(['-opt', str(yml), '--force_yml', 'train:optim_g:lr=5e-5'], True)
    assert opt['train']['optim_g']['lr'] == 5e-05
    toml = tmp_path / 'x.toml'
    toml.write_text('name = "t"\nscale = 2\n[train]\ntotal_iter = 3\n')
    raw = apply_overrides(load_option_file(toml), ['train:optim_g:lr=5e-5',
                                                   'train:ema_decay=9.99e-1'])
    assert raw['train'] == {'total_iter': 3, 'optim_g': {'lr': 5e-05}, 'ema_decay': 0.999}


# ---- 2. duplicate keys ------------------------------------------------------------------------

def test_duplicate_key_names_the_key_the_file_and_both_lines(tmp_path):
    path = tmp_path / 'dup.yml'
    path.write_text('name: x\ntrain:\n  total_iter: 5\n  ema_decay: 0.9\n  total_iter: 8\n')
    with pytest.raises(OptionError) as info:
        load_option_file(path)
    assert str(info.value) == (f"Option file {path}: key 'total_iter' is given twice, at lines 3 "
                               f"and 5 (YAML would keep only the last); remove one.")
    # the same key in two different sections, and a key overriding a << merge, are fine
    path.write_text('base: &b {lr: 1, beta: 2}\nx: {total_iter: 1}\ny: {total_iter: 2}\n'
                    'z:\n  <<: *b\n  lr: 3\n')
    assert load_option_file(path)['z'] == {'lr': 3, 'beta': 2}


# ---- 3. a checkpoint (or any binary file) as -opt --------------------------------------------

@pytest.mark.parametrize('kind,hint', [('.pth', True), ('.zip', False), ('latin-1.yml', False)])
def test_binary_option_file_is_one_error_and_nothing_on_disk(tmp_path, capsys, monkeypatch,
                                                             kind, hint):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / f'net_g{kind}'
    if kind == '.pth':
        torch.save({'params': {'w': torch.zeros(2)}}, path)
    elif kind == '.zip':  # valid UTF-8 (ASCII), but NUL bytes
        path.write_bytes(b'PK\x03\x04\x14\x00\x00\x00\x08\x00archive/data.pkl')
    else:  # no NUL byte, but not UTF-8
        path.write_bytes('name: café\n'.encode('latin-1'))
    before = files_below(tmp_path)
    assert train_main(['-opt', str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'Error: Option file {path} is not a UTF-8 text file: -opt expects a '
                          f'YAML (.yml) or TOML (.toml) option file.')
    assert ('goes inside the option file, as path.pretrain_network_g' in err) is hint
    assert err.count('\n') == 1 and files_below(tmp_path) == before


# ---- 4. a model_type typo does not hide the other problems -----------------------------------

def test_model_type_typo_is_listed_with_the_other_problems(tiny_opt):
    tiny_opt['model_type'] = 'SRModle'
    tiny_opt['manual_sed'] = 1
    tiny_opt['network_g']['num_feats'] = 8
    message = errors_of(tiny_opt)
    lines = message.splitlines()
    assert lines[0] == 'x.yml has 3 problem(s):'
    assert lines[1].startswith("  - model_type: No model named 'SRModle'. Did you mean 'SRModel'?")
    assert lines[1].endswith('(the other keys were checked as for SRModel.)')
    assert any(line.startswith("  - manual_sed: unknown key; did you mean 'manual_seed'? "
                               "(valid keys here: ") for line in lines)
    assert any(line.startswith("  - network_g.num_feats: unknown argument of arch MSRResNet; "
                               "did you mean 'num_feat'?") for line in lines)


def test_basicsr_model_we_lack_is_reported_alone(tiny_opt):
    tiny_opt['model_type'] = 'VideoBaseModel'
    tiny_opt['manual_sed'] = 1  # would be judged against a model it is not for
    message = errors_of(tiny_opt)
    assert message.startswith('x.yml has 1 problem(s):\n  - model_type: '
                              "'VideoBaseModel' is BasicSR's model; basicsr_lite does not have "
                              'it yet.')


# ---- 5. an unknown torch.compile backend is an option error ----------------------------------

def test_unknown_compile_backend_lists_torchs_backends(monkeypatch):
    listed = {(): ['aot_eager', 'eager', 'inductor', 'tvm', 'relu_compile_error_TESTING_ONLY'],
              ('debug', 'experimental'): ['inductor', 'tvm']}
    monkeypatch.setattr(torch.compiler, 'list_backends',
                        lambda exclude_tags=('debug', 'experimental'): listed[tuple(exclude_tags)])
    assert speed.compile_problems({'backend': 'indcutor', 'mode': None}) == (
        f"backend: 'indcutor' is not a torch.compile backend; did you mean 'inductor'? torch "
        f"{torch.__version__} has: inductor, tvm (for debugging also eager, aot_eager).")
    assert speed.compile_problems({'backend': 'xyz'}).startswith(
        "backend: 'xyz' is not a torch.compile backend. torch ")
    for known in ('tvm', 'eager', 'aot_eager'):  # whether it works here is tried at start-up
        assert speed.compile_problems({'backend': known}) is None
    assert speed.compile_problems(True) is None and speed.compile_problems({'mode': None}) is None


@pytest.mark.slow  # torch.list_backends imports torch._dynamo (~6 s)
def test_unknown_compile_backend_is_an_option_error_before_anything_on_disk(tiny_opt, tmp_path,
                                                                            capsys):
    tiny_opt['train']['compile'] = {'backend': 'indcutor'}
    assert train_main(['-opt', str(write_yaml(tmp_path / 'c.yml', tiny_opt))]) == 2
    err = capsys.readouterr().err
    assert ("  - train.compile: backend: 'indcutor' is not a torch.compile backend; did you mean "
            "'inductor'? torch ") in err
    listed = err.split(' has: ', 1)[1]
    assert 'inductor' in listed and 'eager' in listed and 'Traceback' not in err
    assert not (tmp_path / 'experiments').exists()
    tiny_opt['train']['compile'] = {'backend': 'tvm'}  # known; whether it works here is tried later
    assert validate_options(tiny_opt, True, check_paths=False)['train']['compile'] == \
        {'backend': 'tvm'}


# ---- 6. the console keeps to messages; the options dump goes to the log file -----------------

def test_file_only_records_reach_the_log_file_not_the_console(tmp_path, capsys):
    get_root_logger()
    log = logging.getLogger('basicsr_lite')
    log.info('dump', extra=FILE_ONLY)
    log.info('message')
    attach_log_file(tmp_path / 'run.log')  # the records kept before the folder existed
    log.info('later dump', extra=FILE_ONLY)
    logging.shutdown()
    err = capsys.readouterr().err
    assert 'message' in err and 'dump' not in err
    lines = [line.split(' INFO: ')[1] for line in (tmp_path / 'run.log').read_text().splitlines()]
    assert lines == ['dump', 'message', 'later dump']


def test_train_py_error_is_not_buried_under_the_options(tiny_opt, tmp_path, capsys):
    """An error found after the options were logged (unreadable weights, when the model is
    built): the console has a few lines and the error; the dump waits for the log file only."""
    (tmp_path / 'w.pth').write_bytes(b'\x80\x02not a checkpoint' * 10)
    tiny_opt['path']['pretrain_network_g'] = str(tmp_path / 'w.pth')
    folder = Path(tiny_opt['path']['experiments_root'])
    assert train_main(['-opt', str(write_yaml(tmp_path / 'o.yml', tiny_opt))]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert 'INFO: basicsr_lite, torch ' in lines[0] and len(lines) <= 6, lines
    assert lines[-1].startswith('Error: ') and 'w.pth is not a readable checkpoint' in lines[-1]
    assert not any('Options:' in line or 'manual_seed' in line for line in lines)
    pending = [h for h in logging.getLogger('basicsr_lite').handlers if hasattr(h, 'buffer')]
    kept = [r.getMessage() for r in pending[0].buffer]  # what the log file would begin with
    assert kept[1].startswith('Options:\n  name: tiny\n  model_type: SRModel\n')
    assert '  manual_seed: 10\n' in kept[1] and not folder.exists()


@pytest.mark.slow  # the first optimizer of a process imports torch._dynamo (~8 s)
def test_train_py_log_file_has_the_options(tiny_opt, capsys):
    tiny_opt['train']['total_iter'] = 1
    tiny_opt['val'] = None
    del tiny_opt['datasets']['val']
    folder = Path(tiny_opt['path']['experiments_root'])
    assert train_main(['-opt', str(write_yaml(folder.parent.parent / 'o.yml', tiny_opt))]) == 0
    err = capsys.readouterr().err
    assert 'INFO: basicsr_lite, torch ' in err and 'Start training from epoch' in err
    assert 'Options:' not in err and 'manual_seed: 10' not in err
    log = next(folder.glob('train_*.log')).read_text()
    assert 'Options:\n  name: tiny\n  model_type: SRModel\n' in log and '  manual_seed: 10\n' in log


def tiny_weights(tmp_path: Path, net_opt: dict) -> str:
    net = ARCH_REGISTRY.get(net_opt['type'])(**{k: v for k, v in net_opt.items() if k != 'type'})
    torch.save({'params': net.state_dict()}, tmp_path / 'w.pth')
    return str(tmp_path / 'w.pth')


RCAN_HEAD = """name: RCAN_BIX2-official
suffix: x2  # add suffix to saved images
model_type: SRModel
scale: 2
crop_border: ~  # crop border when evaluation. If None, crop the scale pixels
num_gpu: 0
manual_seed: 0
save_img: true
"""


def test_basicsr_test_file_keys_move_and_test_py_says_what_it_wrote(tiny_opt, tmp_path, capsys):
    """BasicSR's test_RCAN.yml layout: top-level suffix / crop_border / save_img, no val
    section. The console has the deprecations and the results, not the options dump."""
    tiny_opt['network_g'] = {'type': 'RCAN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 4,
                             'num_group': 1, 'num_block': 1, 'squeeze_factor': 4, 'upscale': 2}
    body = {'datasets': {'test_1': tiny_opt['datasets']['val']},
            'network_g': tiny_opt['network_g'],
            'path': {'pretrain_network_g': tiny_weights(tmp_path, tiny_opt['network_g']),
                     'results_root': str(tmp_path / 'results')}}
    path = tmp_path / 'test_RCAN.yml'
    path.write_text(RCAN_HEAD + write_yaml(tmp_path / 'body.yml', body).read_text())
    assert evaluate_main(['-opt', str(path)]) == 0
    err = capsys.readouterr().err
    assert (f'{path}: top-level suffix is deprecated: it belongs in val.suffix (applied: '
            f"val.suffix = 'x2'); write it there.") in err
    assert f'{path}: top-level save_img is deprecated: it belongs in val.save_img' in err
    assert (f'{path}: top-level crop_border is deprecated: each metric has its own '
            f'(val.metrics.<name>.crop_border); no metric here lacks one, so it is unused.') in err
    visualization = tmp_path / 'results' / 'visualization'
    assert sorted(p.name for p in visualization.rglob('*.png')) == ['a_x2.png', 'b_x2.png']
    assert f'INFO: SR images: 2 in {visualization}\n' in err
    assert 'manual_seed: 0' not in err and 'network_g:' not in err
    log = next((tmp_path / 'results').glob('test_*.log')).read_text()
    assert 'Options:\n' in log and '  manual_seed: 0\n' in log and 'SR images: 2' in log


def test_test_py_without_val_section_says_images_are_saved_by_default(tiny_opt, tmp_path,
                                                                      capsys):
    body = {'name': 'plain', 'scale': 2, 'num_gpu': 0,
            'datasets': {'test_1': tiny_opt['datasets']['val']},
            'network_g': tiny_opt['network_g'],
            'path': {'pretrain_network_g': tiny_weights(tmp_path, tiny_opt['network_g']),
                     'results_root': str(tmp_path / 'results')}}
    assert evaluate_main(['-opt', str(write_yaml(tmp_path / 't.yml', body))]) == 0
    err = capsys.readouterr().err
    visualization = tmp_path / 'results' / 'visualization'
    assert len(list(visualization.rglob('*.png'))) == 2
    assert (f'SR images: 2 in {visualization} (without a val section images are saved; '
            f'val.save_img: false turns that off)') in err
    body['val'] = {'save_img': False}
    assert evaluate_main(['-opt', str(write_yaml(tmp_path / 't.yml', body))]) == 0
    assert 'SR images' not in capsys.readouterr().err


def test_legacy_keys_move_to_their_new_places():
    raw = {'name': 'x', 'scale': 4, 'suffix': None, 'crop_border': None, 'save_img': False,
           'val': {'save_img': True, 'metrics': {
               'psnr': {'type': 'calculate_psnr'},
               'ssim': {'type': 'calculate_ssim', 'crop_border': 2},
               'odd': {'type': 'no_such_metric'}}}}
    before = copy.deepcopy(raw)
    moved, notes = move_legacy_keys(raw, is_train=False)
    assert raw == before  # the input is not changed
    assert moved == {'name': 'x', 'scale': 4, 'val': {'save_img': True, 'suffix': None, 'metrics': {
        'psnr': {'type': 'calculate_psnr', 'crop_border': 4},
        'ssim': {'type': 'calculate_ssim', 'crop_border': 2},
        'odd': {'type': 'no_such_metric'}}}}
    assert notes == [
        'top-level suffix is deprecated: it belongs in val.suffix (applied: val.suffix = None); '
        'write it there.',
        'top-level save_img is deprecated: it belongs in val.save_img, whose value True is used '
        '(not False).',
        'top-level crop_border is deprecated: each metric has its own '
        '(val.metrics.<name>.crop_border) (applied: crop_border 4 for psnr); write it there.']
    # a training file without validation gets no val section from them
    moved, notes = move_legacy_keys({'name': 'x', 'save_img': True, 'crop_border': 3}, True)
    assert moved == {'name': 'x'}
    assert notes[0] == ('top-level save_img is deprecated: it belongs in val.save_img; without a '
                        'val section it is unused.')
    assert notes[1].endswith('; no metric here lacks one, so it is unused.')
