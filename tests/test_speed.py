"""The speed options (train.channels_last, compile, optimizer_impl, cudnn_benchmark,
matmul_precision, stop_check_freq) and the step decided on the device without a host sync."""
from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from basicsr_lite.options import validate_options
from basicsr_lite.runtime import speed
from basicsr_lite.runtime.dist import unwrap
from basicsr_lite.runtime.ema import ModelEMA
from basicsr_lite.runtime.optim import build_optimizer
from basicsr_lite.runtime.step import OptimizerStepper
from tests.runs import assert_identical, configure, final_weights, train_in_process


def tiny_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))


def loss_of(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return (net(x) - x.flip(-1)).abs().mean()


def problems(opt: dict) -> str:
    with pytest.raises(ValueError) as err:
        validate_options(opt, is_train=True, check_paths=False)
    return str(err.value)


def test_speed_options_are_validated(tiny_opt):
    tiny_opt['train'].update(channels_last='yes', compile={'backend': 'inductor', 'modes': 'x'},
                             optimizer_impl='fast', matmul_precision='low', stop_check_freq=0)
    message = problems(tiny_opt)
    assert 'train.channels_last' in message
    assert "train.compile: unknown key(s) ['modes']" in message
    assert "train.optimizer_impl: 'fast' is not one of ['auto', 'fused', 'foreach', " \
           "'for_loop']" in message
    assert "train.matmul_precision: 'low' is not one of ['highest', 'high', 'medium']" in message
    assert 'train.stop_check_freq: must be > 0; got 0.' in message
    tiny_opt['train'].update(channels_last=True, compile=7, optimizer_impl='fused',
                             matmul_precision='high', stop_check_freq=5)
    assert 'train.compile: ' in problems(tiny_opt)
    tiny_opt['train']['compile'] = {'mode': 'fastest'}
    assert "train.compile: mode: 'fastest' is not one of [None, 'default', " in problems(tiny_opt)


@pytest.mark.parametrize('impl,fused', [('auto', True), ('fused', True), ('foreach', False),
                                        ('for_loop', False)])
def test_optimizer_impl_chooses_the_kernel(impl, fused):
    params = list(tiny_net().parameters())
    optimizer = build_optimizer(params, {'type': 'Adam', 'lr': 1e-3}, impl=impl)
    assert speed.is_fused(optimizer) == fused
    assert optimizer.defaults['foreach'] is {'foreach': True, 'for_loop': False}.get(impl)
    # the option file's own choice wins
    own = build_optimizer(params, {'type': 'Adam', 'lr': 1e-3, 'foreach': True}, impl=impl)
    assert not speed.is_fused(own) and own.defaults['foreach'] is True
    # auto: torch's default where the fused kernel does not take the parameters
    ints = [torch.zeros(3, dtype=torch.long)]
    assert not speed.fused_kernel_applies(ints) and speed.optimizer_impl_kwargs({}, 'auto')


@pytest.mark.parametrize('kind', ['Adam', 'AdamW', 'SGD'])
def test_fused_foreach_and_for_loop_optimizers_agree(kind):
    x = torch.rand(2, 3, 8, 8)
    results = []
    for impl in ('fused', 'foreach', 'for_loop'):
        net = tiny_net()
        extra = {'momentum': 0.9} if kind == 'SGD' else {}
        stepper = OptimizerStepper('g', build_optimizer(
            net.parameters(), {'type': kind, 'lr': 1e-2, **extra}, impl=impl), [net])
        for _ in range(5):
            stepper.backward({'l': loss_of(net, x)})
        results.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    torch.testing.assert_close(results[0], results[2], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(results[1], results[2], atol=1e-6, rtol=1e-5)


def fused_stepper(net: nn.Module, **kwargs) -> OptimizerStepper:
    optimizer = build_optimizer(net.parameters(), {'type': 'Adam', 'lr': 1e-2}, impl='fused')
    stepper = OptimizerStepper('g', optimizer, [net], **kwargs)
    assert stepper.on_device
    return stepper


def state_of(net: nn.Module, stepper: OptimizerStepper) -> dict:
    return {'net': copy.deepcopy(net.state_dict()),
            'optimizer': copy.deepcopy(stepper.optimizer.state_dict()['state'])}


def assert_same_state(a: dict, b: dict) -> None:
    assert all(torch.equal(v, b['net'][k]) for k, v in a['net'].items())
    assert all(torch.equal(v, b['optimizer'][i][key])
               for i, s in a['optimizer'].items() for key, v in s.items())


def test_device_decided_step_drops_a_non_finite_loss_and_reports_it_at_settle():
    """nan_policy skip: the bad step leaves weights and Adam's moments and step count as they
    were; the next finite step is taken; settle() names the iteration and the loss, once."""
    net, x = tiny_net(), torch.rand(2, 3, 8, 8)
    stepper = fused_stepper(net, halt_on_fault=False)
    assert stepper.backward({'l': loss_of(net, x)}, iteration=1).stepped  # a tensor: True
    before = state_of(net, stepper)
    result = stepper.backward({'l_pix': loss_of(net, x) * float('nan'), 'l_b': loss_of(net, x)},
                              iteration=2)
    assert result.deferred and not result.stepped and result.non_finite
    assert_same_state(before, state_of(net, stepper))
    assert stepper.backward({'l': loss_of(net, x)}, iteration=3).stepped
    assert int(stepper.optimizer.state_dict()['state'][0]['step']) == 2
    fault = stepper.settle()
    assert (fault.iteration, fault.count) == (2, 1)
    assert fault.description() == 'loss (l_pix = nan)'
    assert stepper.settle() is None  # reported once


def test_device_decided_step_halts_after_a_fault_until_settled():
    """nan_policy stop: every step after the fault is dropped too, so the weights the run stops
    with are those from before the fault."""
    net, x = tiny_net(), torch.rand(2, 3, 8, 8)
    stepper = fused_stepper(net, halt_on_fault=True)
    stepper.backward({'l': loss_of(net, x)}, iteration=1)
    before = state_of(net, stepper)
    out = net(x)
    bad_grad = loss_of(net, x) + torch.sqrt((out - out).sum())  # finite value, NaN gradient
    assert not stepper.backward({'l': bad_grad}, iteration=2).stepped
    for it in (3, 4):
        assert not stepper.backward({'l': loss_of(net, x)}, iteration=it).stepped
    assert_same_state(before, state_of(net, stepper))
    fault = stepper.settle()
    assert (fault.iteration, fault.count) == (2, 1)
    assert fault.description() == 'gradient (the losses are finite)'


def test_device_decided_fp16_overflow_is_the_scalers_business():
    net, x = tiny_net(), torch.rand(2, 3, 8, 8)
    scaler = torch.amp.GradScaler('cpu')
    stepper = fused_stepper(net, scaler=scaler)
    before = state_of(net, stepper)
    out = net(x)
    result = stepper.backward({'l': loss_of(net, x) + torch.sqrt((out - out).sum())}, 1)
    assert result.scaler_skipped and not result.non_finite and not result.stepped
    assert scaler.get_scale() == 65536.0 * 0.5
    assert_same_state(before, state_of(net, stepper))
    assert stepper.backward({'l': loss_of(net, x)}, 2).stepped
    assert stepper.settle() is None  # an overflow is not a fault of the non-finite policy


def test_masked_ema_update_is_a_no_op_when_the_step_was_dropped():
    net = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))
    ema = ModelEMA(net, 0.5)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net(torch.rand(2, 3, 4, 4))  # BN running statistics change
    frozen = copy.deepcopy(ema.state_dict())
    ema.update(net, when=torch.tensor(False))
    assert all(torch.equal(v, frozen[k]) for k, v in ema.state_dict().items())
    reference = ModelEMA(net, 0.5)
    reference.load_state_dict(frozen)
    reference.update(net, when=True)
    ema.update(net, when=torch.tensor(True))
    for k, v in reference.state_dict().items():
        torch.testing.assert_close(ema.state_dict()[k], v, atol=0, rtol=0)


def run_weights(tiny_opt, tmp_path, name: str, total: int = 6, **train) -> dict:
    opt = configure(tiny_opt, tmp_path / name, total, 3)
    opt['train'].update(train)
    assert train_in_process(tmp_path, opt) == 0
    return final_weights(tmp_path / name)


def test_channels_last_trains_the_same_network(tiny_opt, tmp_path):
    """NHWC is a memory order only: fp32 results equal the NCHW run to float tolerance, and the
    checkpoint has the same keys (it loads into a plain network)."""
    plain = run_weights(tiny_opt, tmp_path, 'nchw', optimizer_impl='for_loop')
    nhwc = run_weights(tiny_opt, tmp_path, 'nhwc', optimizer_impl='for_loop', channels_last=True)
    assert set(plain['params']) == set(nhwc['params'])
    for key in ('params', 'params_ema'):
        for name, value in plain[key].items():
            torch.testing.assert_close(nhwc[key][name], value, atol=1e-5, rtol=1e-4)
    assert any(v.dim() == 4 and v.is_contiguous(memory_format=torch.channels_last)
               and not v.is_contiguous() for v in nhwc['params'].values())


def test_channels_last_and_fused_resume_exactly(tiny_opt, tmp_path):
    """6 iterations straight == 3 + resume + 3, bitwise, with the speed options on."""
    options = {'channels_last': True, 'optimizer_impl': 'fused', 'stop_check_freq': 2}
    straight = run_weights(tiny_opt, tmp_path, 'straight', **options)
    first = configure(tiny_opt, tmp_path / 'run', 3, 3)
    first['train'].update(options)
    first['train']['scheduler']['periods'] = [6]
    assert train_in_process(tmp_path, first) == 0
    first['train']['total_iter'] = 6
    assert train_in_process(tmp_path, first, '--auto_resume') == 0
    assert_identical(straight, final_weights(tmp_path / 'run'))


def test_backend_flags_are_set_from_the_options():
    old = torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark
    try:
        speed.set_backend_flags({'cudnn_benchmark': True, 'matmul_precision': 'high'})
        assert torch.get_float32_matmul_precision() == 'high' and torch.backends.cudnn.benchmark
    finally:
        torch.set_float32_matmul_precision(old[0])
        torch.backends.cudnn.benchmark = old[1]


def test_compile_falls_back_with_a_message_when_the_backend_fails(tiny_opt, tmp_path, capsys):
    """A backend of torch that cannot compile here (tvm is not installed): the run says so and
    trains uncompiled. (A name torch does not know is an option error: test_options_r3.py.)"""
    if importlib.util.find_spec('tvm') is not None:
        pytest.skip('tvm is installed here: its backend may compile')
    opt = configure(tiny_opt, tmp_path / 'fallback', 2, 2)
    opt['train']['compile'] = {'backend': 'tvm'}
    assert train_in_process(tmp_path, opt) == 0
    err = capsys.readouterr().err
    assert "train.compile: torch.compile({'backend': 'tvm'}) does not work on this " \
           "machine (BackendCompilerFailed: " in err and 'network_g trains uncompiled.' in err


@pytest.mark.slow
def test_compiled_training_saves_plain_networks(tiny_opt, tmp_path):
    """torch.compile (inductor, CPU): the run trains, its checkpoints hold the plain networks'
    keys, and the weights agree with the eager run to float tolerance."""
    eager = run_weights(tiny_opt, tmp_path, 'eager', total=3, optimizer_impl='for_loop')
    compiled = run_weights(tiny_opt, tmp_path, 'compiled', total=3, optimizer_impl='for_loop',
                           compile=True)
    assert set(compiled['params']) == set(eager['params'])
    for name, value in eager['params'].items():
        torch.testing.assert_close(compiled['params'][name], value, atol=1e-4, rtol=1e-3)


def test_unwrap_sees_through_compile_and_ddp_wrappers():
    net = tiny_net()
    compiled = torch.compile(net)
    assert unwrap(compiled) is net
    assert list(unwrap(compiled).state_dict()) == list(net.state_dict())


HOST_READS = ('item', 'tolist', '__bool__', '__float__', '__int__', '__index__')


def count_host_reads(monkeypatch) -> list[str]:
    """Record every read of a tensor's value into Python (on a GPU: a host sync)."""
    reads: list[str] = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def reading(self, *args, _name=name, _original=original):
            reads.append(_name)
            return _original(self, *args)
        monkeypatch.setattr(torch.Tensor, name, reading)
    return reads


@pytest.mark.parametrize('amp', [None, 'fp16'])
def test_an_iteration_reads_nothing_back_from_the_device(tiny_opt, monkeypatch, amp):
    """With the fused optimizer (default), a training iteration (learning rate, feed, forward,
    backward, step decision, EMA) never reads a tensor value into Python; settling does."""
    from basicsr_lite.models import build_model
    tiny_opt['train'].update(amp=amp, clip_grad_norm=0.5)
    opt = validate_options(tiny_opt, True)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    model = build_model(opt, torch.device('cpu'))
    batch = {'lq': torch.rand(2, 3, 8, 8), 'gt': torch.rand(2, 3, 16, 16)}
    assert_iterations_read_nothing(model, batch, monkeypatch)


def assert_iterations_read_nothing(model, batch: dict, monkeypatch) -> None:
    """Iterations 2..4 (the first creates the optimizer states) read no tensor value into
    Python; the logging that follows does (so the counter does see reads)."""
    model.update_learning_rate(1)
    model.feed_data(batch)
    model.optimize_parameters(1)
    reads = count_host_reads(monkeypatch)
    for it in (2, 3, 4):
        model.update_learning_rate(it)
        model.feed_data(batch)
        model.optimize_parameters(it)
    assert reads == []
    model.settle_steps()
    model.get_current_log()
    assert reads


@pytest.mark.slow
def test_benchmark_train_runs(capsys):
    """tools/benchmark_train.py drives train.py's loop (with the run's hooks) and the bare loop."""
    from tests.conftest import load_tool
    root = Path(__file__).resolve().parent.parent
    opt_file = root / 'options' / 'train' / 'MSRResNet' / 'train_MSRResNet_x4.yml'
    load_tool('benchmark_train').main(['--opt', str(opt_file), '--iters', '2', '--repeats', '1',
                                       '--variants', 'default', '--sizes', '32x2'])
    out = capsys.readouterr().out
    assert '| train_MSRResNet_x4 | 32 x 2 | ' in out and '| train_MSRResNet_x4 | default | ' in out
    assert out.count('torch CPU capability ') == 4  # the machine, with each table
    # the loop's own cost per iteration, and its share of the bare step in the overhead table
    cost = float(re.search(r'the loop adds (-?[\d.]+) ms \(min\)', out).group(1))
    assert -1 < cost < 20
    assert re.search(r'\| \d\.\d{4}x \|\n', out)
