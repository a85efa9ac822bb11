"""Tiny end-to-end runs of train.py / test.py on generated images."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from basicsr_lite.test import main as evaluate_main
from basicsr_lite.train import main as train_main
from tests.conftest import write_yaml

ROOT = Path(__file__).resolve().parent.parent


def run_train(tmp_path, opt, *extra) -> int:
    return train_main(['-opt', str(write_yaml(tmp_path / 'opt.yml', opt)), *extra])


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def test_train_validate_save(tiny_opt, tmp_path, capsys):
    tiny_opt['logger']['use_tb_logger'] = True
    assert run_train(tmp_path, tiny_opt) == 0
    exp = Path(tiny_opt['path']['experiments_root'])
    for it in (3, 6):
        net = load(exp / 'models' / f'net_g_{it}.pth')
        assert set(net) == {'params', 'params_ema'}
        assert 'conv_first.weight' in net['params']
        state = load(exp / 'training_states' / f'{it}.state')
        assert state['iter'] == it and len(state['optimizers']) == 1
        assert 'tiny_val' in state['best_metric_results'] or it == 3
    assert set(load(exp / 'models' / 'net_g_latest.pth')) == {'params', 'params_ema'}
    assert (exp / 'opt.yml').read_text().startswith('# command:')
    log = next(exp.glob('train_tiny_*.log')).read_text()
    assert 'iter:       6' in log and 'l_pix:' in log and 'eta:' in log
    assert 'Validation tiny_val (2 images)' in log
    assert 'Final validation on tiny_val' in log and 'bicubic' in log
    assert sorted(p.name for p in (exp / 'visualization' / 'tiny_val').iterdir()) == \
        ['a_3.png', 'a_6.png', 'b_3.png', 'b_6.png']
    assert list((exp / 'tb_logger').glob('events.out.tfevents.*'))


def test_existing_experiment_is_archived_not_lost(tiny_opt, tmp_path):
    tiny_opt['train']['total_iter'] = 3
    assert run_train(tmp_path, tiny_opt) == 0
    assert run_train(tmp_path, tiny_opt) == 0
    exp = Path(tiny_opt['path']['experiments_root'])
    archived = list(exp.parent.glob('tiny_archived_*'))
    assert len(archived) == 1 and (archived[0] / 'models' / 'net_g_3.pth').is_file()


def test_auto_resume_continues_from_newest_state(tiny_opt, tmp_path):
    tiny_opt['train']['total_iter'] = 3
    assert run_train(tmp_path, tiny_opt) == 0
    tiny_opt['train']['total_iter'] = 6
    assert run_train(tmp_path, tiny_opt, '--auto_resume') == 0
    exp = Path(tiny_opt['path']['experiments_root'])
    assert not list(exp.parent.glob('tiny_archived_*'))
    logs = ''.join(p.read_text() for p in exp.glob('train_tiny_*.log'))
    assert 'Resumed from' in logs and 'Start training from epoch 0, iter 3.' in logs
    assert 'iter:       4' in logs
    assert load(exp / 'training_states' / '6.state')['iter'] == 6
    assert list(exp.glob('opt_resume_*.yml'))


def test_test_py_writes_images_and_metrics(tiny_opt, tmp_path, monkeypatch):
    tiny_opt['train']['total_iter'] = 3
    assert run_train(tmp_path, tiny_opt) == 0
    weights = Path(tiny_opt['path']['experiments_root']) / 'models' / 'net_g_latest.pth'
    test_opt = {k: v for k, v in tiny_opt.items() if k not in ('train', 'logger')}
    test_opt['datasets'] = {'test_1': tiny_opt['datasets']['val']}
    test_opt['path'] = {'pretrain_network_g': str(weights), 'param_key_g': 'params_ema',
                        'results_root': str(tmp_path / 'results')}
    assert evaluate_main(['-opt', str(write_yaml(tmp_path / 'test.yml', test_opt))]) == 0
    results = tmp_path / 'results'
    rows = (results / 'metrics.csv').read_text().splitlines()
    assert rows[0] == 'dataset,image,psnr,ssim'
    assert [r.split(',')[1] for r in rows[1:]] == ['a', 'b', 'mean']
    assert sorted(p.name for p in (results / 'visualization' / 'tiny_val').iterdir()) == \
        ['a_tiny.png', 'b_tiny.png']


def test_user_errors_exit_2_without_traceback(tiny_opt, tmp_path):
    tiny_opt['train']['optim_g']['lrr'] = 1
    opt_path = write_yaml(tmp_path / 'bad.yml', tiny_opt)
    exp = Path(tiny_opt['path']['experiments_root'])
    exp.mkdir(parents=True)
    (exp / 'keep.txt').write_text('precious')
    proc = subprocess.run([sys.executable, str(ROOT / 'train.py'), '-opt', str(opt_path)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "train.optim_g.lrr: unknown argument of optimizer Adam; did you mean 'lr'?" in \
        proc.stderr
    assert 'Traceback' not in proc.stderr
    assert (exp / 'keep.txt').read_text() == 'precious' and len(list(exp.parent.iterdir())) == 1


def test_missing_weights_for_resume_are_reported(tiny_opt, tmp_path, capsys):
    tiny_opt['train']['total_iter'] = 3
    assert run_train(tmp_path, tiny_opt) == 0
    exp = Path(tiny_opt['path']['experiments_root'])
    (exp / 'models' / 'net_g_3.pth').unlink()
    tiny_opt['path']['resume_state'] = str(exp / 'training_states' / '3.state')
    assert run_train(tmp_path, tiny_opt) == 2
    assert 'network file for the training state' in capsys.readouterr().err


def test_shipped_demo_config_runs(tmp_path, monkeypatch):
    """options/train/demo.yml on datasets/demo, shortened to 4 iterations."""
    monkeypatch.chdir(ROOT)
    exp = tmp_path / 'demo'
    code = train_main(['-opt', 'options/train/demo.yml', '--force_yml', 'train:total_iter=4',
                       'train:warmup_iter=-1', 'train:scheduler:periods=[4]',
                       'logger:print_freq=2', 'logger:save_checkpoint_freq=4',
                       'logger:use_tb_logger=false', f'path:experiments_root={exp}'])
    assert code == 0
    assert (exp / 'models' / 'net_g_4.pth').is_file()
    assert (exp / 'training_states' / '4.state').is_file()
    log = next(exp.glob('train_*.log')).read_text()
    assert 'Final validation on demo_val (2 images)' in log and 'bicubic' in log


def test_cuda_prefetch_on_a_cpu_run_warns(tiny_opt, tmp_path):
    tiny_opt['datasets']['train']['prefetch_mode'] = 'cuda'
    tiny_opt['train']['total_iter'] = 2
    assert run_train(tmp_path, tiny_opt) == 0
    log = next(Path(tiny_opt['path']['experiments_root']).glob('train_*.log')).read_text()
    assert 'prefetch_mode: cuda needs a CUDA device; this run is on cpu' in log


def test_scale_1_restoration_compares_with_the_input(tiny_opt, tmp_path):
    """Denoising at scale 1 (DegradationDataset + SwinIR upsampler ''): the final table's
    baseline column is the noisy input itself, named 'input', with its own PSNR."""
    import copy

    import numpy as np

    from basicsr_lite.data.degrade.degradations import degrade
    from basicsr_lite.metrics import calculate_psnr
    opt = copy.deepcopy(tiny_opt)
    noise = {'type': 'DegradationDataset', 'noise_prob': 1.0, 'noise_sigma': [20, 20]}
    opt['scale'] = 1
    opt['datasets']['train'] = {'name': 'noisy_train', **noise, 'gt_size': 16,
                                'dataroot_gt': tiny_opt['datasets']['train']['dataroot_gt'],
                                'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2}
    opt['datasets']['val'] = {'name': 'noisy_val', **noise,
                              'dataroot_gt': tiny_opt['datasets']['val']['dataroot_gt']}
    opt['network_g'] = {'type': 'SwinIR', 'upscale': 1, 'img_size': 16, 'window_size': 4,
                        'depths': [1], 'embed_dim': 8, 'num_heads': [2], 'mlp_ratio': 1,
                        'upsampler': ''}
    opt['val']['metrics'] = {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}
    assert train_main(['-opt', str(write_yaml(tmp_path / 'o.yml', opt))]) == 0
    log = next(Path(opt['path']['experiments_root']).glob('train_*.log')).read_text()
    table = log.split('Final validation on noisy_val (2 images):\n')[1].splitlines()
    assert table[0].split() == ['model', 'input']
    # the input column: PSNR of each val image's fixed noisy version (seeded by its index)
    import cv2
    paths = sorted(Path(opt['datasets']['val']['dataroot_gt']).iterdir())
    expected = np.mean([calculate_psnr(
        degrade(cv2.imread(str(p)), 1, np.random.default_rng(i), noise_prob=1.0,
                noise_sigma=(20, 20)), cv2.imread(str(p)), 0) for i, p in enumerate(paths)])
    assert float(table[1].split()[2]) == pytest.approx(expected, abs=1e-4)
