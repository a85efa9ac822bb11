"""PatchGAN discriminators with spectral norm for GAN training of efficient SR networks.

``PatchGANDiscriminatorSN``: pix2pix's PatchGAN (Isola et al. 2017) with spectral norm
(Miyato et al. 2018) on every conv instead of batch norm, as traiNNer-redux / neosr train
efficient networks with it. ``MultiscalePatchGANDiscriminatorSN``: pix2pixHD's multiscale
form (Wang et al. 2018): the same topology at full, 1/2 and 1/4 resolution (3x3 average pool,
stride 2). Names, constructor arguments and state-dict keys follow traiNNer-redux's
``patchgan_arch.py`` (``model.N.weight_orig`` / ``weight_u`` / ``weight_v``; ``layers.K.N.*``),
so its discriminator checkpoints load. Unlike traiNNer-redux, whose multiscale D returns the
mean of all logits (one number), ours returns the per-scale logit maps as a list, as
pix2pixHD; the GAN losses (``basicsr_lite.losses.gan_loss``) average their loss over it.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import spectral_norm

from basicsr_lite.registry import ARCH_REGISTRY


def patchgan_layers(input_nc: int, ndf: int, n_layers: int, use_sigmoid: bool
                    ) -> nn.Sequential:
    """A 4x4 stride-2 conv, ``n_layers - 1`` more (width doubling, capped at 512), a 4x4
    stride-1 conv (doubling once more) and a 4x4 conv to one logit per patch; LeakyReLU 0.2
    between, spectral norm on every conv, no normalisation layer. 70x70 patches for
    ``n_layers`` 3."""
    if n_layers < 1:
        raise ValueError(f'n_layers must be >= 1; got {n_layers}.')

    def conv(c_in: int, c_out: int, stride: int) -> nn.Module:
        return spectral_norm(nn.Conv2d(c_in, c_out, kernel_size=4, stride=stride, padding=1))

    layers: list[nn.Module] = [conv(input_nc, ndf, 2), nn.LeakyReLU(0.2, True)]
    width = ndf
    for _ in range(1, n_layers):
        layers += [conv(width, min(width * 2, 512), 2), nn.LeakyReLU(0.2, True)]
        width = min(width * 2, 512)
    layers += [conv(width, min(width * 2, 512), 1), nn.LeakyReLU(0.2, True)]
    layers.append(conv(min(width * 2, 512), 1, 1))
    if use_sigmoid:
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


@ARCH_REGISTRY.register()
class PatchGANDiscriminatorSN(nn.Module):
    """One logit map (N, 1, ~H/8 - 2, ~W/8 - 2 for ``n_layers`` 3); inputs of at least
    3 * 2^n_layers pixels. ``use_sigmoid`` gives probabilities: leave it off with GANLoss,
    which takes logits."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3,
                 use_sigmoid: bool = False) -> None:
        super().__init__()
        self.model = patchgan_layers(input_nc, ndf, n_layers, use_sigmoid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@ARCH_REGISTRY.register()
class MultiscalePatchGANDiscriminatorSN(nn.Module):
    """``num_d`` PatchGANs (separate weights) on the input average-pooled 0, 1, ...,
    ``num_d - 1`` times; returns their logit maps, finest first, as a list."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3,
                 use_sigmoid: bool = False, num_d: int = 3) -> None:
        super().__init__()
        if num_d < 1:
            raise ValueError(f'num_d must be >= 1; got {num_d}.')
        self.num_d = num_d
        self.layers = nn.ModuleList(
            patchgan_layers(input_nc, ndf, n_layers, use_sigmoid) for _ in range(num_d))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index, model in enumerate(self.layers):
            if index:
                x = self.downsample(x)
            outputs.append(model(x))
        return outputs
