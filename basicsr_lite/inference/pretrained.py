"""A pretrained network for the command-line tools: from an option file (``network_g``,
``scale``, ``path.pretrain_network_g``), from ``--arch`` + ``--weights``, or from the weights
alone (``--pretrained``: our architectures detected by ``archs/detection.py``, any other that
spandrel recognises run through spandrel's own network)."""
from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from basicsr_lite.archs import build_network
from basicsr_lite.archs.capabilities import Capability, capability
from basicsr_lite.archs.constraints import network_needs
from basicsr_lite.archs.detection import (detect, detect_network, options_in_metadata,
                                          weights_state, with_scale)
from basicsr_lite.errors import UserError
from basicsr_lite.options import load_option_file
from basicsr_lite.options.yaml_loader import load_yaml
from basicsr_lite.runtime.weights import load_weights_into


def add_network_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--opt', help='option file with network_g / scale / weights')
    parser.add_argument('--arch', help='architecture name (instead of --opt)')
    parser.add_argument('--arch-opt', nargs='*', metavar='KEY=VALUE',
                        help='constructor arguments, e.g. num_feat=64 (values parsed as YAML)')
    parser.add_argument('--scale', type=int)
    parser.add_argument('--weights', help='.pth (BasicSR, bare, wrapped) or .safetensors')
    parser.add_argument('--param-key', default=None, help="'params' or 'params_ema'")
    parser.add_argument('--pretrained', metavar='FILE',
                        help='weights only: the network and its hyper-parameters are detected '
                             'from them (ours, else through spandrel when installed)')

SPANDREL = 'spandrel'  # the type of a network that only spandrel knows (inference / export)


def network_spec(args: argparse.Namespace) -> tuple[dict, int, str | None, str]:
    """(network options, scale, weights path, param key) from --opt, --arch or --pretrained."""
    if getattr(args, 'pretrained', None):
        return pretrained_spec(args.pretrained, args.param_key, args.scale)
    if args.opt:
        opt = load_option_file(args.opt)
        paths = opt.get('path') or {}
        weights = args.weights or paths.get('pretrain_network_g')
        return (opt['network_g'], int(opt.get('scale', 1)), weights,
                args.param_key or paths.get('param_key_g', 'params'))
    if not args.arch or not args.scale:
        raise UserError('Give --opt, or --arch and --scale (and --weights).')
    spec = {'type': args.arch}
    for item in args.arch_opt or []:
        name, _, value = item.partition('=')
        spec[name] = load_yaml(value)  # YAML, with 1e-3 a number as in option files
    if 'upscale' not in spec and 'scale' not in spec:
        spec['upscale'] = args.scale
    return spec, args.scale, args.weights, args.param_key or 'params'


def pretrained_spec(path: str, param_key: str | None,
                    scale: int | None = None) -> tuple[dict, int, str, str | None]:
    """``network_spec`` of ``--pretrained``: named in the file's metadata or detected here,
    else spandrel's network."""
    state = weights_state(path, param_key)
    named = options_in_metadata(path)
    if named is not None or detect(state):
        spec = named or with_scale(detect_network(state, path), scale, path)
        return spec, network_needs(spec).scale or 1, path, param_key
    from basicsr_lite.archs.interop import spandrel_descriptor
    descriptor = spandrel_descriptor(state, path)
    print(f'{path}: {descriptor.architecture.id} x{descriptor.scale} through spandrel (not one '
          f'of our architectures: inference and export only).', file=sys.stderr)
    return ({'type': SPANDREL, 'architecture': descriptor.architecture.id,
             'descriptor': descriptor}, descriptor.scale, path, param_key)


def network_capability(spec: dict) -> Capability:
    """The capability row of ``spec``; for a spandrel network, spandrel's facts."""
    if spec['type'] != SPANDREL:
        return capability(spec)
    descriptor = spec['descriptor']
    req = descriptor.size_requirements
    return Capability(fp16=descriptor.supports_half, bf16=descriptor.supports_bfloat16,
                      size_multiple=req.multiple_of, min_size=req.minimum,
                      facts_from='spandrel')


def load_pretrained(spec: dict, weights: str | None, param_key: str,
                    device: torch.device = torch.device('cpu'),
                    dtype: torch.dtype | None = None) -> nn.Module:
    """Build ``spec``, load ``weights`` strictly, eval mode, on ``device`` in ``dtype``."""
    if not weights:
        raise UserError('No weights: give --weights (or path.pretrain_network_g in --opt).')
    if spec['type'] == SPANDREL:  # spandrel loaded the weights when it recognised them
        return spec['descriptor'].model.eval().to(device=device, dtype=dtype)
    net = build_network(spec, 'network_g')
    load_weights_into(net, weights, strict=True, param_key=param_key)
    return net.eval().to(device=device, dtype=dtype)


def resolve_device(name: str, half: str | None = None) -> torch.device:
    """The device of ``--device`` ('auto': CUDA when available); one that this machine lacks is
    a UserError. ``--half fp16`` on the CPU runs (slowly): it gets a warning."""
    if name == 'auto':
        device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    else:
        try:
            device = torch.device(name)
        except RuntimeError as err:
            raise UserError(f"--device '{name}' is not a device name (expected auto, cpu, cuda "
                            f'or cuda:N).') from err
    if device.type == 'cuda':
        count = torch.cuda.device_count()
        if count == 0:
            raise UserError(f'--device {name}: CUDA is not available on this machine; use '
                            f'--device cpu (or auto).')
        if device.index is not None and device.index >= count:
            raise UserError(f'--device {name}: this machine has {count} CUDA device(s) '
                            f'(cuda:0 to cuda:{count - 1}).')
    if half == 'fp16' and device.type == 'cpu':
        print('Warning: --half fp16 on the CPU is far slower than fp32 (few CPU kernels run in '
              'fp16); leave --half out, or use --half bf16.', file=sys.stderr)
    return device


def in_channels(net: nn.Module) -> int:
    """Input channels of a network: those of its first convolution."""
    return next(m for m in net.modules() if isinstance(m, nn.Conv2d)).in_channels
