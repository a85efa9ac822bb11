"""``network_g: {type: auto}`` and ``--pretrained`` (issue 28): the network and its arguments
come from the weights alone; weights only spandrel knows run in the tools (inference, ONNX
export) and are a clear error in an option file. spandrel comes through
tests/spandrel_support.py (a torchvision stand-in where torchvision is missing)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from basicsr_lite.archs import build_network
from basicsr_lite.errors import OptionError, UserError
from basicsr_lite.options.parse import validate_options
from basicsr_lite.runtime.weights import save_torch
from tests.conftest import load_tool
from tests.runs import train_in_process
from tests.spandrel_support import spandrel  # noqa: F401  (fixture)

MSR = {'type': 'MSRResNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 12, 'num_block': 2,
       'upscale': 2}


def test_type_auto_builds_the_network_of_the_weights_and_trains(tmp_path, tiny_opt):
    net = build_network(MSR)
    save_torch({'state_dict': {f'module.{k}': v for k, v in net.state_dict().items()}},
               tmp_path / 'downloaded.pth')
    tiny_opt['network_g'] = {'type': 'auto'}
    tiny_opt['path'].update(pretrain_network_g=str(tmp_path / 'downloaded.pth'),
                            param_key_g='state_dict')
    opt = validate_options(tiny_opt, is_train=True)
    assert opt['network_g'] == MSR
    tiny_opt['train']['total_iter'] = 1
    assert train_in_process(tmp_path, tiny_opt) == 0


def test_type_auto_without_a_file_is_one_error(tiny_opt):
    tiny_opt['network_g'] = {'type': 'auto'}
    with pytest.raises(OptionError, match=r'network_g.type: auto detects the network from '
                                          r'path.pretrain_network_g, .*\(it is not set\)'):
        validate_options(tiny_opt, is_train=True)


def dncnn_file(spandrel, path):
    """Weights of an architecture that only spandrel has (its DnCNN)."""
    from spandrel.architectures.DnCNN import DnCNN
    save_torch(DnCNN(in_nc=3, out_nc=3, nc=8, nb=8, act_mode='R').state_dict(), path)
    return path


def test_type_auto_with_weights_only_spandrel_knows(spandrel, tmp_path, tiny_opt):
    tiny_opt['network_g'] = {'type': 'auto'}
    tiny_opt['path']['pretrain_network_g'] = str(dncnn_file(spandrel, tmp_path / 'dncnn.pth'))
    with pytest.raises(UserError, match=r'not one of our architectures; spandrel recognises it '
                                        r'as DnCNN x1.*not be trained or tested here'):
        validate_options(tiny_opt, is_train=True)


def image_folder(tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    y, x = np.mgrid[0:20, 0:24]
    img = np.stack([(x * 10) % 255, (y * 12) % 255, (x + y) * 5 % 255], -1).astype(np.uint8)
    cv2.imwrite(str(folder / 'a.png'), img)
    return folder


def test_pretrained_in_inference_and_export(tmp_path):
    net = build_network(MSR)
    save_torch({'params_ema': net.state_dict()}, tmp_path / 'w.pth')
    inference = load_tool('inference')
    assert inference.main(['-i', str(image_folder(tmp_path)), '-o', str(tmp_path / 'out'),
                           '--pretrained', str(tmp_path / 'w.pth'), '--device', 'cpu']) == 0
    assert cv2.imread(str(tmp_path / 'out' / 'a.png')).shape == (40, 48, 3)
    export = load_tool('export_onnx')
    assert export.main(['--pretrained', str(tmp_path / 'w.pth'), '--output',
                        str(tmp_path / 'm.onnx'), '--size', '16']) == 0


def test_pretrained_through_spandrel(spandrel, tmp_path, capsys):
    path = dncnn_file(spandrel, tmp_path / 'dncnn.pth')
    inference = load_tool('inference')
    assert inference.main(['-i', str(image_folder(tmp_path)), '-o', str(tmp_path / 'out'),
                           '--pretrained', str(path), '--device', 'cpu']) == 0
    assert 'DnCNN x1 through spandrel (not one of our architectures' in capsys.readouterr().err
    assert cv2.imread(str(tmp_path / 'out' / 'a.png')).shape == (20, 24, 3)


def test_pretrained_unknown_weights_is_one_error(tmp_path, capsys):
    save_torch({'params': {'foo.weight': torch.zeros(2, 2)}}, tmp_path / 'x.pth')
    inference = load_tool('inference')
    code = inference.main(['-i', str(tmp_path), '-o', str(tmp_path / 'out'),
                           '--pretrained', str(tmp_path / 'x.pth')])
    assert code == 2
    err = capsys.readouterr().err
    assert 'foo.weight' in err
