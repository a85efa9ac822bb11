"""The optimizer-step helper: accumulation, clipping, fp16 scaling, non-finite policy; and the
training options that use it (train.amp, accumulate_grad_batches, clip_grad_norm)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from basicsr_lite.options import validate_options
from basicsr_lite.runtime.step import OptimizerStepper
from basicsr_lite.train import main as train_main
from tests.conftest import write_yaml
from tests.runs import assert_identical, configure, final_weights, load


def tiny_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))


def loss_of(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return (net(x) - x.flip(-1)).abs().mean()


def test_accumulating_two_halves_equals_one_step_on_the_whole_batch():
    x = torch.rand(4, 3, 8, 8)
    whole, halves = tiny_net(), tiny_net()
    one = OptimizerStepper('g', torch.optim.Adam(whole.parameters(), 1e-2), [whole])
    two = OptimizerStepper('g', torch.optim.Adam(halves.parameters(), 1e-2), [halves],
                           accumulate=2)
    for _ in range(3):
        assert one.backward({'l': loss_of(whole, x)}).stepped
        assert not two.backward({'l': loss_of(halves, x[:2])}).stepped  # first micro-batch
        assert two.backward({'l': loss_of(halves, x[2:])}).stepped
    for a, b in zip(whole.parameters(), halves.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_clipping_limits_the_global_gradient_norm():
    net, x = tiny_net(), torch.rand(2, 3, 8, 8)
    before = [p.detach().clone() for p in net.parameters()]
    stepper = OptimizerStepper('g', torch.optim.SGD(net.parameters(), lr=1.0), [net], clip=1e-3)
    result = stepper.backward({'l': 100 * loss_of(net, x)})
    assert result.stepped and float(result.grad_norm) > 1e-3  # the norm before clipping
    update = torch.cat([(p.detach() - b).flatten() for p, b in zip(net.parameters(), before)])
    assert float(update.norm()) == pytest.approx(1e-3, rel=1e-5)  # SGD lr 1: update = -grad


def nan_gradient_loss(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A finite loss whose gradient is NaN (d sqrt(0) = inf, times 0)."""
    out = net(x)
    return loss_of(net, x) + torch.sqrt((out - out).sum())


def test_non_finite_gradient_without_scaler_drops_the_step():
    net, x = tiny_net(), torch.rand(2, 3, 8, 8)
    before = copy.deepcopy(net.state_dict())
    stepper = OptimizerStepper('g', torch.optim.Adam(net.parameters()), [net])
    result = stepper.backward({'l': nan_gradient_loss(net, x)})
    assert result.non_finite and not result.stepped
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())  # nothing leaks into the next step


def test_fp16_scaler_skips_overflowing_steps_itself():
    net, x = tiny_net(), torch.rand(2, 3, 8, 8)
    before = copy.deepcopy(net.state_dict())
    scaler = torch.amp.GradScaler('cpu')
    stepper = OptimizerStepper('g', torch.optim.Adam(net.parameters()), [net], scaler=scaler)
    result = stepper.backward({'l': nan_gradient_loss(net, x)})
    assert result.scaler_skipped and not result.non_finite and not result.stepped
    assert scaler.get_scale() == 65536.0 * 0.5
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert stepper.backward({'l': loss_of(net, x)}).stepped


def test_a_non_finite_micro_batch_drops_the_accumulated_step():
    net, x = tiny_net(), torch.rand(2, 3, 8, 8)
    before = copy.deepcopy(net.state_dict())
    stepper = OptimizerStepper('g', torch.optim.Adam(net.parameters()), [net], accumulate=2)
    assert not stepper.backward({'l': loss_of(net, x) * float('nan')}).non_finite
    result = stepper.backward({'l': loss_of(net, x)})
    assert result.non_finite and not result.stepped
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_accumulation_in_training_equals_the_doubled_batch(tiny_opt, tmp_path):
    """batch 2 x 2 accumulated == batch 4: the sampler hands out the same samples per step."""
    results = []
    for batch, accumulate in ((4, 1), (2, 2)):
        opt = configure(tiny_opt, tmp_path / f'b{batch}', 6, 3)
        opt['datasets']['train']['batch_size_per_gpu'] = batch
        opt['train']['accumulate_grad_batches'] = accumulate
        assert train_main(['-opt', str(write_yaml(tmp_path / f'b{batch}.yml', opt))]) == 0
        results.append(final_weights(tmp_path / f'b{batch}'))
    for name, value in results[0]['params'].items():
        torch.testing.assert_close(results[1]['params'][name], value, atol=1e-5, rtol=1e-4)
    log = next((tmp_path / 'b2').glob('train_*.log')).read_text()
    assert 'batch 2 x 2 accumulated x 1 process(es), 1 iters per epoch, 6 iters = 6 epochs.' in log


@pytest.mark.parametrize('amp', ['bf16', 'fp16'])
def test_amp_resume_is_exact(tiny_opt, tmp_path, amp):
    """AMP on the CPU: 8 iterations straight == 4 + resume + 4, bitwise; fp16's GradScaler
    state is in the training state."""
    tiny_opt['train']['amp'] = amp
    tiny_opt['train']['clip_grad_norm'] = {'net_g': 0.5}
    straight = configure(tiny_opt, tmp_path / 'straight', 8, 4)
    assert train_main(['-opt', str(write_yaml(tmp_path / 's.yml', straight))]) == 0
    run = configure(tiny_opt, tmp_path / 'run', 4, 4)
    run['train']['scheduler']['periods'] = [8]
    assert train_main(['-opt', str(write_yaml(tmp_path / 'a.yml', run))]) == 0
    run['train']['total_iter'] = 8
    assert train_main(['-opt', str(write_yaml(tmp_path / 'b.yml', run)), '--auto_resume']) == 0
    assert_identical(final_weights(tmp_path / 'straight'), final_weights(tmp_path / 'run'))
    state = load(tmp_path / 'run' / 'training_states' / '4.state')
    assert set(state['scalers']) == ({'g'} if amp == 'fp16' else set())
    full = final_weights(tmp_path / 'straight')['params']
    tiny_opt['train']['amp'] = None
    plain = configure(tiny_opt, tmp_path / 'fp32', 8, 4)
    assert train_main(['-opt', str(write_yaml(tmp_path / 'p.yml', plain))]) == 0
    fp32 = final_weights(tmp_path / 'fp32')['params']
    assert any(not torch.equal(full[k], fp32[k]) for k in full)  # AMP really was on


def problems(opt: dict) -> str:
    with pytest.raises(ValueError) as err:
        validate_options(opt, is_train=True, check_paths=False)
    return str(err.value)


def test_step_options_are_validated(tiny_opt):
    tiny_opt['train'].update(amp='fp32', accumulate_grad_batches=0,
                             clip_grad_norm={'net_d': 1.0})
    message = problems(tiny_opt)
    assert "train.amp: 'fp32' is not one of [None, 'bf16', 'fp16', 'auto']" in message
    assert 'train.accumulate_grad_batches: must be > 0; got 0.' in message
    assert "train.clip_grad_norm: 'net_d' is not a network of SRModel (its networks: net_g)" \
        in message
    tiny_opt['train'].update(amp='bf16', accumulate_grad_batches=2, clip_grad_norm=-1)
    assert 'train.clip_grad_norm: must be > 0; got -1.' in problems(tiny_opt)


@pytest.mark.slow
def test_accumulation_under_torchrun_equals_the_doubled_batch(tiny_opt, tmp_path):
    """2 processes: micro-batches 1 and 2 accumulated under DDP no_sync, then synchronised once,
    equal one step of the doubled batch."""
    from tests.runs import run_to_end
    results = []
    for batch, accumulate in ((4, 1), (2, 2)):
        opt = configure(tiny_opt, tmp_path / f'b{batch}', 4, 2)
        opt['datasets']['train'].update(batch_size_per_gpu=batch, dataset_enlarge_ratio=4)
        opt['train']['accumulate_grad_batches'] = accumulate
        run_to_end(write_yaml(tmp_path / f'b{batch}.yml', opt), nproc=2)
        results.append(final_weights(tmp_path / f'b{batch}'))
    for name, value in results[0]['params'].items():
        torch.testing.assert_close(results[1]['params'][name], value, atol=1e-5, rtol=1e-4)
