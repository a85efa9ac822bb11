"""LPIPS v0.1 (Zhang et al., CVPR 2018): the distance of two images in the unit-normalised
features of an ImageNet network, weighted per channel by learned 1x1 "lin" layers (lower is
more similar).

``d(x, y) = sum_l mean_hw( w_l . (n(f_l(x)) - n(f_l(y)))^2 )`` with ``n`` the normalisation of
each feature vector to unit length, after LPIPS' input scaling of [-1, 1] images. Backbones in
torchvision's layout: AlexNet (``alex``: relu1..relu5) and VGG16 (``vgg``: relu1_2, relu2_2,
relu3_3, relu4_3, relu5_3).

Weights: the lin layers are the files the ``lpips`` package ships (``weights/v0.1/<net>.pth``):
pass ``lin_weights``, or put them in ``$BASICSR_LITE_LPIPS_DIR`` or
``~/.cache/basicsr_lite/lpips/``. The backbone is torchvision's ImageNet file: ``backbone_weights``
(a path) or the torch hub cache (downloaded there where there is internet).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from basicsr_lite.archs.vgg_arch import VGGFeatureExtractor, hub_weight_path, imagenet_state_dict
from basicsr_lite.errors import UserError
from basicsr_lite.registry import METRIC_REGISTRY
from basicsr_lite.runtime.weights import load_torch
from basicsr_lite.utils.img_util import border_pair, img2tensor

DEFAULT_LIN_DIR = Path.home() / '.cache' / 'basicsr_lite' / 'lpips'
CHANNELS = {'alex': (64, 192, 384, 256, 256), 'vgg': (64, 128, 256, 512, 512)}
VGG_LAYERS = ['relu1_2', 'relu2_2', 'relu3_3', 'relu4_3', 'relu5_3']
# LPIPS' input scaling of [-1, 1] images (approximately ImageNet's mean / std there)
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
_HINT = 'give calculate_lpips a backbone_weights path'


class AlexNetFeatures(nn.Module):
    """torchvision's AlexNet ``features`` (same module indices and keys); ``forward`` returns
    the outputs of its five ReLUs."""

    RELUS = (1, 4, 7, 9, 11)

    def __init__(self, pretrained: str | None = 'imagenet') -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU())
        if pretrained is not None:
            state = imagenet_state_dict('alexnet', None if pretrained == 'imagenet' else
                                        pretrained, _HINT)
            own = {k: v for k, v in state.items() if k.startswith('features.')}
            missing = set(self.state_dict()) - set(own)
            if missing:
                raise UserError(f'The AlexNet weights lack {sorted(missing)[:4]}: not a '
                                f'torchvision alexnet state dict.')
            self.load_state_dict(own, strict=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self.RELUS:
                outputs.append(x)
        return outputs


def lin_weights_file(net: str, path: str | None = None) -> Path:
    folder = os.environ.get('BASICSR_LITE_LPIPS_DIR')
    target = Path(path) if path else (Path(folder) if folder else DEFAULT_LIN_DIR) / f'{net}.pth'
    if not target.is_file():
        raise UserError(
            f'LPIPS needs its learned lin layers {net}.pth (v0.1, shipped in the lpips package as '
            f'lpips/weights/v0.1/{net}.pth); not found at {target}. Pass lin_weights, set '
            f'BASICSR_LITE_LPIPS_DIR, or copy it to {DEFAULT_LIN_DIR}.')
    return target


class LPIPS(nn.Module):
    """``forward(img, img2)``: N x 3 x H x W RGB in [0, 1] each -> N distances."""

    def __init__(self, net: str = 'alex', lin_weights: str | None = None,
                 backbone_weights: str | None = 'imagenet') -> None:
        super().__init__()
        if net not in CHANNELS:
            raise ValueError(f"net must be one of {sorted(CHANNELS)}; got '{net}'.")
        if net == 'alex':
            self.backbone: nn.Module = AlexNetFeatures(backbone_weights)
        else:
            self.backbone = VGGFeatureExtractor(VGG_LAYERS, 'vgg16', use_input_norm=False,
                                                pretrained=backbone_weights, weights_hint=_HINT)
        lin_file = lin_weights_file(net, lin_weights)
        state = load_torch(lin_file)
        self.lins = nn.ModuleList()
        for k, channels in enumerate(CHANNELS[net]):
            weight = state.get(f'lin{k}.model.1.weight')
            if weight is None or weight.shape != (1, channels, 1, 1):
                raise UserError(f'{lin_file} is not the LPIPS {net} lin file: '
                                f'lin{k}.model.1.weight should be (1, {channels}, 1, 1).')
            lin = nn.Conv2d(channels, 1, 1, bias=False)
            lin.weight.data.copy_(weight)
            self.lins.append(lin)
        self.register_buffer('shift', torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('scale', torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def features(self, img: torch.Tensor) -> list[torch.Tensor]:
        x = ((img * 2 - 1) - self.shift) / self.scale
        out = self.backbone(x)
        return list(out.values()) if isinstance(out, dict) else out

    def forward(self, img: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        distance = img.new_zeros(img.shape[0])
        for lin, a, b in zip(self.lins, self.features(img), self.features(img2)):
            a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
            b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
            distance = distance + lin((a - b) ** 2).mean(dim=(1, 2, 3))
        return distance


@functools.lru_cache(maxsize=4)
def _cached_model(net: str, lin_weights: str, backbone_weights: str, device: str,
                  hub_file: str) -> LPIPS:
    """``hub_file``: where 'imagenet' weights come from now (part of the cache key only)."""
    return LPIPS(net, lin_weights, backbone_weights).to(device)


def _model(net: str, lin_weights: str | None, backbone_weights: str | None,
           device: torch.device) -> LPIPS:
    """One LPIPS per (net, weight files, device), built on first use."""
    if net not in CHANNELS:
        raise ValueError(f"net must be one of {sorted(CHANNELS)}; got '{net}'.")
    hub_file = str(hub_weight_path('alexnet' if net == 'alex' else 'vgg16'))
    return _cached_model(net, str(lin_weights_file(net, lin_weights)),
                         backbone_weights or 'imagenet', str(device), hub_file)


def _crop(t: torch.Tensor, border: int | tuple[int, int]) -> torch.Tensor:
    """Without ``border`` pixels on each side (a pair: rows, columns, as ``crop_border: scale``
    gives for ArbSR)."""
    bh, bw = border_pair(border)
    return t[..., bh:t.shape[-2] - bh, bw:t.shape[-1] - bw]


@METRIC_REGISTRY.register()
def calculate_lpips_pt(img: torch.Tensor, img2: torch.Tensor, crop_border: int | tuple = 0,
                       net: str = 'alex', lin_weights: str | None = None,
                       backbone_weights: str | None = None) -> torch.Tensor:
    """LPIPS of each pair of two N x 3 x H x W RGB batches in [0, 1], on their device."""
    model = _model(net, lin_weights, backbone_weights, img.device)
    with torch.no_grad():
        return model(_crop(img.float(), crop_border), _crop(img2.float(), crop_border))


def bgr_images_as_tensors(img: np.ndarray, img2: np.ndarray, input_order: str
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two 8-bit BGR images (HWC or CHW) as 1CHW RGB tensors in [0, 1], for the metrics that
    score with a network (LPIPS, DISTS)."""
    if input_order not in ('HWC', 'CHW'):
        raise ValueError(f"input_order must be 'HWC' or 'CHW'; got '{input_order}'.")
    if img.shape != img2.shape:
        raise ValueError(f'Image shapes differ: {img.shape} vs {img2.shape}.')
    if input_order == 'CHW':
        img, img2 = img.transpose(1, 2, 0), img2.transpose(1, 2, 0)
    a, b = (img2tensor(x.astype(np.float32) / 255)[None] for x in (img, img2))
    return a, b


@METRIC_REGISTRY.register()
def calculate_lpips(img: np.ndarray, img2: np.ndarray, crop_border: int | tuple = 0,
                    input_order: str = 'HWC', net: str = 'alex', lin_weights: str | None = None,
                    backbone_weights: str | None = None) -> float:
    """LPIPS of two 8-bit BGR images (BasicSR's convention), on the CPU."""
    a, b = bgr_images_as_tensors(img, img2, input_order)
    return float(calculate_lpips_pt(a, b, crop_border, net, lin_weights, backbone_weights)[0])


for _func in (calculate_lpips, calculate_lpips_pt):
    _func.better = 'lower'
calculate_lpips_pt.takes_tensors = True
