"""Faults and bad input: each gives a clear message, a non-zero exit, and loses nothing."""
from __future__ import annotations

import copy
import errno
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from basicsr_lite.registry import LOSS_REGISTRY
from basicsr_lite.runtime.weights import save_torch
from basicsr_lite.train import main as train_main
from tests.conftest import write_yaml


class _NonFiniteAt(nn.Module):
    """L1 loss that goes bad at one call: 'loss' -> NaN value, 'grad' -> finite value, NaN grad."""

    calls = 0

    def __init__(self, at: int = 5, kind: str = 'loss') -> None:
        super().__init__()
        self.at, self.kind = at, kind

    def forward(self, pred, target):
        type(self).calls += 1
        loss = (pred - target).abs().mean()
        if type(self).calls == self.at:
            if self.kind == 'loss':
                return loss * float('nan')
            return loss + torch.sqrt((pred - pred).sum())  # value +0, gradient inf * 0 = NaN
        return loss


if 'NonFiniteAtLoss' not in LOSS_REGISTRY:
    LOSS_REGISTRY.register(_NonFiniteAt, name='NonFiniteAtLoss')


def run(tmp_path, opt, *extra) -> int:
    return train_main(['-opt', str(write_yaml(tmp_path / 'opt.yml', opt)), *extra])


def exp_dir(opt) -> Path:
    return Path(opt['path']['experiments_root'])


@pytest.mark.parametrize('kind,what', [('loss', 'Non-finite loss (l_pix = nan) at iteration 5'),
                                       ('grad', 'Non-finite gradient (the losses are finite) at '
                                                'iteration 5')])
def test_non_finite_step_stops_with_clear_message(tiny_opt, tmp_path, capsys, kind, what):
    _NonFiniteAt.calls = 0
    tiny_opt['train']['pixel_opt'] = {'type': 'NonFiniteAtLoss', 'at': 5, 'kind': kind}
    assert run(tmp_path, tiny_opt) == 2
    err = capsys.readouterr().err
    assert what in err and 'Training stopped before updating any weight' in err
    assert f"Last good checkpoint: {exp_dir(tiny_opt) / 'training_states' / '3.state'}" in err
    assert 'Traceback' not in err
    models = exp_dir(tiny_opt) / 'models'
    assert sorted(p.name for p in models.iterdir()) == ['net_g_3.pth']  # no NaN weights saved


def test_nan_policy_skip_counts_and_continues(tiny_opt, tmp_path):
    _NonFiniteAt.calls = 0
    tiny_opt['train']['pixel_opt'] = {'type': 'NonFiniteAtLoss', 'at': 5}
    tiny_opt['train']['nan_policy'] = 'skip'
    assert run(tmp_path, tiny_opt) == 0
    exp = exp_dir(tiny_opt)
    log = next(exp.glob('train_*.log')).read_text()
    assert 'Iteration 5: non-finite loss (l_pix = nan); step skipped' in log
    state = torch.load(exp / 'training_states' / '6.state', weights_only=True)
    assert state['skipped_steps'] == 1
    weights = torch.load(exp / 'models' / 'net_g_latest.pth', weights_only=True)
    assert all(torch.isfinite(v).all() for v in weights['params'].values())


def test_keep_last_checkpoints(tiny_opt, tmp_path, monkeypatch):
    """Old checkpoints are deleted only once the new one is completely written (both files
    loadable), and only the newest ``keep_last_checkpoints`` stay."""
    from basicsr_lite.engine.checkpoint import state as resume  # (where save_checkpoint prunes)
    from basicsr_lite.runtime.weights import load_torch
    exp = exp_dir(tiny_opt)
    seen = []

    def checked_prune(states, models, keep, *args):
        newest = max(int(p.stem) for p in Path(states).glob('*.state'))
        state = load_torch(Path(states) / f'{newest}.state')  # complete, or this raises
        net = load_torch(Path(models) / f'net_g_{newest}.pth')
        seen.append((newest, state['iter'], sorted(net)))
        return real_prune(states, models, keep, *args)

    real_prune = resume.prune_checkpoints
    monkeypatch.setattr(resume, 'prune_checkpoints', checked_prune)
    tiny_opt['train']['total_iter'] = 12
    tiny_opt['logger'].update(save_checkpoint_freq=3, keep_last_checkpoints=2)
    assert run(tmp_path, tiny_opt) == 0
    assert seen == [(it, it, ['params', 'params_ema']) for it in (3, 6, 9, 12)]
    assert sorted(p.name for p in (exp / 'training_states').iterdir()) == ['12.state', '9.state']
    assert sorted(p.name for p in (exp / 'models').iterdir()) == \
        ['net_g_12.pth', 'net_g_9.pth', 'net_g_latest.pth']


@pytest.mark.parametrize('workers', [0, 2])
def test_corrupt_training_image_is_named(tiny_opt, tiny_data, tmp_path, capsys, workers):
    bad = Path(tiny_data['train_gt']) / 'img2.png'
    bad.write_bytes(bad.read_bytes()[:60])  # truncated PNG
    tiny_opt['datasets']['train']['num_worker_per_gpu'] = workers
    assert run(tmp_path, tiny_opt) == 2
    err = capsys.readouterr().err
    assert f'Error: Cannot decode image {bad}: the file is empty, truncated or not an image.' in err
    assert 'Traceback' not in err


def expected_visits(tiny_opt: dict, image_index: int) -> int:
    """How often the training run of ``tiny_opt`` draws ``image_index`` (from the sampler)."""
    from basicsr_lite.data.loading.sampler import EnlargedSampler
    train = tiny_opt['datasets']['train']
    sampler = EnlargedSampler(4, ratio=train['dataset_enlarge_ratio'],
                              seed=tiny_opt['manual_seed'], with_sample_seeds=True)
    drawn, epoch = [], 0
    needed = tiny_opt['train']['total_iter'] * train['batch_size_per_gpu']
    while len(drawn) < needed:
        sampler.set_epoch(epoch)
        drawn += [index for index, _ in sampler][:len(sampler) // 2 * 2]  # whole batches
        epoch += 1
    return sum(index % 4 == image_index for index in drawn[:needed])


def test_skip_corrupt_skips_and_counts(tiny_opt, tiny_data, tmp_path):
    (Path(tiny_data['train_gt']) / 'img2.png').write_bytes(b'')
    (Path(tiny_data['val_lq']) / 'bx2.png').write_bytes(b'junk')
    tiny_opt['datasets']['train']['skip_corrupt'] = True
    tiny_opt['datasets']['val']['skip_corrupt'] = True
    assert run(tmp_path, tiny_opt) == 0
    log = next(exp_dir(tiny_opt).glob('train_*.log')).read_text()
    visits = expected_visits(tiny_opt, 2)
    assert visits > 0
    assert f'{visits} corrupt training image(s) were skipped.' in log
    assert 'tiny_val: 1 corrupt image(s) skipped.' in log
    assert 'Validation tiny_val (1 images)' in log


def test_skip_corrupt_uses_the_next_image(tiny_opt, tiny_data):
    from basicsr_lite.data import build_dataset
    from basicsr_lite.data.loading.sample_wrappers import SeededSamples
    (Path(tiny_data['train_gt']) / 'img2.png').write_bytes(b'')
    dataset_opt = {k: v for k, v in tiny_opt['datasets']['train'].items()
                   if k not in ('num_worker_per_gpu', 'batch_size_per_gpu',
                                'dataset_enlarge_ratio')}
    samples = SeededSamples(build_dataset(dataset_opt, 'train', 2), skip_corrupt=True)
    sample = samples[(2, 123)]
    assert sample['corrupt_skipped'] == 1
    assert Path(sample['gt_path']).name == 'img3.png'
    # img3 with the seed the next position would have: the same crop as a direct draw of it.
    direct = SeededSamples(build_dataset(dataset_opt, 'train', 2), skip_corrupt=True)[(3, 124)]
    assert torch.equal(sample['gt'], direct['gt'])
    assert samples[(1, 5)]['corrupt_skipped'] == 0


@pytest.mark.parametrize('impl', ['fused', 'for_loop'])
def test_non_finite_stop_leaves_weights_and_optimizer_untouched(tiny_opt, impl):
    """for_loop: the step is refused on the host at once. fused: dropped on the device, with
    every later step until the loop settles (no host sync per step); the same guarantees."""
    from basicsr_lite.errors import TrainingError
    from basicsr_lite.models import build_model
    from basicsr_lite.options import validate_options
    _NonFiniteAt.calls = 0
    tiny_opt['train']['pixel_opt'] = {'type': 'NonFiniteAtLoss', 'at': 3, 'kind': 'grad'}
    tiny_opt['train']['optimizer_impl'] = impl
    opt = validate_options(tiny_opt, True)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    opt['path'].update(training_states='/nonexistent')
    torch.manual_seed(0)
    model = build_model(opt, torch.device('cpu'))
    assert model.steppers['g'].on_device == (impl == 'fused')
    batch = {'lq': torch.rand(2, 3, 8, 8), 'gt': torch.rand(2, 3, 16, 16)}
    for it in (1, 2):
        model.feed_data(batch)
        model.optimize_parameters(it)
    model.settle_steps()  # nothing to report
    params = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    ema = {k: v.clone() for k, v in model.ema.module.state_dict().items()}
    adam = copy.deepcopy(model.optimizer_g.state_dict())
    with pytest.raises(TrainingError, match='Non-finite gradient .* at iteration 3'):
        for it in (3, 4):
            model.feed_data(batch)
            model.optimize_parameters(it)
        model.settle_steps()
    assert all(torch.equal(v, params[k]) for k, v in model.net_g.state_dict().items())
    assert all(torch.equal(v, ema[k]) for k, v in model.ema.module.state_dict().items())
    after = model.optimizer_g.state_dict()
    assert all(torch.equal(after['state'][i][key], adam['state'][i][key])
               for i in adam['state'] for key in adam['state'][i])


def test_pretrain_with_mismatching_keys(tiny_opt, tmp_path, capsys):
    weights = tmp_path / 'other.pth'
    save_torch({'params': {'conv_first.weight': torch.zeros(4, 3, 3, 3), 'bogus': torch.zeros(1)}},
               weights)
    tiny_opt['path']['pretrain_network_g'] = str(weights)
    assert run(tmp_path, tiny_opt) == 2
    err = capsys.readouterr().err
    assert 'missing keys (' in err and 'unexpected keys (1): bogus' in err
    assert 'conv_first.weight: checkpoint (4, 3, 3, 3) vs network (8, 3, 3, 3)' in err


def test_unwritable_experiments_folder(tiny_opt, tmp_path, capsys):
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    tiny_opt['path']['experiments_root'] = str(blocker / 'exp')
    assert run(tmp_path, tiny_opt) == 2
    assert f'Cannot create the output folder {blocker / "exp"}' in capsys.readouterr().err
    assert blocker.read_text() == 'not a folder'


def test_disk_full_during_save_keeps_previous_checkpoint(tiny_opt, tmp_path, capsys, monkeypatch):
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        name = Path(getattr(f, 'name', '')).name  # temp files: .net_g_6.pth.tmp<pid>, .6.state...
        if name.startswith(('.net_g_6.', '.6.state')):
            f.write(b'partial')
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, 'save', failing_save)
    tiny_opt['train']['total_iter'] = 9
    assert run(tmp_path, tiny_opt) == 2
    err = capsys.readouterr().err
    assert 'Could not write' in err and 'No space left on device' in err
    assert 'the files already there are intact' in err
    exp = exp_dir(tiny_opt)
    assert sorted(p.name for p in (exp / 'models').iterdir()) == ['net_g_3.pth']  # no temp files
    monkeypatch.setattr(torch, 'save', real_save)
    assert run(tmp_path, tiny_opt, '--auto_resume') == 0  # the previous checkpoint resumes
    log = ''.join(p.read_text() for p in exp.glob('train_*.log'))
    assert 'Start training from epoch 0, iter 3.' in log


def test_auto_resume_skips_truncated_newest_state(tiny_opt, tmp_path):
    assert run(tmp_path, tiny_opt) == 0
    states = exp_dir(tiny_opt) / 'training_states'
    (states / '6.state').write_bytes((states / '6.state').read_bytes()[:50])
    tiny_opt['train']['total_iter'] = 9
    assert run(tmp_path, tiny_opt, '--auto_resume') == 0
    log = ''.join(p.read_text() for p in exp_dir(tiny_opt).glob('train_*.log'))
    assert 'Skipping' in log and '6.state' in log
    assert 'Start training from epoch 0, iter 3.' in log


def test_auto_resume_honours_experiments_root(tiny_opt, tmp_path, monkeypatch):
    cwd = tmp_path / 'cwd'  # ./experiments/<name> stays absent: the run lives elsewhere
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    tiny_opt['train']['total_iter'] = 3
    assert run(tmp_path, tiny_opt) == 0
    tiny_opt['train']['total_iter'] = 6
    assert run(tmp_path, tiny_opt, '--auto_resume') == 0
    assert not (cwd / 'experiments').exists()
    log = ''.join(p.read_text() for p in exp_dir(tiny_opt).glob('train_*.log'))
    assert 'Start training from epoch 0, iter 3.' in log


def test_basicsr_training_state_resumes(tiny_opt, tmp_path):
    """A BasicSR-made state (epoch, iter, optimizers, schedulers only) loads and resumes."""
    tiny_opt['train']['total_iter'] = 3
    assert run(tmp_path, tiny_opt) == 0
    exp = exp_dir(tiny_opt)
    state = torch.load(exp / 'training_states' / '3.state', weights_only=True)
    basicsr_state = {k: state[k] for k in ('epoch', 'iter', 'optimizers', 'schedulers')}
    save_torch(basicsr_state, tmp_path / 'basicsr' / 'training_states' / '3.state')
    net = torch.load(exp / 'models' / 'net_g_3.pth', weights_only=True)
    save_torch(net, tmp_path / 'basicsr' / 'models' / 'net_g_3.pth')
    tiny_opt['train']['total_iter'] = 6
    tiny_opt['path']['resume_state'] = str(tmp_path / 'basicsr' / 'training_states' / '3.state')
    assert run(tmp_path, tiny_opt) == 0
    log = ''.join(p.read_text() for p in exp.glob('train_*.log'))
    assert 'Resumed from' in log and 'iter:       4' in log
