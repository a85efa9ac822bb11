"""Speed claims checked on more than one model: no host sync per iteration for SRModel, ESRGAN
(SRGANModel / ESRGANModel) and Real-ESRGAN; with ``train.channels_last`` the inputs the network
receives, in training and in validation, are NHWC (not only the network's weights)."""
from __future__ import annotations

import copy

import pytest
import torch

from basicsr_lite.archs.msrresnet_arch import MSRResNet
from basicsr_lite.models import build_model
from basicsr_lite.options import validate_options
from tests.runs import configure, train_in_process
from tests.test_gan_models import GAN_TRAIN as ESRGAN_TRAIN
from tests.test_realesrgan_models import GAN_TRAIN as REALESRGAN_TRAIN
from tests.test_realesrgan_models import synthetic_data_opt, training_batch
from tests.test_speed import assert_iterations_read_nothing


def built(opt: dict):
    opt = validate_options(opt, True)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    torch.manual_seed(0)
    return build_model(opt, torch.device('cpu'))


def esrgan_opt(tiny_opt: dict, model_type: str) -> dict:
    opt = copy.deepcopy(tiny_opt)
    opt['model_type'] = model_type
    opt['network_d'] = {'type': 'UNetDiscriminatorSN', 'num_feat': 4}
    opt['train'].update(copy.deepcopy(ESRGAN_TRAIN))
    return opt


def realesrgan_opt(tiny_opt: dict) -> dict:
    opt = synthetic_data_opt(tiny_opt, 'RealESRGANModel')
    opt['network_d'] = {'type': 'UNetDiscriminatorSN', 'num_feat': 4}
    opt['train'].update(copy.deepcopy(REALESRGAN_TRAIN))
    return opt


SLOW = pytest.mark.slow  # (several seconds each on 2 CPU cores; one case of each stays fast)


@pytest.mark.parametrize('model_type, amp', [
    ('ESRGANModel', None), pytest.param('ESRGANModel', 'fp16', marks=SLOW),
    pytest.param('SRGANModel', None, marks=SLOW), pytest.param('SRGANModel', 'fp16', marks=SLOW)])
def test_an_esrgan_iteration_reads_nothing_back(tiny_opt, random_vgg, monkeypatch, model_type,
                                                amp):
    random_vgg('conv2_2')
    opt = esrgan_opt(tiny_opt, model_type)
    opt['train'].update(amp=amp, clip_grad_norm=0.5)
    batch = {'lq': torch.rand(2, 3, 8, 8), 'gt': torch.rand(2, 3, 16, 16)}
    assert_iterations_read_nothing(built(opt), batch, monkeypatch)


@pytest.mark.parametrize('amp', [None, pytest.param('fp16', marks=SLOW)])
def test_a_realesrgan_iteration_reads_nothing_back(tiny_opt, monkeypatch, amp):
    """Synthesis on the device (blur, resize, noise, JPEG, the pool) included."""
    opt = realesrgan_opt(tiny_opt)
    opt['train'].update(amp=amp, clip_grad_norm=0.5)
    assert_iterations_read_nothing(built(opt), training_batch(), monkeypatch)


@pytest.mark.parametrize('channels_last', [True, pytest.param(False, marks=SLOW)])
def test_the_network_receives_nhwc_inputs_in_training_and_validation(tiny_opt, tmp_path,
                                                                     monkeypatch, channels_last):
    """Every call of the network (net_g in training, its EMA copy in validation) records the
    memory order of its input; the NCHW run is the control."""
    seen: list[tuple[bool, bool]] = []  # (training, input is NHWC and not NCHW)
    forward = MSRResNet.forward

    def recording(self, x):
        seen.append((self.training, x.is_contiguous(memory_format=torch.channels_last)
                     and not x.is_contiguous()))
        return forward(self, x)
    monkeypatch.setattr(MSRResNet, 'forward', recording)
    opt = configure(tiny_opt, tmp_path / 'run', 2, 2)
    opt['train'].update(channels_last=channels_last, optimizer_impl='for_loop')
    opt['val']['val_freq'] = 1  # a validation at iteration 1, and the final one at 2
    assert train_in_process(tmp_path, opt) == 0
    training = [nhwc for mode, nhwc in seen if mode]
    validation = [nhwc for mode, nhwc in seen if not mode]
    assert len(training) == 2  # two iterations of batch 2
    assert len(validation) >= 4  # two images, twice (the bicubic baseline calls no network)
    assert set(training) == set(validation) == {channels_last}
