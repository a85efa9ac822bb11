"""A pretrained network for the command-line tools: from an option file (``network_g``,
``scale``, ``path.pretrain_network_g``) or from ``--arch`` + ``--weights``."""
from __future__ import annotations

import argparse

import torch
import yaml
from torch import nn

from basicsr_lite.archs import build_network
from basicsr_lite.errors import UserError
from basicsr_lite.models.base_model import load_weights_into
from basicsr_lite.options import load_option_file


def add_network_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--opt', help='option file with network_g / scale / weights')
    parser.add_argument('--arch', help='architecture name (instead of --opt)')
    parser.add_argument('--arch-opt', nargs='*', metavar='KEY=VALUE',
                        help='constructor arguments, e.g. num_feat=64 (values parsed as YAML)')
    parser.add_argument('--scale', type=int)
    parser.add_argument('--weights', help='.pth (BasicSR, bare, wrapped) or .safetensors')
    parser.add_argument('--param-key', default=None, help="'params' or 'params_ema'")


def network_spec(args: argparse.Namespace) -> tuple[dict, int, str | None, str]:
    """(network options, scale, weights path, param key) from --opt or --arch."""
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
        spec[name] = yaml.safe_load(value)
    if 'upscale' not in spec and 'scale' not in spec:
        spec['upscale'] = args.scale
    return spec, args.scale, args.weights, args.param_key or 'params'


def load_pretrained(spec: dict, weights: str | None, param_key: str,
                    device: torch.device = torch.device('cpu'),
                    dtype: torch.dtype | None = None) -> nn.Module:
    """Build ``spec``, load ``weights`` strictly, eval mode, on ``device`` in ``dtype``."""
    if not weights:
        raise UserError('No weights: give --weights (or path.pretrain_network_g in --opt).')
    try:
        net = build_network(spec)
    except (TypeError, ValueError, KeyError) as err:
        raise UserError(f'Cannot build {spec}: {err}') from err
    load_weights_into(net, weights, strict=True, param_key=param_key)
    return net.eval().to(device=device, dtype=dtype)


def in_channels(net: nn.Module) -> int:
    """Input channels of a network: those of its first convolution."""
    return next(m for m in net.modules() if isinstance(m, nn.Conv2d)).in_channels
