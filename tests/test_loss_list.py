"""``train.losses``: list-form losses in SRModel and the GAN models (values against a hand
computation, logged names, targets, option errors), and BasicSR's slots meaning the same list
(bitwise the same training)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from basicsr_lite.errors import OptionError
from basicsr_lite.models import loss_terms
from basicsr_lite.options import validate_options
from tests.test_gan_iteration_values import (GAN_WEIGHT, LR_D, LR_G, IterValueD, IterValueG,  # noqa: F401
                                             assert_log, assert_params, batch, bce, build, d_ref,
                                             g_ref, gan_train, gt_batch, leaves, sgd, srgan_opt,
                                             synthetic_model, synthetic_opt, tiny_archs)


@pytest.fixture
def sr_opt(tiny_opt) -> dict:
    opt = copy.deepcopy(tiny_opt)
    opt['network_g'] = {'type': 'IterValueG', 'scale': 2}
    opt['train'].update(ema_decay=0, optim_g={'type': 'SGD', 'lr': LR_G}, scheduler=None)
    return opt


@pytest.fixture
def gan_opt(tiny_opt) -> dict:
    opt = copy.deepcopy(tiny_opt)
    opt['model_type'] = 'ESRGANModel'
    opt['network_g'] = {'type': 'IterValueG', 'scale': 2}
    opt['network_d'] = {'type': 'IterValueD', 'num_in_ch': 3}
    opt['train'] = gan_train()
    return opt


def errors_of(opt: dict) -> str:
    with pytest.raises(OptionError) as info:
        validate_options(opt, True, source='x.yml')
    return str(info.value)


def test_two_losses_give_exactly_their_weighted_sum(sr_opt):
    """L1 (w 1) and MSE (w 0.5): each logged under its own name, and G steps on their sum."""
    sr_opt['train'].pop('pixel_opt')
    sr_opt['train']['losses'] = [{'type': 'L1Loss', 'loss_weight': 1.0},
                                 {'type': 'MSELoss', 'loss_weight': 0.5}]
    model = build(sr_opt)
    data = batch()
    pg = leaves(model.net_g)
    out = g_ref(pg, data['lq'])
    expected = {'l_l1': (out - data['gt']).abs().mean(),
                'l_mse': 0.5 * ((out - data['gt'])**2).mean()}
    model.feed_data(data)
    model.optimize_parameters(1)
    assert list(model.get_current_log()) == ['l_l1', 'l_mse']  # the list's order
    assert_log(model, expected)
    assert_params(model.net_g, sgd(pg, expected['l_l1'] + expected['l_mse'], LR_G))


def test_repeated_types_user_names_and_the_upsampled_lq_target(sr_opt):
    sr_opt['train'].pop('pixel_opt')
    sr_opt['train']['losses'] = [
        {'type': 'L1Loss'}, {'type': 'L1Loss', 'loss_weight': 0.3, 'target': 'lq_up'},
        {'type': 'L1Loss', 'loss_weight': 0.2, 'name': 'l_sharp'}, {'type': 'TVLoss'}]
    model = build(sr_opt)
    data = batch()
    pg = leaves(model.net_g)
    out = g_ref(pg, data['lq'])
    lq_up = F.interpolate(data['lq'], scale_factor=2, mode='bicubic', align_corners=False)
    tv = ((out[..., 1:, :] - out[..., :-1, :]).abs().mean()
          + (out[..., 1:] - out[..., :-1]).abs().mean())
    expected = {'l_l1': (out - data['gt']).abs().mean(),
                'l_l1_2': 0.3 * (out - lq_up).abs().mean(),
                'l_sharp': 0.2 * (out - data['gt']).abs().mean(), 'l_tv': tv}
    model.feed_data(data)
    model.optimize_parameters(1)
    assert_log(model, expected)
    assert_params(model.net_g, sgd(pg, sum(expected.values()), LR_G))


def test_gan_list_in_any_order_gan_entry_found_by_type(gan_opt):
    """The GANLoss may stand first; its term is G's adversarial loss and D's loss (ESRGAN's
    relativistic form), logged l_g_gan / l_d_real / l_d_fake as with the slots."""
    train = gan_opt['train']
    train['losses'] = [train.pop('gan_opt'), train.pop('pixel_opt'),
                       {'type': 'MSELoss', 'loss_weight': 0.25}]
    model = build(gan_opt)
    data = batch()
    pg, pd = leaves(model.net_g), leaves(model.net_d)
    lq, gt = data['lq'], data['gt']
    out = g_ref(pg, lq)
    frozen = {k: v.detach() for k, v in pd.items()}
    real_d, fake_g = d_ref(frozen, gt), d_ref(frozen, out)
    g_losses = {'l_g_l1': (out - gt).abs().mean(), 'l_g_mse': 0.25 * ((out - gt)**2).mean(),
                'l_g_gan': GAN_WEIGHT * (bce(real_d - fake_g.mean(), False)
                                         + bce(fake_g - real_d.mean(), True)) / 2}
    real_pred, fake_pred = d_ref(pd, gt), d_ref(pd, out.detach())
    d_losses = {'l_d_real': 0.5 * bce(real_pred - fake_pred.detach().mean(), True),
                'l_d_fake': 0.5 * bce(fake_pred - real_pred.detach().mean(), False)}
    model.feed_data(data)
    model.optimize_parameters(1)
    assert_log(model, {**g_losses, **d_losses, 'out_d_real': real_pred.mean(),
                       'out_d_fake': fake_pred.mean()})
    assert_params(model.net_g, sgd(pg, sum(g_losses.values()), LR_G))
    assert_params(model.net_d, sgd(pd, sum(d_losses.values()), LR_D))


@pytest.mark.parametrize('model_type', [pytest.param('SRGANModel', marks=pytest.mark.slow),
                                        'ESRGANModel'])
def test_slots_and_the_equivalent_list_train_bitwise_alike(tiny_opt, random_vgg, model_type):
    """BasicSR's slots are translated into the list: the same list written out (with the slots'
    names) gives the same bits, iteration after iteration, with a real G and a SN-D."""
    random_vgg('conv2_2')
    slots = copy.deepcopy(tiny_opt)
    slots['model_type'] = model_type
    slots['network_d'] = {'type': 'UNetDiscriminatorSN', 'num_feat': 4}
    slots['train'].update(
        optim_d={'type': 'Adam', 'lr': 1e-3}, pixel_opt={'type': 'L1Loss', 'loss_weight': 0.5},
        perceptual_opt={'type': 'PerceptualLoss', 'layer_weights': {'conv2_2': 1.0},
                        'style_weight': 10.0},
        gan_opt={'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 0.1})
    listed = copy.deepcopy(slots)
    listed['train']['losses'] = [listed['train'].pop(k)
                                 for k in ('pixel_opt', 'perceptual_opt', 'gan_opt')]
    listed['train']['losses'][0]['name'] = 'l_g_pix'
    models = []
    for opt in (slots, listed):
        torch.manual_seed(0)
        models.append(build(opt))
    data = {'lq': torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)),
            'gt': torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))}
    for it in (1, 2, 3):
        for model in models:
            model.feed_data(data)
            model.optimize_parameters(it)
        logs = [m.get_current_log() for m in models]
        assert list(logs[0]) == list(logs[1])
        assert set(logs[0]) >= {'l_g_pix', 'l_g_percep', 'l_g_style', 'l_g_gan', 'l_d_real'}
        assert logs[0] == logs[1]
    for label in ('net_g', 'net_d'):
        a, b = (dict(getattr(m, label).state_dict()) for m in models)
        assert all(torch.equal(a[k], b[k]) for k in a), label


def test_real_esrgan_list_with_gt_usm_targets_trains_as_the_flags(synthetic_opt):
    """Real-ESRGAN's flags (l1_gt_usm true, gan_gt_usm true) and the list whose entries say
    target: gt_usm give the same bits (stand-ins for USM and degradation, as in
    test_gan_iteration_values)."""
    synthetic_opt['model_type'] = 'RealESRGANModel'
    flags = copy.deepcopy(synthetic_opt)
    flags.update(l1_gt_usm=True, gan_gt_usm=True)
    listed = copy.deepcopy(synthetic_opt)
    train = listed['train']
    train['losses'] = [{**train.pop('pixel_opt'), 'target': 'gt_usm', 'name': 'l_g_pix'},
                       {**train.pop('gan_opt'), 'target': 'gt_usm'}]
    models = [synthetic_model(flags), synthetic_model(listed)]
    gt = batch()['gt']
    first = None
    for it in (1, 2):
        for model in models:
            model.feed_data(gt_batch(gt))
            model.optimize_parameters(it)
        assert models[0].get_current_log() == models[1].get_current_log()
        first = first or models[1].get_current_log()
    for label in ('net_g', 'net_d'):
        a, b = (dict(getattr(m, label).state_dict()) for m in models)
        assert all(torch.equal(a[k], b[k]) for k in a), label
    plain = copy.deepcopy(listed)
    plain['train']['losses'][0]['target'] = 'gt'
    model = synthetic_model(plain)
    model.feed_data(gt_batch(gt))
    model.optimize_parameters(1)
    assert model.get_current_log()['l_g_pix'] != first['l_g_pix']  # the target matters
    assert model.get_current_log()['l_d_real'] == first['l_d_real']


def test_real_esrgan_flags_mean_the_targets_of_the_slots(tiny_opt):
    opt = {'train': {'pixel_opt': {'type': 'L1Loss'}, 'perceptual_opt': {'type': 'L1Loss'},
                     'gan_opt': {'type': 'GANLoss'}, 'ldl_opt': {'type': 'L1Loss'}},
           'l1_gt_usm': None, 'percep_gt_usm': False, 'gan_gt_usm': None}
    from basicsr_lite.models.realesrgan_model import RealESRGANModel
    entries = dict(RealESRGANModel.loss_entries(opt))
    assert [e['target'] for e in entries.values()] == ['gt_usm', 'gt', 'gt', 'gt']
    assert [e['name'] for e in entries.values()] == ['l_g_pix', 'l_g_ldl', 'l_g_percep',
                                                      'l_g_gan']
    assert entries['train.ldl_opt']['type'] == 'LDLLoss'


def test_option_errors(tiny_opt, gan_opt):
    """A misspelt argument names train.losses[i].key and suggests the right one; both forms, a
    GANLoss without D, two GANLosses, no GANLoss, a foreign target, clashing names, the flags
    beside a list: each one message."""
    bad = copy.deepcopy(tiny_opt)
    bad['train'].pop('pixel_opt')
    bad['train']['losses'] = [{'type': 'L1Loss'}, {'type': 'MSELoss'},
                              {'type': 'MSSSIMLoss', 'loss_weigth': 0.2}]
    message = errors_of(bad)
    assert 'has 1 problem(s)' in message
    assert "train.losses[2].loss_weigth: unknown argument of loss MSSSIMLoss; did you mean " \
           "'loss_weight'?" in message
    bad['train']['losses'][2] = {'type': 'L1Loss', 'target': 'gt_usm', 'name': 'l_mse'}
    bad['train']['pixel_opt'] = {'type': 'L1Loss'}
    bad['train']['losses'].append({'type': 'GANLoss'})
    message = errors_of(bad)
    assert 'train.losses: given together with train.pixel_opt' in message
    assert "train.losses[2].target: 'gt_usm' is not a target of this model" in message
    assert "train.losses[2].name: 'l_mse' is also the name of train.losses[1]" in message
    assert 'train.losses[3]: GANLoss needs a discriminator' in message
    gan = copy.deepcopy(gan_opt)
    gan['train']['losses'] = [gan['train'].pop('gan_opt'), gan['train'].pop('pixel_opt'),
                              {'type': 'GANLoss', 'gan_type': 'lsgan'}]
    assert 'train.losses[2]: a second GANLoss (the first is train.losses[0])' in errors_of(gan)
    gan['train']['losses'] = gan['train']['losses'][1:2]
    assert 'train.losses: no GANLoss entry' in errors_of(gan)
    gan['train']['losses'] = [{'type': 'L1Loss', 'name': 'l_d_real'},
                              {'type': 'GANLoss', 'target': 'lq_up'}]
    message = errors_of(gan)
    assert "train.losses[0].name: 'l_d_real' is a logged value of the model" in message
    assert "train.losses[1].target: the GANLoss's target is D's real images" in message
    gan['train']['losses'] = []
    assert 'train.losses: empty' in errors_of(gan)


def test_real_esrgan_flags_beside_a_list_are_an_error():
    from basicsr_lite.models.realesrgan_model import RealESRGANModel
    opt = {'train': {'losses': [{'type': 'L1Loss', 'target': 'gt_usm'}, {'type': 'GANLoss'}],
                     'ema_decay': 0.999},
           'l1_gt_usm': True, 'percep_gt_usm': None, 'gan_gt_usm': None,
           'datasets': {'train': {'type': 'PairedImageDataset'}}, 'high_order_degradation': False}
    problems = RealESRGANModel.option_problems(opt, True)
    assert any(p.startswith('l1_gt_usm: applies to BasicSR') for p in problems)


def test_default_logged_names():
    entries = [('a', {'type': t}) for t in ('L1Loss', 'MSSSIMLoss', 'PerceptualLoss', 'L1Loss',
                                            'PerceptualLoss', 'GANLoss')]
    assert loss_terms.logged_names(entries, 'l_g_') == [
        ('l_g_l1',), ('l_g_msssim',), ('l_g_percep', 'l_g_style'), ('l_g_l1_2',),
        ('l_g_percep_2', 'l_g_style_2'), ('l_g_gan',)]
    named = [('a', {'type': 'PerceptualLoss', 'name': 'vgg'}),
             ('b', {'type': 'PerceptualLoss', 'name': 'l_percep_hi'})]
    assert loss_terms.logged_names(named, 'l_') == [('vgg', 'vgg_style'),
                                                     ('l_percep_hi', 'l_style_hi')]
