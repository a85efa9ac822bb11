"""SPAN: the authors' key layout, parameter counts, the re-parameterisation (trained form <->
deploy form, eval refolding after every change), strict loading of both forms, and the released
NTIRE files reproducing the Set5 numbers the authors' code gives (skipped without ../shared)."""
from __future__ import annotations

import copy
import importlib
import importlib.util
import sys
import types
from pathlib import Path
from unittest import mock

import pytest
import torch

from basicsr_lite.archs import build_network
from basicsr_lite.archs.span_arch import SPAN, Conv3XC
from basicsr_lite.errors import CheckpointError
from basicsr_lite.runtime.ema import ModelEMA
from basicsr_lite.runtime.weights import load_weights_into, save_torch
from tests.test_model_zoo import ROOT, SHARED, needs_shared, run_test_py

WEIGHTS = SHARED / 'weights' / 'SPAN'


def authors_layout(c_in: int, feat: int, out_ch: int, scale: int) -> list[tuple[str, tuple]]:
    """Keys and shapes of the authors' SPAN (hongyuanyu/SPAN span_arch.py), in their order:
    each Conv3XC registers sk, conv.0..2 (1x1 to 2*c_in, 3x3 to 2*c_out, 1x1 to c_out), then
    eval_conv; SPAN registers conv_1, block_1..6 (c1_r, c2_r, c3_r), conv_cat, conv_2,
    upsampler.0."""
    def conv3xc(name: str, ci: int, co: int) -> list[tuple[str, tuple]]:
        return [(f'{name}.sk.weight', (co, ci, 1, 1)), (f'{name}.sk.bias', (co,)),
                (f'{name}.conv.0.weight', (2 * ci, ci, 1, 1)), (f'{name}.conv.0.bias', (2 * ci,)),
                (f'{name}.conv.1.weight', (2 * co, 2 * ci, 3, 3)),
                (f'{name}.conv.1.bias', (2 * co,)),
                (f'{name}.conv.2.weight', (co, 2 * co, 1, 1)), (f'{name}.conv.2.bias', (co,)),
                (f'{name}.eval_conv.weight', (co, ci, 3, 3)), (f'{name}.eval_conv.bias', (co,))]
    keys = conv3xc('conv_1', c_in, feat)
    for b in range(1, 7):
        for c in ('c1_r', 'c2_r', 'c3_r'):
            keys += conv3xc(f'block_{b}.{c}', feat, feat)
    keys += [('conv_cat.weight', (feat, 4 * feat, 1, 1)), ('conv_cat.bias', (feat,))]
    keys += conv3xc('conv_2', feat, feat)
    keys += [('upsampler.0.weight', (out_ch * scale**2, feat, 3, 3)),
             ('upsampler.0.bias', (out_ch * scale**2,))]
    return keys


def deploy_layout(c_in: int, feat: int, out_ch: int, scale: int) -> list[tuple[str, tuple]]:
    return [(k, s) for k, s in authors_layout(c_in, feat, out_ch, scale)
            if '.sk.' not in k and '.conv.' not in k]


def shapes(net: torch.nn.Module) -> list[tuple[str, tuple]]:
    return [(k, tuple(v.shape)) for k, v in net.state_dict().items()]


def test_trained_form_has_the_authors_keys_in_their_order():
    net = build_network({'type': 'SPAN', 'num_in_ch': 3, 'num_out_ch': 3,
                         'feature_channels': 4, 'upscale': 2})
    assert shapes(net) == authors_layout(3, 4, 3, 2)


def test_deploy_form_has_the_keys_of_the_ntire_slim_files():
    net = SPAN(1, 2, feature_channels=5, upscale=3, rgb_mean=(0.5,), deploy=True)
    assert shapes(net) == deploy_layout(1, 5, 2, 3)
    assert net.deploy


def test_spandrel_detects_a_saved_trained_form_file():
    """spandrel 0.4.2 (architectures/SPAN/__init__.py) detects SPAN by these keys and reads
    feature_channels from conv_1.sk.weight and the scale from upsampler.0.weight."""
    state = SPAN(3, 3, feature_channels=12, upscale=2).state_dict()
    for key in ('conv_1.sk.weight', 'block_1.c1_r.sk.weight', 'block_1.c1_r.eval_conv.weight',
                'block_1.c3_r.eval_conv.weight', 'conv_cat.weight', 'conv_2.sk.weight',
                'conv_2.eval_conv.weight', 'upsampler.0.weight'):
        assert key in state, key
    assert state['conv_1.sk.weight'].shape[:2] == (12, 3)
    assert state['upsampler.0.weight'].shape[0] == 3 * 2**2


def spandrel_span_module():
    """spandrel's own SPAN module, imported without running ``spandrel/__init__.py`` (it
    imports every architecture, LaMa's needs torchvision, which this package does without)."""
    spec = importlib.util.find_spec('spandrel')
    if spec is None or not spec.submodule_search_locations:
        pytest.skip('spandrel is not installed')
    root = Path(list(spec.submodule_search_locations)[0])
    if not (root / 'architectures/SPAN/__arch/span.py').is_file():
        pytest.skip(f'spandrel at {root} has no architectures/SPAN/__arch/span.py')
    stubs = {}
    for name, path in [('spandrel', root), ('spandrel.architectures', root / 'architectures'),
                       ('spandrel.architectures.SPAN', root / 'architectures/SPAN')]:
        if name not in sys.modules:
            stubs[name] = types.ModuleType(name)
            stubs[name].__path__ = [str(path)]
    with mock.patch.dict(sys.modules, stubs):
        return importlib.import_module('spandrel.architectures.SPAN.__arch.span')


def test_a_file_trained_here_opens_in_spandrels_span():
    torch.manual_seed(0)
    ours, x = SPAN(3, 3, feature_channels=8, upscale=3), torch.rand(1, 3, 14, 14)
    optimizer = torch.optim.Adam(ours.parameters(), 1e-3)
    ours(x).mean().backward()
    optimizer.step()
    state = ours.state_dict()
    theirs = spandrel_span_module().SPAN(
        num_in_ch=state['conv_1.sk.weight'].shape[1], num_out_ch=3,
        feature_channels=state['conv_1.sk.weight'].shape[0], upscale=3)
    theirs.load_state_dict(state, strict=True)
    with torch.no_grad():
        assert torch.equal(theirs.train()(x), ours.train()(x))
        assert relative_error(theirs.eval()(x), ours.eval()(x)) < 1e-5


@pytest.mark.parametrize('scale, deploy_count, trained_count, saved_count', [
    (4, 426_288, 1_840_488, 2_236_728),  # the paper's "426K" for SPAN x4 is the deploy form
    (2, 410_700, 1_824_900, 2_221_140),
])
def test_parameter_counts_of_span_ch48(scale, deploy_count, trained_count, saved_count):
    """Trained form: the branches are the parameters; eval_conv (derived) is saved as well."""
    deploy, trained = SPAN(3, 3, 48, scale, deploy=True), SPAN(3, 3, 48, scale)
    assert sum(p.numel() for p in deploy.parameters()) == deploy_count
    assert sum(p.numel() for p in trained.parameters()) == trained_count
    assert sum(v.numel() for v in trained.state_dict().values()) == saved_count
    eval_convs = sum(m.eval_conv.weight.numel() + m.eval_conv.bias.numel()
                     for m in trained.conv3xc_modules().values())
    assert saved_count == trained_count + eval_convs


def test_every_parameter_of_either_form_gets_a_gradient():
    for net in (tiny(), tiny(deploy=True)):
        net(torch.rand(1, 3, 8, 8)).mean().backward()
        assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize('stride', [1, 2])
def test_conv3xc_folds_exactly(stride):
    torch.manual_seed(0)
    conv = Conv3XC(5, 7, gain1=2, s=stride)
    x = torch.randn(2, 5, 11, 10)
    branches = conv.train()(x)
    folded = conv.eval()(x)
    assert folded.shape == branches.shape
    torch.testing.assert_close(folded, branches, rtol=1e-5, atol=1e-5)


def tiny(seed: int = 0, **kwargs) -> SPAN:
    torch.manual_seed(seed)
    return SPAN(3, 3, feature_channels=6, upscale=2, **kwargs)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def test_eval_form_equals_trained_form_and_deploy_form_equals_eval_form():
    net, x = tiny(), torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        trained = net.train()(x)
        evaluated = net.eval()(x)
        deployed = copy.deepcopy(net).switch_to_deploy().eval()(x)
    assert relative_error(evaluated, trained) < 1e-5
    assert torch.equal(deployed, evaluated)  # the deploy form runs the very same eval_conv


@pytest.mark.parametrize('impl', ['fused', pytest.param('foreach', marks=pytest.mark.slow)])
def test_eval_refolds_after_every_optimizer_step_and_only_then(monkeypatch, impl):
    """Fused Adam updates the weights without bumping their version counters."""
    net, x = tiny(), torch.rand(2, 3, 12, 12)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2, **{impl: True})
    folds = []
    monkeypatch.setattr(Conv3XC, 'fold', lambda self, f=Conv3XC.fold: (folds.append(1), f(self)))
    for _ in range(2):
        net.train()
        net(x).abs().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        net.eval()
        with torch.inference_mode():
            after_step = net(x)
        with torch.no_grad():
            branches = net.train()(x)
        assert relative_error(after_step, branches) < 1e-5
    folds.clear()
    net.eval()
    with torch.no_grad():
        net(x)
        net(x)
    assert folds == []  # nothing changed since the last fold: no refolding per forward


def test_eval_refolds_after_a_data_write():
    net, x = tiny().eval(), torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        before = net(x)
        net.conv_2.sk.bias.data.add_(1.0)  # .data: no version bump
        after = net(x)
        branches = net.train()(x)
    assert relative_error(after, before) > 1e-3
    assert relative_error(after, branches) < 1e-5


def test_eval_refolds_when_eval_conv_was_overwritten():
    """ModelEMA copies buffers from the trained network, whose eval_conv may be stale."""
    net, x = tiny().eval(), torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        before = net(x)
        net.block_4.c1_r.eval_conv.weight.zero_()
        assert torch.equal(net(x), before)


def test_ema_copy_in_eval_mode_follows_its_branches():
    net, x = tiny(), torch.rand(1, 3, 10, 10)
    ema = ModelEMA(net, 0.5)
    with torch.no_grad():
        before = ema.module(x)
        for p in net.parameters():
            p.add_(0.01)
    ema.update(net)
    with torch.no_grad():
        after = ema.module(x)
        branches = copy.deepcopy(ema.module).train()(x)
    assert not torch.equal(after, before)
    assert relative_error(after, branches) < 1e-5


def test_saved_eval_conv_agrees_with_the_branches_after_training_steps():
    net, x = tiny(), torch.rand(2, 3, 12, 12)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)  # no version bumps
    net(x).mean().backward()
    optimizer.step()
    state = net.state_dict()  # saved while still in train mode
    fresh = tiny(seed=1)
    fresh.load_state_dict({k: v for k, v in state.items()
                           if '.sk.' not in k and '.conv.' not in k})
    assert fresh.deploy
    with torch.no_grad():
        assert relative_error(fresh.eval()(x), net.train()(x)) < 1e-5


@pytest.mark.parametrize('file_form, net_form', [('deploy', False), ('trained', True)])
def test_either_form_loads_strictly_into_either_network(tmp_path, file_form, net_form):
    source, x = tiny(), torch.rand(1, 3, 10, 10)
    if file_form == 'deploy':
        source.switch_to_deploy()
    save_torch({'params': source.state_dict()}, tmp_path / 'net.pth')
    net = tiny(seed=1, deploy=net_form)
    load_weights_into(net, str(tmp_path / 'net.pth'), strict=True)
    assert net.deploy == (file_form == 'deploy')
    assert shapes(net) == shapes(source)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), source.eval()(x))


@pytest.mark.parametrize('change', ['missing', 'unexpected', 'mixed branch'])
def test_strict_loading_never_drops_a_key(tmp_path, change):
    state = tiny().state_dict()
    if change == 'missing':
        del state['block_3.c2_r.eval_conv.bias']
    elif change == 'unexpected':
        state['block_3.c2_r.extra.weight'] = torch.zeros(1)
    else:  # a deploy-form file that still holds part of one branch
        state = {k: v for k, v in state.items() if '.sk.' not in k and '.conv.' not in k}
        state['conv_2.conv.0.weight'] = torch.zeros(12, 6, 1, 1)
    save_torch({'params': state}, tmp_path / 'net.pth')
    with pytest.raises(CheckpointError, match='strict_load'):
        load_weights_into(tiny(seed=1), str(tmp_path / 'net.pth'), strict=True)
    with pytest.raises(RuntimeError, match='Missing key|Unexpected key'):
        tiny(seed=1).load_state_dict(state, strict=True)  # plain torch loading as well


RELEASED = {  # file: (constructor arguments, param key, parameters, Set5 of the authors' code)
    'NTIRE2024_team38_span_ch28_slim.pth': ({'feature_channels': 28}, 'params', 150_688,
                                            (31.7390, 0.8897)),
    'NTIRE2024_team39_spantiny_ch26_slim.pth': ({'feature_channels': 26}, 'params', 130_828,
                                                (31.7388, 0.8890)),
    'NTIRE2025_team51_span.pth': ({'feature_channels': 28, 'cat_channels': 20}, 'params_ema',
                                  146_328, (31.7360, 0.8893)),
}


@needs_shared
@pytest.mark.parametrize('name', sorted(RELEASED))
def test_released_files_load_strictly(name):
    args, key, count, _ = RELEASED[name]
    for param_key in {key, 'params'}:
        net = SPAN(3, 3, upscale=4, **args)
        load_weights_into(net, str(WEIGHTS / name), strict=True, param_key=param_key)
        assert net.deploy
        assert sum(p.numel() for p in net.parameters()) == count


TEST_FILES = {
    'NTIRE2024_team38_span_ch28_slim.pth': 'test_SPAN_NTIRE2024_team38_ch28_x4.yml',
    'NTIRE2024_team39_spantiny_ch26_slim.pth': 'test_SPAN_NTIRE2024_team39_ch26_x4.yml',
    'NTIRE2025_team51_span.pth': 'test_SPAN_NTIRE2025_team51_ch28_x4.yml',
}


@pytest.mark.slow
@pytest.mark.reproduction
@needs_shared
@pytest.mark.parametrize('name', sorted(TEST_FILES))
def test_released_files_reproduce_set5_of_the_authors_code(name, tmp_path, monkeypatch):
    """No benchmark number is published for these NTIRE entries; the reference is the Set5 x4
    Y-PSNR / SSIM (border 4) that ../shared/weights/SOURCES_r3.md measured with the authors'
    own code ("Set5 check here"), an independent implementation's number. Runs test.py on the
    deploy-form file with strict_load_g: true."""
    monkeypatch.chdir(ROOT)
    results = run_test_py(ROOT / 'options/test/SPAN' / TEST_FILES[name], tmp_path, {'Set5'})
    psnr, ssim = RELEASED[name][3]
    assert results['Set5']['mean']['psnr'] == pytest.approx(psnr, abs=0.01)
    assert results['Set5']['mean']['ssim'] == pytest.approx(ssim, abs=0.0005)


def test_option_files_name_the_released_files():
    for name, option in TEST_FILES.items():
        assert name in (Path(ROOT) / 'options/test/SPAN' / option).read_text()
