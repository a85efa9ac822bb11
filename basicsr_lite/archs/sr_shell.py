"""What the Swin-family restoration transformers (SwinIR, SRFormer, ATD, HAT, DRCT, DAT, RGT)
share around their body, as their authors' code has it: the reconstruction tail chosen by
``upsampler`` (the authors' module names, so the state-dict keys are theirs) and the weight
initialisation. Written once here; each network builds its own body."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from basicsr_lite.archs.arch_util import Upsample
from basicsr_lite.archs.constraints import NetworkNeeds

UPSAMPLERS = ('pixelshuffle', 'pixelshuffledirect', 'nearest+conv', '')
NUM_FEAT = 64  # the tail's width in every one of these networks


class UpsampleOneStep(nn.Sequential):
    """'pixelshuffledirect': one conv to scale^2 x channels, then pixel shuffle (lightweight)."""

    def __init__(self, scale: int, num_feat: int, num_out_ch: int) -> None:
        super().__init__(nn.Conv2d(num_feat, scale**2 * num_out_ch, 3, 1, 1),
                         nn.PixelShuffle(scale))


def shell_needs(cls: type, args: dict) -> NetworkNeeds:
    """A network with this tail: ``in_chans`` in and out; no upsampler (``''``): the output has
    the input's size (the ``needs`` classmethod of SwinIR, SRFormer, ATD)."""
    upsampled = bool(args['upsampler'])
    return NetworkNeeds(in_ch=args['in_chans'], out_ch=args['in_chans'],
                        scale=args['upscale'] if upsampled else 1, in_key='in_chans',
                        out_key='in_chans', scale_key='upscale' if upsampled else 'upsampler')


def check_upsampler(upsampler: str, upscale: int, allowed: tuple[str, ...] = UPSAMPLERS) -> None:
    if upsampler not in allowed:
        raise ValueError(f"upsampler must be one of {', '.join(map(repr, allowed))}; "
                         f"got '{upsampler}'.")
    if upsampler == 'nearest+conv' and upscale != 4:
        raise ValueError("upsampler 'nearest+conv' supports upscale 4 only.")


def build_reconstruction(net: nn.Module, upsampler: str, upscale: int, embed_dim: int,
                         out_chans: int) -> None:
    """Give ``net`` the tail of ``upsampler``: 'pixelshuffle' (classical SR),
    'pixelshuffledirect' (lightweight SR), 'nearest+conv' (real-world SR, x4), '' (restoration
    at scale 1: one conv back to the image)."""
    if upsampler in ('pixelshuffle', 'nearest+conv'):
        net.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, NUM_FEAT, 3, 1, 1),
                                                 nn.LeakyReLU(inplace=True))
    if upsampler == 'pixelshuffle':
        net.upsample = Upsample(upscale, NUM_FEAT)
        net.conv_last = nn.Conv2d(NUM_FEAT, out_chans, 3, 1, 1)
    elif upsampler == 'pixelshuffledirect':
        net.upsample = UpsampleOneStep(upscale, embed_dim, out_chans)
    elif upsampler == 'nearest+conv':
        net.conv_up1 = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
        net.conv_up2 = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
        net.conv_hr = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
        net.conv_last = nn.Conv2d(NUM_FEAT, out_chans, 3, 1, 1)
        net.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
    else:
        net.conv_last = nn.Conv2d(embed_dim, out_chans, 3, 1, 1)


def reconstruct(net: nn.Module, x: torch.Tensor,
                features: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The authors' forward from the normalised image ``x``: shallow features (``conv_first``),
    the body (``features``) with its closing conv and skip, then ``net.upsampler``'s tail;
    at scale 1 ('') the result is added to the input."""
    if net.upsampler == '':
        first = net.conv_first(x)
        return x + net.conv_last(net.conv_after_body(features(first)) + first)
    x = net.conv_first(x)
    x = net.conv_after_body(features(x)) + x
    if net.upsampler == 'pixelshuffle':
        return net.conv_last(net.upsample(net.conv_before_upsample(x)))
    if net.upsampler == 'pixelshuffledirect':
        return net.upsample(x)
    x = net.conv_before_upsample(x)
    x = net.lrelu(net.conv_up1(F.interpolate(x, scale_factor=2, mode='nearest')))
    x = net.lrelu(net.conv_up2(F.interpolate(x, scale_factor=2, mode='nearest')))
    return net.conv_last(net.lrelu(net.conv_hr(x)))


def init_transformer_weights(m: nn.Module) -> None:
    """The authors' ``self.apply(self._init_weights)``: trunc-normal linear weights (std 0.02)
    with zero biases; normalisation layers at weight 1, bias 0."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)):
        nn.init.zeros_(m.bias)
        nn.init.ones_(m.weight)
