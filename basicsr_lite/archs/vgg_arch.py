"""VGG16 / VGG19 feature extractor in torchvision's layout (``features.N.weight``), without
torchvision: ImageNet weights come from a file, the torch hub cache, or a download.

Layers are named as in BasicSR (``conv1_1``, ``relu1_1``, ``pool1``, ... ``conv5_4``).
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch
from torch import nn

from basicsr_lite.errors import UserError
from basicsr_lite.runtime.weights import load_torch

logger = logging.getLogger('basicsr_lite')

BLOCKS = {'vgg16': (2, 2, 3, 3, 3), 'vgg19': (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)
# torchvision's ImageNet releases: file name and (where known) the full sha256.
RELEASES = {
    'vgg16': ('vgg16-397923af.pth', None),
    'vgg19': ('vgg19-dcbb9e9d.pth',
              'dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44'),
    'alexnet': ('alexnet-owt-7be5be79.pth',
                '7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02'),
}
DOWNLOAD_ROOT = 'https://download.pytorch.org/models/'
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def layer_names(vgg_type: str) -> list[str]:
    """Names of the modules of ``features``, in order (conv, relu per conv; a pool per block)."""
    names = []
    for block, convs in enumerate(BLOCKS[vgg_type], 1):
        for i in range(1, convs + 1):
            names += [f'conv{block}_{i}', f'relu{block}_{i}']
        names.append(f'pool{block}')
    return names


def hub_weight_path(vgg_type: str) -> Path:
    """Where torchvision (torch.hub) keeps the ImageNet weights of ``vgg_type`` (or of
    'alexnet')."""
    return Path(torch.hub.get_dir()) / 'checkpoints' / RELEASES[vgg_type][0]


def imagenet_state_dict(vgg_type: str, path: str | None = None,
                        option: str = 'give the loss a vgg_weights path') -> dict:
    """torchvision's ImageNet weights of ``vgg_type`` (or 'alexnet'): ``path`` if given, else
    the torch hub cache, else a download into it. Read weights-only; a file whose sha256
    differs from the release is used with a warning. ``option``: how else to give the file
    (for the error message)."""
    name, sha256 = RELEASES[vgg_type]
    target = Path(path) if path else hub_weight_path(vgg_type)
    if not target.is_file():
        if path:
            raise UserError(f'ImageNet weights file {path} does not exist.')
        _download(DOWNLOAD_ROOT + name, target, sha256, option)
    if sha256 is not None and not os.environ.get('BASICSR_LITE_SKIP_VGG_HASH'):
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        if digest != sha256:
            logger.warning(f'{target} is not torchvision\'s {name} (sha256 {digest[:12]}... '
                           f'instead of {sha256[:12]}...): perceptual losses and metrics will not '
                           f'mean what they mean with ImageNet weights.')
    return load_torch(target)


def _download(url: str, target: Path, sha256: str | None, option: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(target), progress=False)
    except Exception as err:  # no network, proxy, disk: all mean "put the file there yourself"
        check = f' (sha256 {sha256})' if sha256 else ''
        raise UserError(
            f'The ImageNet weights {target.name} are not available: not at {target} and the '
            f'download from {url} failed ({type(err).__name__}: {err}). Download that file'
            f'{check} on a machine with internet and put it at {target} (or set TORCH_HOME, or '
            f'{option}).') from err


class VGGFeatureExtractor(nn.Module):
    """VGG ``features`` up to the deepest requested layer; ``forward`` returns
    ``{layer name: output}`` for ``layer_name_list``. Frozen (no gradients to its weights).

    ``use_input_norm``: normalise [0, 1] inputs with ImageNet's mean / std; ``range_norm``:
    inputs are in [-1, 1] (mapped to [0, 1] first). ``pretrained``: None (random: tests),
    'imagenet' (torchvision's weights, see :func:`imagenet_state_dict`) or a file path.
    """

    def __init__(self, layer_name_list: list[str], vgg_type: str = 'vgg19',
                 use_input_norm: bool = True, range_norm: bool = False,
                 pretrained: str | None = 'imagenet', remove_pooling: bool = False,
                 weights_hint: str = 'give the loss a vgg_weights path') -> None:
        super().__init__()
        if vgg_type not in BLOCKS:
            raise ValueError(f"vgg_type must be one of {sorted(BLOCKS)}; got '{vgg_type}'.")
        names = layer_names(vgg_type)
        unknown = [n for n in layer_name_list if n not in names]
        if unknown:
            raise ValueError(f'unknown {vgg_type} layer(s) {unknown}; valid: {", ".join(names)}.')
        self.layer_name_list = list(layer_name_list)
        last = max(names.index(n) for n in layer_name_list)
        self.names = names[:last + 1]
        modules: list[nn.Module] = []
        channels = 3
        for name in self.names:
            if name.startswith('conv'):
                width = WIDTHS[int(name[4]) - 1]
                modules.append(nn.Conv2d(channels, width, 3, 1, 1))
                channels = width
            elif name.startswith('relu'):
                modules.append(nn.ReLU(inplace=False))
            else:
                modules.append(nn.Identity() if remove_pooling else nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*modules)
        if pretrained is not None:
            state = imagenet_state_dict(vgg_type, None if pretrained == 'imagenet' else
                                        pretrained, weights_hint)
            own = {k: v for k, v in state.items() if k.startswith('features.') and
                   int(k.split('.')[1]) < len(modules)}
            self.load_state_dict(own, strict=False)
            missing = set(self.state_dict()) - set(own)
            if missing:
                raise UserError(f'The VGG weights lack {sorted(missing)[:4]}: not a torchvision '
                                f'{vgg_type} state dict.')
        self.use_input_norm, self.range_norm = use_input_norm, range_norm
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> 'VGGFeatureExtractor':
        return super().train(False)  # always eval: no dropout / BN here, but stay explicit

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        out = {}
        for name, module in zip(self.names, self.features):
            x = module(x)
            if name in self.layer_name_list:
                out[name] = x
        return out
