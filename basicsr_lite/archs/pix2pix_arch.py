"""pix2pix's generators: the U-Net (``unet_256``: ``num_downs`` 8; ``unet_128``: 7) and the ResNet
(``resnet_9blocks`` / ``resnet_6blocks``), with pix2pix's state-dict keys (``model.model.1...``,
``model.10.conv_block...``) so its released generators load. Outputs end in tanh: [-1, 1].
"""
from __future__ import annotations

import torch
from torch import nn

from basicsr_lite.archs.constraints import NetworkNeeds
from basicsr_lite.archs.discriminator_arch import NORMS
from basicsr_lite.registry import ARCH_REGISTRY


def _norm(norm: str):
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {sorted(NORMS)}; got '{norm}'.")
    return NORMS[norm]


class UNetSkipBlock(nn.Module):
    """One level of the U-Net: down (conv 4x4 s2), the inner levels, up (transposed conv), and
    the level's input concatenated to its output (except at the outermost level)."""

    def __init__(self, outer: int, inner: int, in_ch: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False,
                 innermost: bool = False, norm: str = 'batch', use_dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        make_norm, use_bias = _norm(norm), norm == 'instance'
        down = nn.Conv2d(in_ch or outer, inner, 4, 2, 1, bias=use_bias)
        if outermost:
            layers = [down, submodule, nn.ReLU(True),
                      nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=use_bias), make_norm(outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, make_norm(inner), submodule, nn.ReLU(True),
                      nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=use_bias),
                      make_norm(outer)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out if self.outermost else torch.cat([x, out], 1)


@ARCH_REGISTRY.register()
class UNetGenerator(nn.Module):
    """pix2pix's U-Net: ``num_downs`` halvings (inputs must be divisible by 2^num_downs), widths
    num_feat, 2, 4, then 8 x num_feat for the inner levels."""

    @classmethod
    def needs(cls, args: dict) -> NetworkNeeds:
        return NetworkNeeds(in_ch=args['num_in_ch'], out_ch=args['num_out_ch'], scale=1,
                            input_multiple=2 ** args['num_downs'], size_key='num_downs')

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_downs: int = 8,
                 num_feat: int = 64, norm: str = 'batch', use_dropout: bool = False) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f'num_downs must be >= 5; got {num_downs}.')
        self.num_downs = num_downs
        nf = num_feat
        block = UNetSkipBlock(nf * 8, nf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UNetSkipBlock(nf * 8, nf * 8, submodule=block, norm=norm,
                                  use_dropout=use_dropout)
        for outer in (nf * 4, nf * 2, nf):
            block = UNetSkipBlock(outer, outer * 2, submodule=block, norm=norm)
        self.model = UNetSkipBlock(num_out_ch, nf, in_ch=num_in_ch, submodule=block,
                                   outermost=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        step = 2 ** self.num_downs
        if x.shape[-2] % step or x.shape[-1] % step:
            raise ValueError(f'UNetGenerator(num_downs={self.num_downs}) needs sizes divisible '
                             f'by {step}; got {tuple(x.shape[-2:])}.')
        return self.model(x)


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str, use_dropout: bool, use_bias: bool) -> None:
        super().__init__()
        make_norm = _norm(norm)
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), make_norm(dim),
                  nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), make_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


@ARCH_REGISTRY.register()
class ResNetGenerator(nn.Module):
    """pix2pix / CycleGAN's ResNet generator: 7x7 conv, two stride-2 convs, ``n_blocks``
    residual blocks at 4 x num_feat, two transposed convs back, 7x7 conv + tanh."""

    @classmethod
    def needs(cls, args: dict) -> NetworkNeeds:
        """Two stride-2 convs and two transposed convs back: sizes divisible by 4."""
        return NetworkNeeds(in_ch=args['num_in_ch'], out_ch=args['num_out_ch'], scale=1,
                            input_multiple=4)

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 n_blocks: int = 9, norm: str = 'batch', use_dropout: bool = False) -> None:
        super().__init__()
        make_norm, use_bias = _norm(norm), norm == 'instance'
        nf = num_feat
        layers: list[nn.Module] = [nn.ReflectionPad2d(3),
                                   nn.Conv2d(num_in_ch, nf, 7, bias=use_bias), make_norm(nf),
                                   nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(nf * mult, nf * mult * 2, 3, 2, 1, bias=use_bias),
                       make_norm(nf * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(nf * 4, norm, use_dropout, use_bias) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(nf * mult, nf * mult // 2, 3, 2, 1, output_padding=1,
                                          bias=use_bias),
                       make_norm(nf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(nf, num_out_ch, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % 4 or x.shape[-1] % 4:
            raise ValueError(f'ResNetGenerator needs sizes divisible by 4; got '
                             f'{tuple(x.shape[-2:])}.')
        return self.model(x)
