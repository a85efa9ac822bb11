"""ONNX export with dynamic batch / height / width in fp32, fp16 or bf16, checked with
onnxruntime when installed (``onnx_check.py`` compares it with PyTorch on images)."""
from __future__ import annotations

import contextlib
import copy
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from basicsr_lite.errors import UserError, first_line


PRECISIONS = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}
DEFAULT_OPSET = 17
# ONNX admits bfloat16 in Conv (and most arithmetic) from opset 22 on; before, the checker and
# onnxruntime reject the graph ("unsupported type: tensor(bfloat16)").
MIN_OPSET = {'bf16': 22}


def default_opset(precision: str) -> int:
    return max(DEFAULT_OPSET, MIN_OPSET.get(precision, 0))


@contextlib.contextmanager
def _stdout_silenced():
    """The exporter's C++ side prints the whole TorchScript graph to stdout (file descriptor 1)
    when it fails; the error it raises says what failed."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, 'w') as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def export_onnx(net: nn.Module, path: str | Path, in_channels: int = 3, size: int = 64,
                opset: int = DEFAULT_OPSET, dynamic: bool = True, precision: str = 'fp32') -> None:
    """Trace ``net`` on a ``size`` x ``size`` input and write ``path`` (input 'lq', output 'sr';
    batch, height and width dynamic unless ``dynamic`` is False). fp16 / bf16: a copy of the
    network is converted to that dtype and traced on an input of it, so the file's weights, input
    and output are in that precision (as chaiNNer's fp16 ONNX files are)."""
    if precision not in PRECISIONS:
        raise UserError(f"precision '{precision}': expected one of {', '.join(PRECISIONS)}.")
    if opset < MIN_OPSET.get(precision, 0):
        raise UserError(f'{precision} needs ONNX opset {MIN_OPSET[precision]} or later (bfloat16 '
                        f'Conv is not in earlier opsets); got --opset {opset}.')
    dtype = PRECISIONS[precision]
    if dtype != torch.float32:
        net = copy.deepcopy(net).to(dtype)
    example = torch.rand(1, in_channels, size, size).to(dtype)
    axes = {'lq': {0: 'batch', 2: 'height', 3: 'width'},
            'sr': {0: 'batch', 2: 'out_height', 3: 'out_width'}} if dynamic else None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), _stdout_silenced():
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
