"""Weight forms, tiling, self-ensemble, and the inference / conversion / ONNX tools."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from basicsr_lite.archs import build_network
from basicsr_lite.prep.synthetic import smooth_image
from basicsr_lite.runtime.weights import (CheckpointError, load_weights, load_weights_into,
                                             save_torch)
from basicsr_lite.runtime.tiling import ensemble_forward, tiled_inference
from basicsr_lite.utils.img_util import img2tensor, tensor2img
from tests.conftest import load_tool

ROOT = Path(__file__).resolve().parent.parent
LOCAL_ARCHS = {
    'EDSR': dict(num_in_ch=3, num_out_ch=3, num_feat=16, num_block=2, upscale=2),
    'MSRResNet': dict(num_feat=16, num_block=2, upscale=2),
    'PAN': dict(num_feat=8, unf=8, num_block=2, upscale=2),
    'RRDBNet': dict(num_in_ch=3, num_out_ch=3, scale=2, num_feat=8, num_block=1,
                    num_grow_ch=4),
}


def tiny_net(arch='MSRResNet'):
    torch.manual_seed(0)
    return build_network({'type': arch, **LOCAL_ARCHS[arch]}).eval()


@pytest.mark.parametrize('arch', sorted(LOCAL_ARCHS))
def test_tiled_equals_untiled_within_one_level(arch):
    net = tiny_net(arch)
    lq = img2tensor(smooth_image(np.random.default_rng(1), 61, 45).astype(np.float32) / 255)[None]
    with torch.no_grad():
        full = tensor2img(net(lq))
    tiled = tensor2img(tiled_inference(net, lq, 2, tile=20, overlap=10))
    assert np.abs(full.astype(int) - tiled.astype(int)).max() <= 1
    as_uint8 = tiled_inference(net, lq, 2, tile=16, overlap=10, as_uint8=True)
    assert as_uint8.dtype == torch.uint8 and as_uint8.shape == (1, 3, 122, 90)


def dihedral_mean(net, x: torch.Tensor) -> torch.Tensor:
    """The x8 self-ensemble written out with torch.rot90 (independent of tiling.py's code)."""
    outs = []
    for flip in (False, True):
        for k in range(4):
            y = torch.rot90(x.flip(-1) if flip else x, k, (-2, -1))
            out = torch.rot90(net(y), -k, (-2, -1))
            outs.append(out.flip(-1) if flip else out)
    return torch.stack(outs).mean(0)


def test_self_ensemble():
    net = tiny_net('EDSR')  # random 3x3 kernels: not symmetric, so flips change its output
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        plain, whole, expected = net(x), ensemble_forward(net, x), dihedral_mean(net, x)
    torch.testing.assert_close(whole, expected, atol=1e-6, rtol=0)
    assert (whole - plain).abs().max() > 1e-3  # a no-op ensemble would fail the line above
    tiled = tiled_inference(net, x, 2, tile=4, overlap=8, ensemble=True)
    torch.testing.assert_close(tiled, whole.clamp(0, 1), atol=1e-5, rtol=0)


@pytest.mark.parametrize('form', ['state_dict', 'model', 'params_ema_fallback'])
def test_weight_wrappers(tmp_path, form):
    net = tiny_net()
    state = {k: torch.randn_like(v) for k, v in net.state_dict().items()}
    content = {'state_dict': {'state_dict': state, 'epoch': 3},
               'model': {'model': {f'module.{k}': v for k, v in state.items()}},
               'params_ema_fallback': {'params': state}}[form]
    save_torch(content, tmp_path / 'w.pth')
    load_weights_into(net, str(tmp_path / 'w.pth'), param_key='params_ema')
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())


def test_safetensors_round_trip_and_loading(tmp_path, capsys):
    pytest.importorskip('safetensors')
    net = tiny_net()
    params = {k: torch.randn_like(v) for k, v in net.state_dict().items()}
    ema = {k: torch.randn_like(v) for k, v in net.state_dict().items()}
    save_torch({'params': params, 'params_ema': ema}, tmp_path / 'net.pth')
    tool = load_tool('convert_weights')
    assert tool.main(['--input', str(tmp_path / 'net.pth'),
                      '--output', str(tmp_path / 'net.safetensors')]) == 0
    loaded = load_weights(tmp_path / 'net.safetensors')
    assert set(loaded) == {'params', 'params_ema'}
    load_weights_into(net, str(tmp_path / 'net.safetensors'), param_key='params_ema')
    assert all(torch.equal(v, ema[k]) for k, v in net.state_dict().items())
    assert tool.main(['--input', str(tmp_path / 'net.safetensors'),
                      '--output', str(tmp_path / 'back.pth')]) == 0
    back = load_weights(tmp_path / 'back.pth')
    assert all(torch.equal(back['params'][k], v) for k, v in params.items())
    assert tool.main(['--input', str(tmp_path / 'net.pth'),
                      '--output', str(tmp_path / 'back.pth')]) == 2  # exists, no --overwrite
    (tmp_path / 'bad.safetensors').write_bytes(b'nonsense')
    with pytest.raises(CheckpointError, match='Cannot read .*bad.safetensors'):
        load_weights(tmp_path / 'bad.safetensors')


def test_inference_tool(tmp_path, capsys):
    net = tiny_net('EDSR')
    save_torch({'params': net.state_dict()}, tmp_path / 'w.pth')
    inputs = tmp_path / 'in'
    inputs.mkdir()
    img = smooth_image(np.random.default_rng(2), 40, 30)
    cv2.imwrite(str(inputs / 'a.png'), img)
    (inputs / 'broken.png').write_bytes(b'xx')
    tool = load_tool('inference')
    code = tool.main(['-i', str(inputs), '-o', str(tmp_path / 'out'), '--arch', 'EDSR',
                      '--scale', '2', '--arch-opt', 'num_in_ch=3', 'num_out_ch=3', 'num_feat=16',
                      'num_block=2', '--weights', str(tmp_path / 'w.pth'), '--tile', '16',
                      '--overlap', '8', '--device', 'cpu'])
    assert code == 1  # one file skipped
    assert 'Skipped: Cannot decode image' in capsys.readouterr().out
    out = cv2.imread(str(tmp_path / 'out' / 'a.png'))
    with torch.no_grad():
        expected = tensor2img(net(img2tensor(img.astype(np.float32) / 255)[None]))
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1  # BGR order, values
    assert tool.main(['-i', str(inputs), '-o', str(tmp_path / 'o2'), '--arch', 'EDSR']) == 2


def test_inference_device_options_that_cannot_work(tmp_path, capsys, monkeypatch):
    save_torch({'params': tiny_net('EDSR').state_dict()}, tmp_path / 'w.pth')
    cv2.imwrite(str(tmp_path / 'a.png'), smooth_image(np.random.default_rng(2), 12, 12))
    tool = load_tool('inference')
    args = ['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'out'), '--arch', 'EDSR',
            '--scale', '2', '--arch-opt', 'num_in_ch=3', 'num_out_ch=3', 'num_feat=16',
            'num_block=2', '--weights', str(tmp_path / 'w.pth')]
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 0)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert tool.main([*args, '--device', 'cuda']) == 2
    assert 'Error: --device cuda: CUDA is not available on this machine' in \
        capsys.readouterr().err
    assert tool.main([*args, '--device', 'gpu0']) == 2
    assert "--device 'gpu0' is not a device name" in capsys.readouterr().err
    assert tool.main([*args, '--device', 'cpu', '--half', 'fp16']) == 0
    assert 'Warning: --half fp16 on the CPU is far slower' in capsys.readouterr().err
    assert tool.main([*args, '--device', 'cpu', '--half', 'bf16']) == 0
    assert 'Warning' not in capsys.readouterr().err


def test_validation_with_tiles_matches_untiled(tiny_opt, tmp_path):
    from basicsr_lite.data import build_dataloader, build_dataset
    from basicsr_lite.engine.validate import validate
    from basicsr_lite.models import build_model
    from basicsr_lite.options import validate_options
    results = []
    for tile in (None, {'size': 8, 'overlap': 8}):
        tiny_opt['val']['tile'] = tile
        opt = validate_options(tiny_opt, True)
        opt.update(is_train=True, dist=False, rank=0, world_size=1)
        torch.manual_seed(0)
        model = build_model(opt, torch.device('cpu'))
        loader = build_dataloader(build_dataset(opt['datasets']['val'], 'val', 2),
                                  opt['datasets']['val'], 'val')
        results.append(validate(model, loader, 'tiny_val', 0).means)
    assert results[0]['psnr'] == pytest.approx(results[1]['psnr'], abs=1e-3)


@pytest.mark.parametrize('arch,extra', [
    ('IMDN', ['num_feat=16', 'num_block=2']),
    ('SwinIR', ['img_size=16', 'window_size=8', 'embed_dim=12', 'depths=[2]', 'num_heads=[2]',
                'upsampler=pixelshuffledirect'])])
def test_export_onnx(tmp_path, capsys, arch, extra):
    pytest.importorskip('onnxruntime')
    args = dict(item.split('=') for item in extra)
    import yaml
    torch.manual_seed(0)
    net = build_network({'type': arch, 'upscale': 2,
                         **{k: yaml.safe_load(v) for k, v in args.items()}})
    save_torch(net.state_dict(), tmp_path / 'w.pth')
    static = ['--static', '--size', '16'] if arch == 'SwinIR' else ['--size', '32']
    code = load_tool('export_onnx').main([
        '--arch', arch, '--scale', '2', '--arch-opt', *extra, '--weights', str(tmp_path / 'w.pth'),
        '--output', str(tmp_path / 'm.onnx'), *static])
    out = capsys.readouterr().out
    assert code == 0, out
    assert 'max |diff|' in out and (tmp_path / 'm.onnx').stat().st_size > 1000


def test_half_precision_path_on_cpu_bf16():
    net = tiny_net('EDSR')
    lq = img2tensor(smooth_image(np.random.default_rng(3), 24, 24).astype(np.float32) / 255)[None]
    full = tiled_inference(net, lq, 2)
    half = tiled_inference(net.to(torch.bfloat16), lq, 2, tile=12, overlap=8,
                           dtype=torch.bfloat16)
    assert half.dtype == torch.float32 and (half - full).abs().max() < 0.05
