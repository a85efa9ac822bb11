"""Pix2pix: paired image-to-image translation with a conditional GAN (Isola et al. 2017).

G (a U-Net or ResNet generator, tanh output) maps the input image to the target; the PatchGAN D
judges (input, output) pairs against (input, target) pairs; G's loss is the GAN term plus
``pixel_opt`` (L1, ``loss_weight: 100`` in the paper); D's two terms are halved. Images are in
[0, 1] in the framework and [-1, 1] inside the networks, as pix2pix normalises them.
"""
from __future__ import annotations

import torch
from torch import nn

from basicsr_lite.models.srgan_model import SRGANModel
from basicsr_lite.registry import MODEL_REGISTRY


class UnitRange(nn.Module):
    """``net`` seen from [0, 1] images: inputs scaled to [-1, 1], outputs back to [0, 1]."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.net(x * 2 - 1) + 1) / 2


@MODEL_REGISTRY.register()
class Pix2pixModel(SRGANModel):
    """``network_g`` (UNetGenerator / ResNetGenerator) + ``network_d`` (NLayerDiscriminator with
    ``num_in_ch`` = input + output channels); ``train``: ``optim_g``, ``optim_d``, ``gan_opt``
    (required), ``pixel_opt`` and the SRGAN keys (``net_d_iters``, ...). ``scale: 1``."""

    def as_generator(self, net: nn.Module, index: int | None = None) -> nn.Module:
        return UnitRange(net)

    def d_input(self, img: torch.Tensor) -> torch.Tensor:
        """The conditional pair: input and (real or generated) output, in [-1, 1]."""
        return torch.cat([self.lq * 2 - 1, img * 2 - 1], 1)

    def adversarial_discriminator_losses(self, real_pred: torch.Tensor, fake_pred: torch.Tensor
                                         ) -> dict[str, torch.Tensor]:
        return {k: v * 0.5 for k, v in
                super().adversarial_discriminator_losses(real_pred, fake_pred).items()}
