import pytest
import torch

from basicsr_lite.models import build_model
from basicsr_lite.options import validate_options
from basicsr_lite.runtime.weights import CheckpointError, save_torch


@pytest.fixture
def model(tiny_opt):
    opt = validate_options(tiny_opt, True)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    return build_model(opt, torch.device('cpu'))


def reference_state(model):
    return {k: torch.randn_like(v) for k, v in model.net_g.state_dict().items()}


def test_sr_model_step_updates_weights_and_ema(model):
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    model.feed_data({'lq': torch.rand(2, 3, 8, 8), 'gt': torch.rand(2, 3, 16, 16)})
    model.optimize_parameters(1)
    assert set(model.get_current_log()) == {'l_pix'}
    after = model.net_g.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    ema = model.ema.module.state_dict()
    key = 'conv_first.weight'
    torch.testing.assert_close(ema[key], 0.9 * before[key] + 0.1 * after[key])
    model.test()
    assert model.output.shape == (2, 3, 16, 16)


@pytest.mark.parametrize('wrap', ['params', 'params_ema', 'bare', 'module_prefix'])
def test_load_network_accepts_basicsr_forms(model, tmp_path, wrap):
    state = reference_state(model)
    content = {
        'params': {'params': state},
        'params_ema': {'params': {}, 'params_ema': state},
        'bare': state,
        'module_prefix': {'params': {f'module.{k}': v for k, v in state.items()}},
    }[wrap]
    path = tmp_path / 'w.pth'
    save_torch(content, path)
    model.load_network(model.net_g, str(path), strict=True,
                       param_key='params_ema' if wrap == 'params_ema' else 'params')
    for k, v in model.net_g.state_dict().items():
        assert torch.equal(v, state[k])


def test_load_network_reports_each_mismatch(model, tmp_path):
    state = reference_state(model)
    state.pop('conv_last.bias')
    state['extra.weight'] = torch.zeros(1)
    state['conv_first.weight'] = torch.zeros(4, 3, 3, 3)
    path = tmp_path / 'w.pth'
    save_torch({'params': state}, path)
    with pytest.raises(CheckpointError) as info:
        model.load_network(model.net_g, str(path), strict=True)
    message = str(info.value)
    assert 'missing keys (1): conv_last.bias' in message
    assert 'unexpected keys (1): extra.weight' in message
    assert 'conv_first.weight: checkpoint (4, 3, 3, 3) vs network (8, 3, 3, 3)' in message
    model.load_network(model.net_g, str(path), strict=False)  # loads what fits, warns
    assert torch.equal(model.net_g.state_dict()['conv_hr.bias'], state['conv_hr.bias'])


def test_missing_param_key_lists_available(model, tmp_path):
    path = tmp_path / 'w.pth'
    save_torch({'params_ema': reference_state(model), 'iter': 3}, path)
    with pytest.raises(CheckpointError, match=r"no 'params' entry; its top-level keys are "
                                              r"\['iter', 'params_ema'\]"):
        model.load_network(model.net_g, str(path), param_key='params')


def test_best_metric_tracking(model):
    model.update_best_metric('set', 'psnr', 30.0, 'higher', 10)
    model.update_best_metric('set', 'psnr', 29.0, 'higher', 20)
    model.update_best_metric('set', 'lpips', 0.3, 'lower', 10)
    model.update_best_metric('set', 'lpips', 0.2, 'lower', 20)
    assert model.best_metric_results['set'] == {'psnr': {'val': 30.0, 'iter': 10},
                                                'lpips': {'val': 0.2, 'iter': 20}}


def test_warmup_without_scheduler(tiny_opt):
    tiny_opt['train']['scheduler'] = None
    tiny_opt['train']['warmup_iter'] = 4
    opt = validate_options(tiny_opt, True)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    model = build_model(opt, torch.device('cpu'))
    lrs = []
    for it in range(1, 6):
        model.update_learning_rate(it, 4)
        lrs.append(model.get_current_learning_rate()[0])
    assert lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])


def test_every_model_provides_what_the_loop_uses():
    """engine/ and train.py / test.py only use models.protocol.TrainableModel."""
    from basicsr_lite.models.protocol import TrainableModel
    from basicsr_lite.registry import MODEL_REGISTRY
    methods = [name for name, value in vars(TrainableModel).items()
               if callable(value) and not name.startswith('_')]
    assert len(methods) >= 15
    for name in MODEL_REGISTRY.keys():
        cls = MODEL_REGISTRY.get(name)
        missing = [m for m in methods if not callable(getattr(cls, m, None))]
        assert not missing, f'{name} lacks {missing}'
