"""BasicSR's own option files (../shared/basicsr_options, unchanged copies) run here with only
the edits docs/how-to/migrate.md lists: data paths, sizes, iteration counts,
num_gpu on a CPU machine, and metrics / models that basicsr_lite does not have yet."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from basicsr_lite.options import validate_options
from basicsr_lite.prep.synthetic import make_paired_folder
from basicsr_lite.train import main as train_main
from tests.conftest import write_yaml
from tests.runs import run_to_end

FILES = Path(__file__).resolve().parents[2] / 'shared' / 'basicsr_options'
pytestmark = pytest.mark.skipif(not FILES.is_dir(), reason='../shared/basicsr_options is absent')

NIQE_PARAMS = FILES.parent / 'data' / 'niqe' / 'niqe_pris_params.npz'


@pytest.fixture(autouse=True)
def niqe_params(monkeypatch):
    """BasicSR's MSRResNet file validates with NIQE, whose pristine model is a file."""
    monkeypatch.setenv('BASICSR_LITE_NIQE_PARAMS', str(NIQE_PARAMS))


# Smaller networks of the same architecture (sizes only).
SMALL_NETWORKS = {
    'EDSR': {'num_feat': 8, 'num_block': 1},
    'MSRResNet': {'num_feat': 8, 'num_block': 1},
    'RRDBNet': {'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4},
    'SwinIR': {'depths': [1], 'embed_dim': 12, 'num_heads': [2]},
}
RUNNABLE = ['train_EDSR_Mx4.yml', 'train_MSRResNet_x4.yml', 'train_RRDBNet_PSNR_x4.yml',
            'train_SwinIR_SRx4_scratch.yml']


def load(name: str) -> dict:
    return yaml.safe_load((FILES / name).read_text())


def adapt(opt: dict, tmp_path: Path) -> dict:
    """The listed edits only: data paths, sizes, iteration counts, num_gpu, metrics we lack."""
    opt = copy.deepcopy(opt)
    # NIQE needs two 96 x 96 blocks after crop_border 4
    gt, lq = make_paired_folder(tmp_path / 'data', ['a', 'b', 'c'], (104, 200), 4, seed=3)
    for dataset in opt['datasets'].values():
        dataset.update(dataroot_gt=str(gt), dataroot_lq=str(lq), filename_tmpl='{}x4')
        dataset.pop('meta_info_file', None)
        if 'gt_size' in dataset:
            dataset.update(gt_size=32, batch_size_per_gpu=2, num_worker_per_gpu=1)
    opt['num_gpu'] = 0
    opt['network_g'].update(SMALL_NETWORKS[opt['network_g']['type']])
    opt['path'].update(pretrain_network_g=None, experiments_root=str(tmp_path / 'exp'))
    opt['train']['total_iter'] = 2
    opt['val']['val_freq'] = 2
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2)
    return opt


@pytest.mark.parametrize('name', RUNNABLE)
def test_basicsr_file_trains_with_listed_edits_only(tmp_path, name):
    opt = adapt(load(name), tmp_path)
    assert train_main(['-opt', str(write_yaml(tmp_path / name, opt))]) == 0
    assert (tmp_path / 'exp' / 'models' / 'net_g_2.pth').is_file()
    assert (tmp_path / 'exp' / 'training_states' / '2.state').is_file()


def problems(opt: dict) -> str:
    with pytest.raises(ValueError) as err:
        validate_options(opt, is_train=True, source='f.yml', check_paths=False)
    return str(err.value)


def test_models_we_lack_are_named_plainly():
    opt = load('train_realesrgan_x4plus.yml')
    opt['model_type'] = 'EDVRModel'
    message = problems(opt)
    assert "model_type: 'EDVRModel' is BasicSR's model; basicsr_lite does not have it yet." in \
        message
    assert 'Did you mean' not in message


@pytest.mark.parametrize('name', ['train_realesrnet_x4plus.yml', 'train_realesrgan_x4plus.yml'])
def test_basicsr_realesrgan_files_train_with_listed_edits(tmp_path, random_vgg, name):
    """Data path (no meta_info), sizes, iteration counts, num_gpu; VGG19 weights from the torch
    hub cache (random here)."""
    random_vgg('conv5_4')
    opt = load(name)
    gt, _ = make_paired_folder(tmp_path / 'data', ['a', 'b', 'c'], (64, 64), 4, seed=3)
    train = opt['datasets']['train']
    train.pop('meta_info')
    train.update(dataroot_gt=str(gt), gt_size=32, batch_size_per_gpu=2, num_worker_per_gpu=1)
    opt.update(gt_size=32, num_gpu=0)
    opt['network_g'].update(SMALL_NETWORKS['RRDBNet'])
    if 'network_d' in opt:
        opt['network_d']['num_feat'] = 4
    opt['path'].update(pretrain_network_g=None, experiments_root=str(tmp_path / 'exp'))
    opt['train']['total_iter'] = 2
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    assert train_main(['-opt', str(write_yaml(tmp_path / name, opt))]) == 0
    state = torch.load(tmp_path / 'exp' / 'training_states' / '2.state', weights_only=True)
    assert state['model_rank_states'][0]['pair_pool']['filled'] == 4


def test_gan_keys_in_an_srmodel_file_are_explained():
    opt = load('train_ESRGAN_x4.yml')
    opt['model_type'] = 'SRModel'
    message = problems(opt)
    assert 'network_d: used by the GAN models (model_type SRGANModel / ESRGANModel), not by ' \
           'this model_type' in message
    assert 'train.optim_d: used by' in message and 'train.gan_opt: used by' in message
    assert "did you mean 'network_g'" not in message


def test_missing_metric_is_named_plainly_with_every_other_problem(tmp_path):
    opt = load('train_MSRResNet_x4.yml')  # num_gpu: 1, DIV2K paths
    opt['val']['metrics']['niqe']['type'] = 'calculate_fid'
    with pytest.raises(ValueError) as err:
        validate_options(opt, is_train=True, source='f.yml', check_paths=True)
    message = str(err.value)
    assert "val.metrics.niqe.type: 'calculate_fid' is BasicSR's metric; basicsr_lite does not " \
           "have it yet." in message
    assert 'num_gpu: 1 but no CUDA device is available' in message
    assert 'datasets.train.dataroot_gt: folder datasets/DF2K/DIV2K_train_HR_sub does not ' \
           'exist.' in message


def test_swinir_model_type_is_srmodel():
    opt = validate_options(load('train_SwinIR_SRx4_scratch.yml'), is_train=True,
                           check_paths=False)
    assert opt['model_type'] == 'SwinIRModel'


@pytest.mark.slow
def test_nccl_backend_under_torchrun_on_cpu_uses_gloo(tmp_path):
    opt = adapt(load('train_MSRResNet_x4.yml'), tmp_path)
    assert opt['dist_params']['backend'] == 'nccl'
    output = run_to_end(write_yaml(tmp_path / 'msrresnet.yml', opt), nproc=2)
    assert 'dist_params.backend is nccl but CUDA is not available: using gloo.' in output
    assert (tmp_path / 'exp' / 'training_states' / '2.state').is_file()
