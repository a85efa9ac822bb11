"""Checks of an exported ONNX file: its output against PyTorch's on real images, and the op types
that deployment converters (TensorRT, NCNN) are known to reject or restrict.

onnxruntime's CPU provider runs fp32 and fp16 graphs; bf16 graphs only in part (``OnnxRunner``).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from basicsr_lite.errors import UserError
from basicsr_lite.utils.img_util import bgr2y, imread, img2tensor

DEMO_IMAGES = Path(__file__).resolve().parents[2] / 'datasets/demo/val_LR_bicubic/X4'

# Op types that deployment converters reject or restrict, as their own documentation and issue
# trackers say (TensorRT and NCNN are not installed here: nothing below was run):
# - TensorRT: onnx-tensorrt's docs/operators.md (TensorRT 9.2 / 10.x support matrices):
#   GridSample FP32 / FP16 only (no BF16) and absent before TensorRT 8.5; If: the two branches'
#   outputs must have broadcastable shapes; Resize: no 'cubic' mode.
# - NCNN: its ONNX converter onnx2ncnn stops with "GridSample not supported yet!" (Tencent/ncnn
#   #5101), "Einsum not supported yet!" (#2065), "Shape not supported yet!" / "Unsupported Resize
#   scales and sizes are all empty!" for Resize sizes computed from the input shape (#3498); ncnn
#   has no control-flow layer for If / Loop. Its newer converter pnnx maps GridSample and Einsum
#   from the PyTorch model, not from ONNX.
CONVERTER_NOTES = {
    'GridSample': 'NCNN onnx2ncnn: no; TensorRT: >= 8.5, fp32/fp16 only',
    'Einsum': 'NCNN onnx2ncnn: no',
    'If': 'NCNN: no; TensorRT: restricted',
    'Loop': 'NCNN: no',
    'Scan': 'NCNN: no',
}
DYNAMIC_RESIZE = 'Resize with sizes/scales from the input shape'
DYNAMIC_RESIZE_NOTE = 'NCNN onnx2ncnn: no'
CUBIC_RESIZE_NOTE = 'TensorRT: no cubic Resize'


def _nodes(graph) -> list:
    """Every node of ``graph`` and of its subgraphs (If / Loop bodies)."""
    import onnx
    found = []
    for node in graph.node:
        found.append(node)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                found += _nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    found += _nodes(sub)
    return found


def converter_flags(path: str | Path) -> dict[str, str]:
    """{what: note} for the op types of the file at ``path`` that TensorRT / NCNN reject or
    restrict (``CONVERTER_NOTES``), a Resize whose scales or sizes are computed at run time (not
    a constant), and a cubic Resize."""
    import onnx
    model = onnx.load(str(path))
    constants = {init.name for init in model.graph.initializer}
    nodes = _nodes(model.graph)
    constants |= {out for n in nodes if n.op_type == 'Constant' for out in n.output}
    flags = {n.op_type: CONVERTER_NOTES[n.op_type] for n in nodes if n.op_type in CONVERTER_NOTES}
    for node in nodes:
        if node.op_type != 'Resize':
            continue
        size_inputs = [name for name in list(node.input)[2:4] if name]
        if any(name not in constants for name in size_inputs):
            flags[DYNAMIC_RESIZE] = DYNAMIC_RESIZE_NOTE
        if any(a.name == 'mode' and a.s == b'cubic' for a in node.attribute):
            flags['Resize (cubic)'] = CUBIC_RESIZE_NOTE
    return flags


def op_types(path: str | Path) -> set[str]:
    import onnx
    return {n.op_type for n in _nodes(onnx.load(str(path)).graph)}


def bf16_as_fp32(model):
    """A copy of ``model`` with every bfloat16 tensor (initializers, constants, casts, inputs and
    outputs) in float32: the bf16-rounded weights, computed in fp32."""
    import onnx
    from onnx import numpy_helper
    bf16, fp32 = onnx.TensorProto.BFLOAT16, onnx.TensorProto.FLOAT
    model = copy.deepcopy(model)

    def widen(tensor) -> None:
        if tensor.data_type == bf16:
            array = numpy_helper.to_array(tensor).astype(np.float32)
            tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))

    def visit(graph) -> None:
        for tensor in graph.initializer:
            widen(tensor)
        for value in [*graph.input, *graph.output]:
            if value.type.tensor_type.elem_type == bf16:
                value.type.tensor_type.elem_type = fp32
        del graph.value_info[:]
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    widen(attr.t)
                elif attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g)
                elif node.op_type in ('Cast', 'CastLike') and attr.name == 'to' and attr.i == bf16:
                    attr.i = fp32

    visit(model.graph)
    return model


class OnnxRunner:
    """Runs an exported file in onnxruntime's CPU provider. bf16 files: onnxruntime has no CPU
    bfloat16 Conv ("Could not find an implementation for Conv(22)", onnxruntime 1.32), so the
    file is checked by ``onnx.checker`` (full) and run with its bf16 weights in fp32
    (``bf16_as_fp32``): the wiring and the weights' rounding are checked, not the rounding of
    bf16 activations (ONNX's numpy reference evaluator runs bf16 but also accumulates in bf16,
    which no bf16 hardware does: on IMDN x4 it is 20x further from fp32 than PyTorch's bf16)."""

    def __init__(self, path: str | Path):
        import onnx
        try:
            import onnxruntime
        except ImportError as err:
            raise UserError('Checking the export needs onnxruntime: pip install onnxruntime'
                            ) from err
        model = onnx.load(str(path))
        self.elem_type = model.graph.input[0].type.tensor_type.elem_type
        self.engine = 'onnxruntime CPU'
        if self.elem_type == onnx.TensorProto.BFLOAT16:
            onnx.checker.check_model(model, full_check=True)
            model = bf16_as_fp32(model)
            self.elem_type = onnx.TensorProto.FLOAT
            self.engine = ('no CPU bf16 kernels: onnx.checker (full), then onnxruntime CPU '
                           'on the bf16 weights in fp32')
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4  # its errors come back as exceptions (not logged twice)
        self._session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                                     providers=['CPUExecutionProvider'])

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        """The output for ``x`` (converted to the file's input type), as fp32."""
        import onnx
        array = x.float().numpy().astype(onnx.helper.tensor_dtype_to_np_dtype(self.elem_type))
        return np.asarray(self._session.run(None, {'lq': array})[0]).astype(np.float32)


def pad_to_multiple(x: torch.Tensor, multiple: int = 1, min_size: int = 1) -> torch.Tensor:
    """``x`` padded at the bottom / right (reflect, replicate where reflect cannot reach) to
    sides that are multiples of ``multiple`` and at least ``min_size``, as inference pads."""
    h, w = x.shape[-2:]
    pad_h = -(-max(h, min_size) // multiple) * multiple - h
    pad_w = -(-max(w, min_size) // multiple) * multiple - w
    if not (pad_h or pad_w):
        return x
    mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def default_check_images() -> list[Path]:
    """The two validation LR images of ``datasets/demo`` (a source checkout), else []."""
    return sorted(DEMO_IMAGES.glob('*.png'))[:2] if DEMO_IMAGES.is_dir() else []


def load_check_image(path: str | Path, channels: int) -> torch.Tensor:
    """1 x C x H x W in [0, 1]: RGB for 3 channels, Y (BT.601) for 1."""
    img = imread(path, float32=True)  # BGR in [0, 1]
    if channels == 1:
        return torch.from_numpy(bgr2y(img * 255) / 255)[None, None].float()
    if channels != 3:
        raise UserError(f'--check-images: the network takes {channels} channels; give '
                        f'--no-check, or check on random inputs (no images).')
    return img2tensor(img, bgr2rgb=True, float32=True)[None]


@dataclass
class ImageCheck:
    name: str
    shape: tuple[int, ...]
    max_diff: float
    psnr: float  # between the two outputs clamped to [0, 1], in dB
    peak: float  # max |PyTorch output|

    def line(self) -> str:
        psnr = 'inf' if math.isinf(self.psnr) else f'{self.psnr:.2f} dB'
        return (f'{self.name} {"x".join(map(str, self.shape[-2:]))}: max |diff| '
                f'{self.max_diff:.2e}, PSNR between the outputs {psnr}')


def compare_on(net: nn.Module, runner: OnnxRunner, name: str, x: torch.Tensor) -> ImageCheck:
    """PyTorch (fp32, ``net`` as given) vs the ONNX file on ``x``."""
    with torch.no_grad():
        expected = net(x.float()).float().numpy()
    got = runner(x)
    if got.shape != expected.shape:
        raise UserError(f'ONNX output shape {got.shape} != torch {expected.shape} for input '
                        f'{tuple(x.shape)}: this architecture needs a fixed input size (--static).')
    diff = np.abs(got - expected)
    mse = float(np.mean((np.clip(got, 0, 1) - np.clip(expected, 0, 1)) ** 2))
    psnr = float('inf') if mse == 0 else 10 * math.log10(1 / mse)
    return ImageCheck(name, tuple(x.shape), float(np.nan_to_num(diff, nan=np.inf).max()), psnr,
                      float(np.abs(expected).max()))
