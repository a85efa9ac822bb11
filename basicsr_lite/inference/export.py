"""ONNX export with dynamic batch / height / width, checked with onnxruntime when installed."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from basicsr_lite.errors import UserError, first_line


def export_onnx(net: nn.Module, path: str | Path, in_channels: int = 3, size: int = 64,
                opset: int = 17, dynamic: bool = True) -> None:
    """Trace ``net`` on a ``size`` x ``size`` input and write ``path`` (input 'lq', output 'sr';
    batch, height and width dynamic unless ``dynamic`` is False)."""
    example = torch.rand(1, in_channels, size, size)
    axes = {'lq': {0: 'batch', 2: 'height', 3: 'width'},
            'sr': {0: 'batch', 2: 'out_height', 3: 'out_width'}} if dynamic else None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer warnings about shape arithmetic
        try:
            torch.onnx.export(net.eval(), (example,), str(path), input_names=['lq'],
                              output_names=['sr'], dynamic_axes=axes, opset_version=opset,
                              dynamo=False)
        except Exception as err:  # the exporter raises many types
            raise UserError(f'{net.__class__.__name__} cannot be exported to ONNX: '
                            f'{first_line(err)}') from err


def smooth_random_image(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Image-like test input: upsampled coarse noise. (White noise is far from what SR networks
    see; some released weights, e.g. PAN's, amplify it without bound.)"""
    generator = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    coarse = torch.rand(n, c, max(h // 8, 2), max(w // 8, 2), generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode='bilinear',
                                           align_corners=False)


def verify_onnx(net: nn.Module, path: str | Path, shapes: list[tuple[int, ...]]) -> float:
    """Largest |onnxruntime - torch| over random inputs of ``shapes``; raises if onnxruntime is
    missing (pip install onnxruntime)."""
    try:
        import onnxruntime
    except ImportError as err:
        raise UserError('Checking the export needs onnxruntime: pip install onnxruntime') from err
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    worst = 0.0
    for shape in shapes:
        x = smooth_random_image(shape)
        with torch.no_grad():
            expected = net(x).numpy()
        got = session.run(None, {'lq': x.numpy()})[0]
        if got.shape != expected.shape:
            raise UserError(f'ONNX output shape {got.shape} != torch {expected.shape} for input '
                            f'{shape}: this architecture needs a fixed input size (--static).')
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst
