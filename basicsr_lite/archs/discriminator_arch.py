"""Discriminators: BasicSR's VGG-style (SRGAN / ESRGAN) and U-Net with spectral norm
(Real-ESRGAN), with BasicSR's state-dict keys; pix2pix's PatchGAN with its ``model.N`` keys."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm

from basicsr_lite.archs.constraints import NetworkNeeds
from basicsr_lite.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class VGGStyleDiscriminator(nn.Module):
    """Strided conv + BatchNorm pairs that halve the size five (input 128) or six (input 256)
    times down to 4x4, then two linear layers to one logit per image."""

    @classmethod
    def needs(cls, args: dict) -> NetworkNeeds:
        return NetworkNeeds(in_ch=args['num_in_ch'], input_size=args['input_size'],
                            size_key='input_size')

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if input_size not in (128, 256):
            raise ValueError(f'input_size must be 128 or 256; got {input_size}.')
        self.input_size = input_size
        widths = [num_feat, num_feat * 2, num_feat * 4, num_feat * 8, num_feat * 8]
        if input_size == 256:
            widths.append(num_feat * 8)
        self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(num_feat, affine=True)
        for level in range(1, len(widths)):
            c_in, c_out = widths[level - 1], widths[level]
            setattr(self, f'conv{level}_0', nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False))
            setattr(self, f'bn{level}_0', nn.BatchNorm2d(c_out, affine=True))
            setattr(self, f'conv{level}_1', nn.Conv2d(c_out, c_out, 4, 2, 1, bias=False))
            setattr(self, f'bn{level}_1', nn.BatchNorm2d(c_out, affine=True))
        self.levels = len(widths)
        self.linear1 = nn.Linear(num_feat * 8 * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f'VGGStyleDiscriminator(input_size={self.input_size}) needs '
                             f'{self.input_size}x{self.input_size} inputs (gt_size); got '
                             f'{tuple(x.shape[-2:])}.')
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for level in range(1, self.levels):
            for half in (0, 1):
                conv, bn = getattr(self, f'conv{level}_{half}'), getattr(self, f'bn{level}_{half}')
                feat = self.lrelu(bn(conv(feat)))
        feat = self.lrelu(self.linear1(feat.flatten(1)))
        return self.linear2(feat)


@ARCH_REGISTRY.register()
class UNetDiscriminatorSN(nn.Module):
    """A U-Net that gives one logit per pixel: three strided convs down, three bilinear x2
    steps up with (optional) skip connections, spectral norm on the inner convs."""

    @classmethod
    def needs(cls, args: dict) -> NetworkNeeds:
        """Three halvings and three doublings: sizes divisible by 8."""
        return NetworkNeeds(in_ch=args['num_in_ch'], input_multiple=8)

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64,
                 skip_connection: bool = True) -> None:
        super().__init__()
        self.skip_connection = skip_connection
        nf = num_feat

        def sn_conv(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Module:
            return spectral_norm(nn.Conv2d(c_in, c_out, kernel, stride, 1, bias=False))

        self.conv0 = nn.Conv2d(num_in_ch, nf, 3, 1, 1)
        self.conv1 = sn_conv(nf, nf * 2, 4, 2)
        self.conv2 = sn_conv(nf * 2, nf * 4, 4, 2)
        self.conv3 = sn_conv(nf * 4, nf * 8, 4, 2)
        self.conv4 = sn_conv(nf * 8, nf * 4, 3, 1)
        self.conv5 = sn_conv(nf * 4, nf * 2, 3, 1)
        self.conv6 = sn_conv(nf * 2, nf, 3, 1)
        self.conv7 = sn_conv(nf, nf, 3, 1)
        self.conv8 = sn_conv(nf, nf, 3, 1)
        self.conv9 = nn.Conv2d(nf, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(f'UNetDiscriminatorSN needs sizes divisible by 8; got '
                             f'{tuple(x.shape[-2:])}.')

        def act(t: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(t, negative_slope=0.2)

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, scale_factor=2, mode='bilinear', align_corners=False)

        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        out = act(self.conv4(up(x3)))
        for conv, skip in ((self.conv5, x2), (self.conv6, x1)):
            if self.skip_connection:
                out = out + skip
            out = act(conv(up(out)))
        if self.skip_connection:
            out = out + x0
        out = act(self.conv7(out))
        out = act(self.conv8(out))
        return self.conv9(out)


NORMS = {'batch': lambda c: nn.BatchNorm2d(c, affine=True),
         'instance': lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=False),
         'none': lambda c: nn.Identity()}  # keeps pix2pix's layer indices


@ARCH_REGISTRY.register()
class NLayerDiscriminator(nn.Module):
    """pix2pix's PatchGAN: ``n_layers`` strided 4x4 convs, one stride-1 conv, and a 1-channel
    4x4 conv: one logit per (70x70 for n_layers 3) patch. Keys ``model.N.*`` as in pix2pix."""

    def __init__(self, num_in_ch: int = 6, num_feat: int = 64, n_layers: int = 3,
                 norm: str = 'batch') -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {sorted(NORMS)}; got '{norm}'.")
        if n_layers < 1:
            raise ValueError(f'n_layers must be >= 1; got {n_layers}.')
        make_norm = NORMS[norm]
        use_bias = norm == 'instance'  # as pix2pix: its InstanceNorm has no affine shift
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 4, 2, 1),
                                   nn.LeakyReLU(0.2, True)]
        width = num_feat
        for n in range(1, n_layers + 1):
            out = num_feat * min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(width, out, 4, stride, 1, bias=use_bias), make_norm(out),
                       nn.LeakyReLU(0.2, True)]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
