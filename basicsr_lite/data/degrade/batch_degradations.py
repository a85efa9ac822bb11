"""Degradations of image batches on the training device (``B x C x H x W`` RGB in [0, 1]).

Random tensors come from an explicit ``torch.Generator`` (its state is saved with the training
state), never from the global RNG. None of these functions reads a value back to the host.
"""
from __future__ import annotations

import cv2
import torch
import torch.nn.functional as F
from torch import nn

# ITU-R BT.601 luma weights (torchvision's rgb_to_grayscale)
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def _pad_for_kernel(img: torch.Tensor, k: int) -> torch.Tensor:
    """Pad by ``k // 2`` for an odd ``k``: reflected borders, or replicated ones for images
    smaller than half the kernel, which reflection cannot pad."""
    if k % 2 == 0:
        raise ValueError(f'The filter kernel size must be odd; got {k}.')
    mode = 'reflect' if k // 2 < min(img.shape[-2:]) else 'replicate'
    return F.pad(img, (k // 2,) * 4, mode=mode)


def filter2d(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate every channel of ``img`` with ``kernel`` (``k x k`` for the whole batch, or
    ``B x k x k``, one per image), with reflected borders (replicated ones for images smaller
    than half the kernel, which reflection cannot pad); the size is kept."""
    k = kernel.shape[-1]
    b, c, h, w = img.shape
    padded = _pad_for_kernel(img, k)
    kernel = kernel.to(img.dtype)
    if kernel.dim() == 2:
        weight = kernel.expand(c, 1, k, k)
        return F.conv2d(padded, weight, groups=c)
    weight = kernel.view(b, 1, 1, k, k).expand(b, c, 1, k, k).reshape(b * c, 1, k, k)
    out = F.conv2d(padded.reshape(1, b * c, h + k - 1, w + k - 1), weight, groups=b * c)
    return out.view(b, c, h, w)


def separable_filter2d(img: torch.Tensor, kernel_1d: torch.Tensor) -> torch.Tensor:
    """:func:`filter2d` with the kernel ``outer(kernel_1d, kernel_1d)``, as two 1-D passes
    (2k instead of k^2 multiplications per pixel)."""
    k, c = kernel_1d.shape[0], img.shape[1]
    padded = _pad_for_kernel(img, k)
    kernel_1d = kernel_1d.to(img.dtype)
    rows = F.conv2d(padded, kernel_1d.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(rows, kernel_1d.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def rgb_to_gray(img: torch.Tensor) -> torch.Tensor:
    """``B x 1 x H x W`` luma of an RGB batch."""
    r, g, b = img.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def quantize(img: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the 8-bit grid (k / 255)."""
    return torch.clamp((img * 255.0).round(), 0, 255) / 255.0


def _per_image(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 1, 1, 1)


def gaussian_noise(img: torch.Tensor, sigma: torch.Tensor, gray: torch.Tensor,
                   generator: torch.Generator) -> torch.Tensor:
    """Additive white Gaussian noise, ``sigma`` (per image, on the 0..255 scale); images with
    ``gray`` = 1 get the same noise in every channel."""
    b, c, h, w = img.shape
    color = torch.randn(img.shape, generator=generator, device=img.device, dtype=img.dtype)
    mono = torch.randn((b, 1, h, w), generator=generator, device=img.device, dtype=img.dtype)
    gray = _per_image(gray)
    return (color * (1 - gray) + mono * gray) * _per_image(sigma) / 255.0


def _shot_noise(img: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Poisson noise of an 8-bit image whose number of photon levels is the number of distinct
    values of the image, rounded up to a power of two (skimage's ``random_noise('poisson')``)."""
    levels = torch.clamp((img * 255.0).round(), 0, 255)
    img = levels / 255.0  # = quantize(img)
    b = img.shape[0]
    levels = levels.long().reshape(b, -1)  # reshape: a channels_last batch is not viewable
    counts = torch.zeros(b, 256, device=img.device).scatter_add_(
        1, levels, torch.ones_like(levels, dtype=torch.float32))
    distinct = (counts > 0).sum(1).to(img.dtype)
    vals = _per_image(torch.exp2(torch.ceil(torch.log2(distinct))))
    return torch.poisson(img * vals, generator=generator) / vals - img


def poisson_noise(img: torch.Tensor, scale: torch.Tensor, gray: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    """Shot noise scaled by ``scale`` (per image); ``gray`` images get the noise of their luma
    in every channel."""
    color = _shot_noise(img, generator)
    mono = _shot_noise(rgb_to_gray(img), generator)
    gray = _per_image(gray)
    return (color * (1 - gray) + mono * gray) * _per_image(scale)


def random_noise(img: torch.Tensor, gaussian_prob: float, sigma_range, poisson_scale_range,
                 gray_prob: float, rng) -> torch.Tensor:
    """Gaussian noise with ``gaussian_prob`` for the batch, else Poisson noise; strength drawn
    per image from its range, gray with ``gray_prob`` per image; clamped to [0, 1]."""
    b = img.shape[0]
    use_gaussian = rng.numpy.uniform() < gaussian_prob
    low, high = sigma_range if use_gaussian else poisson_scale_range
    strength = rng.uniform(b, low, high, img.device)
    gray = (rng.uniform(b, 0.0, 1.0, img.device) < gray_prob).to(img.dtype)
    noise = (gaussian_noise if use_gaussian else poisson_noise)(img, strength, gray, rng.torch)
    return torch.clamp(img + noise, 0, 1)


RESIZE_MODES = ('area', 'bilinear', 'bicubic')


def resize(img: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    size = (max(1, size[0]), max(1, size[1]))
    if mode == 'area':
        return F.interpolate(img, size=size, mode='area')
    return F.interpolate(img, size=size, mode=mode, align_corners=False)


class USMSharp(nn.Module):
    """Unsharp masking: ``img + weight * (img - blur)``, applied where the residual exceeds
    ``threshold`` (0..255 scale), with a soft (blurred) mask; blur: Gaussian of ``radius``
    (OpenCV's sigma for the size when ``sigma`` is 0), applied as two 1-D passes."""

    def __init__(self, radius: int = 50, sigma: float = 0) -> None:
        super().__init__()
        if radius % 2 == 0:
            radius += 1
        g = cv2.getGaussianKernel(radius, sigma)[:, 0]
        self.register_buffer('kernel', torch.from_numpy(g).float(), persistent=False)

    def forward(self, img: torch.Tensor, weight: float = 0.5, threshold: float = 10
                ) -> torch.Tensor:
        residual = img - separable_filter2d(img, self.kernel)
        mask = (residual.abs() * 255 > threshold).to(img.dtype)
        soft_mask = separable_filter2d(mask, self.kernel)
        sharp = torch.clamp(img + weight * residual, 0, 1)
        return soft_mask * sharp + (1 - soft_mask) * img
