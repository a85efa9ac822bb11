import copy

import pytest

from basicsr_lite.errors import OptionError
from basicsr_lite.options import apply_overrides, load_option_file, parse_options, validate_options
from tests.conftest import write_yaml


def errors_of(opt, is_train=True) -> str:
    with pytest.raises(OptionError) as info:
        validate_options(opt, is_train, source='x.yml')
    return str(info.value)


def test_valid_options_get_defaults_and_are_not_mutated(tiny_opt):
    before = copy.deepcopy(tiny_opt)
    opt = validate_options(tiny_opt, True)
    assert tiny_opt == before
    assert opt['train']['warmup_iter'] == -1
    assert opt['datasets']['train']['persistent_workers'] is True
    assert opt['val']['metrics']['psnr']['better'] == 'higher'
    assert opt['logger']['wandb'] is None
    assert opt['path']['strict_load_g'] is True and opt['path']['param_key_g'] == 'params'


def test_unknown_top_level_key_suggests_closest(tiny_opt):
    tiny_opt['manual_sed'] = 1
    message = errors_of(tiny_opt)
    assert "manual_sed: unknown key; did you mean 'manual_seed'?" in message
    assert 'x.yml has 1 problem(s)' in message


def test_unknown_nested_key_names_full_path(tiny_opt):
    tiny_opt['train']['optim_g']['lrr'] = 1e-4
    tiny_opt['logger']['print_frq'] = 10
    message = errors_of(tiny_opt)
    assert "train.optim_g.lrr: unknown argument of optimizer Adam; did you mean 'lr'?" in message
    assert "logger.print_frq: unknown key; did you mean 'print_freq'?" in message
    assert '2 problem(s)' in message


def test_arch_kwargs_checked_against_signature(tiny_opt):
    tiny_opt['network_g']['num_feats'] = 16
    tiny_opt['network_g']['num_block'] = 'four'
    message = errors_of(tiny_opt)
    assert "network_g.num_feats: unknown argument of arch MSRResNet; did you mean 'num_feat'?" \
        in message
    assert "network_g.num_block: expected int (like the default 16), got str 'four'" in message


def test_misspelt_registry_type(tiny_opt):
    tiny_opt['network_g']['type'] = 'MSRResnet'
    tiny_opt['train']['pixel_opt']['type'] = 'L1loss'
    tiny_opt['train']['scheduler'] = {'type': 'MultiStepLr', 'milestones': [2]}
    message = errors_of(tiny_opt)
    assert "train.scheduler.type: No scheduler named 'MultiStepLr'; did you mean 'MultiStepLR'?" \
        in message
    assert "network_g.type: No arch named 'MSRResnet'. Did you mean 'MSRResNet'?" in message
    assert "train.pixel_opt.type: No loss named 'L1loss'. Did you mean 'L1Loss'?" in message


def test_missing_required_constructor_argument(tiny_opt):
    del tiny_opt['datasets']['train']['dataroot_lq']
    del tiny_opt['val']['metrics']['psnr']['crop_border']
    message = errors_of(tiny_opt)
    assert 'datasets.train.dataroot_lq: required argument of dataset PairedImageDataset' in message
    assert 'val.metrics.psnr.crop_border: required argument of metric calculate_psnr' in message


def test_wrong_types_and_impossible_values(tiny_opt):
    tiny_opt['logger']['print_freq'] = -5
    tiny_opt['train']['total_iter'] = 'many'
    tiny_opt['train']['ema_decay'] = 1.5
    tiny_opt['datasets']['train']['gt_size'] = 17
    tiny_opt['num_gpu'] = -1
    message = errors_of(tiny_opt)
    assert 'logger.print_freq: must be > 0; got -5.' in message
    assert "train.total_iter: expected int, got str 'many'." in message
    assert 'train.ema_decay: must be in [0, 1); got 1.5.' in message
    assert 'datasets.train.gt_size: 17 is not divisible by scale 2.' in message
    assert "num_gpu: must be 'auto' or an integer >= 0; got -1." in message


def test_missing_dataroot_folder(tiny_opt, tmp_path):
    tiny_opt['datasets']['val']['dataroot_gt'] = str(tmp_path / 'nope')
    assert f'datasets.val.dataroot_gt: folder {tmp_path / "nope"} does not exist.' in \
        errors_of(tiny_opt)


def test_required_keys(tiny_opt):
    del tiny_opt['name']
    del tiny_opt['datasets']['train']['batch_size_per_gpu']
    del tiny_opt['train']['total_iter']
    message = errors_of(tiny_opt)
    assert 'name: required key is missing.' in message
    assert 'datasets.train.batch_size_per_gpu: required for the train dataset.' in message
    assert 'train.total_iter: required key is missing.' in message


def test_dataset_keys_and_train_set(tiny_opt):
    tiny_opt['datasets']['training'] = tiny_opt['datasets'].pop('train')
    message = errors_of(tiny_opt)
    assert "datasets.training: invalid name; dataset keys are 'train', 'val'" in message


def test_no_loss_and_unsupported_options(tiny_opt):
    tiny_opt['train']['pixel_opt'] = None
    tiny_opt['train']['perceptual_opt'] = {'type': 'L1Loss'}
    tiny_opt['logger']['wandb'] = {'project': 'p', 'mode': 'offlin'}
    message = errors_of(tiny_opt)
    assert 'train.perceptual_opt: used by the GAN models (model_type SRGANModel' in message
    assert "did you mean 'pixel_opt'" not in message
    assert "logger.wandb.mode: 'offlin' is not one of [None, 'online', 'offline', 'disabled']; " \
           "did you mean 'offline'?" in message
    del tiny_opt['train']['perceptual_opt']
    tiny_opt['logger']['wandb'] = {'project': None}
    assert 'train: no loss configured' in errors_of(tiny_opt)


def test_unknown_model_type(tiny_opt):
    tiny_opt['model_type'] = 'SrModel'
    assert "model_type: No model named 'SrModel'. Did you mean 'SRModel'?" in errors_of(tiny_opt)


def test_integral_floats_accepted_for_ints(tiny_opt):
    tiny_opt['val']['val_freq'] = 5e3  # what `!!float 5e3` gives
    assert validate_options(tiny_opt, True)['val']['val_freq'] == 5000
    tiny_opt['val']['val_freq'] = 2.5
    assert 'val.val_freq: expected int, got float 2.5.' in errors_of(tiny_opt)


def test_test_mode_needs_weights(tiny_opt):
    tiny_opt['datasets'] = {'test_1': tiny_opt['datasets']['val']}
    del tiny_opt['train']
    assert 'path.pretrain_network_g: required for testing' in errors_of(tiny_opt, is_train=False)


def test_malformed_yaml_names_line(tmp_path):
    path = tmp_path / 'bad.yml'
    path.write_text('name: x\ntrain:\n  optim_g: {type: Adam\n  total_iter: 3\n')
    with pytest.raises(OptionError, match=r'bad.yml is not valid YAML at line \d+, column \d+'):
        load_option_file(path)
    path.write_text('- just\n- a list\n')
    with pytest.raises(OptionError, match='must contain a mapping'):
        load_option_file(path)
    with pytest.raises(OptionError, match='Cannot read option file'):
        load_option_file(tmp_path / 'missing.yml')


def test_toml_equals_yaml(tiny_opt, tmp_path):
    def toml_value(v):
        if isinstance(v, bool):
            return 'true' if v else 'false'
        if isinstance(v, str):
            return '"' + v.replace('\\', '\\\\') + '"'
        if isinstance(v, list):
            return '[' + ', '.join(toml_value(x) for x in v) + ']'
        return repr(v)

    def to_toml(d, prefix=''):
        scalars = [f'{k} = {toml_value(v)}' for k, v in d.items() if not isinstance(v, dict)]
        tables = [f'\n[{prefix}{k}]\n' + to_toml(v, f'{prefix}{k}.') for k, v in d.items()
                  if isinstance(v, dict)]
        return '\n'.join(scalars) + '\n' + ''.join(tables)

    toml_path = tmp_path / 'opt.toml'
    toml_path.write_text(to_toml(tiny_opt))
    assert load_option_file(toml_path) == tiny_opt
    yml_path = write_yaml(tmp_path / 'opt.yml', tiny_opt)
    assert load_option_file(yml_path) == tiny_opt


def test_force_yml_uses_safe_yaml(tiny_opt):
    out = apply_overrides(tiny_opt, ['train:ema_decay=0.5', 'datasets:train:gt_size=32',
                                     'val:metrics:psnr:test_y_channel=true',
                                     'path:resume_state=~', "name=__import__('os')"])
    assert out['train']['ema_decay'] == 0.5
    assert out['datasets']['train']['gt_size'] == 32
    assert out['val']['metrics']['psnr']['test_y_channel'] is True
    assert out['path']['resume_state'] is None
    assert out['name'] == "__import__('os')"  # a string, never evaluated
    assert tiny_opt['train']['ema_decay'] == 0.9
    with pytest.raises(OptionError, match='expected KEY:SUBKEY=VALUE'):
        apply_overrides(tiny_opt, ['train:ema_decay'])
    with pytest.raises(OptionError, match='name is not a mapping'):
        apply_overrides(tiny_opt, ['name:x=1'])


def test_parse_options_debug_and_paths(tiny_opt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    del tiny_opt['path']
    path = write_yaml(tmp_path / 'opt.yml', tiny_opt)
    opt, args = parse_options(['-opt', str(path), '--debug', '--force_yml', 'logger:print_freq=7',
                               '--local_rank', '0'], is_train=True)
    assert opt['name'] == 'debug_tiny'
    assert opt['logger']['print_freq'] == 1 and opt['val']['val_freq'] == 8
    assert opt['path']['experiments_root'] == str(tmp_path / 'experiments' / 'debug_tiny')
    assert opt['path']['models'].endswith('models')
    assert opt['is_train'] and not opt['dist'] and opt['rank'] == 0
    assert opt['manual_seed'] == 10


def test_bool_is_not_an_int(tiny_opt):
    tiny_opt['datasets']['train']['batch_size_per_gpu'] = True
    assert 'datasets.train.batch_size_per_gpu: expected int, got bool True.' in errors_of(tiny_opt)
