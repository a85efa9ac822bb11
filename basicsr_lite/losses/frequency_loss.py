"""Frequency-domain losses: the focal frequency loss, an amplitude + phase FFT loss, and the
real + imaginary FFT L1 of the SAFMN recipes."""
from __future__ import annotations

import torch
from torch import nn

from basicsr_lite.losses.basic_loss import _PixelLoss
from basicsr_lite.registry import LOSS_REGISTRY


@LOSS_REGISTRY.register()
class FocalFrequencyLoss(nn.Module):
    """Jiang, Dai, Wu & Loy, ICCV 2021, "Focal Frequency Loss for Image Reconstruction and
    Synthesis" (arguments and computation as the authors' EndlessSora/focal-frequency-loss).

    The images are cut into ``patch_factor`` x ``patch_factor`` patches; each patch's orthonormal
    2-D DFT is compared by the squared distance |F_pred - F_target|^2, weighted by a spectrum
    weight matrix w = |F_pred - F_target|^alpha (``log_matrix``: log(1 + w)) divided by its
    maximum (per image, patch and channel, or over the whole batch with ``batch_matrix``),
    clipped to [0, 1] and detached; the loss is the mean. ``ave_spectrum`` compares the batch's
    mean spectra. ``forward(..., matrix=...)`` uses a given weight matrix instead.
    """

    def __init__(self, loss_weight: float = 1.0, alpha: float = 1.0, patch_factor: int = 1,
                 ave_spectrum: bool = False, log_matrix: bool = False,
                 batch_matrix: bool = False) -> None:
        super().__init__()
        if patch_factor < 1:
            raise ValueError(f'patch_factor must be >= 1; got {patch_factor}.')
        self.loss_weight = loss_weight
        self.alpha = alpha
        self.patch_factor = patch_factor
        self.ave_spectrum = ave_spectrum
        self.log_matrix = log_matrix
        self.batch_matrix = batch_matrix

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """(N, P, C, h, w) complex orthonormal DFT of the P = patch_factor^2 patches of x."""
        factor = self.patch_factor
        n, c, height, width = x.shape
        if height % factor or width % factor:
            raise ValueError(f'patch_factor {factor} must divide the image size '
                             f'{height}x{width}.')
        ph, pw = height // factor, width // factor
        # (N, C, fh, ph, fw, pw) -> (N, fh, fw, C, ph, pw): patches in row-major order
        patches = x.reshape(n, c, factor, ph, factor, pw).permute(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(n, factor * factor, c, ph, pw)
        return torch.fft.fft2(patches.float(), norm='ortho')

    def weight_matrix(self, distance: torch.Tensor) -> torch.Tensor:
        """The detached spectrum weights in [0, 1] from the squared distances."""
        with torch.no_grad():
            weight = distance.sqrt()**self.alpha
            if self.log_matrix:
                weight = torch.log1p(weight)
            if self.batch_matrix:
                weight = weight / weight.max()
            else:
                weight = weight / weight.amax(dim=(-2, -1), keepdim=True)
            weight = torch.nan_to_num(weight, nan=0.0).clamp(0.0, 1.0)  # 0/0 where equal
        return weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                matrix: torch.Tensor | None = None) -> torch.Tensor:
        pred_freq, target_freq = self.spectrum(pred), self.spectrum(target)
        if self.ave_spectrum:
            pred_freq = pred_freq.mean(dim=0, keepdim=True)
            target_freq = target_freq.mean(dim=0, keepdim=True)
        diff = pred_freq - target_freq
        distance = diff.real**2 + diff.imag**2
        weight = self.weight_matrix(distance) if matrix is None else matrix.detach()
        return self.loss_weight * (weight * distance).mean()


@LOSS_REGISTRY.register()
class FFTAmplitudePhaseLoss(nn.Module):
    """L1 between the amplitude spectra plus L1 between the phase spectra of
    ``torch.fft.rfft2`` (``norm``: 'ortho' keeps amplitudes independent of the image size).

    The phase difference is the wrapped angle of F_pred * conj(F_target), in [-pi, pi], so that
    phases on either side of +-pi count as close; where either spectrum is (near) zero the phase
    is undefined and contributes 0 (and no NaN gradient). ``phase_weight`` 0 gives an
    amplitude-only loss.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean',
                 amplitude_weight: float = 1.0, phase_weight: float = 1.0,
                 norm: str = 'ortho') -> None:
        super().__init__()
        if reduction not in ('mean', 'sum'):
            raise ValueError(f"reduction must be 'mean' or 'sum'; got '{reduction}'.")
        if norm not in ('ortho', 'backward', 'forward'):
            raise ValueError(f"norm must be 'ortho', 'backward' or 'forward'; got '{norm}'.")
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.amplitude_weight = amplitude_weight
        self.phase_weight = phase_weight
        self.norm = norm

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred_freq = torch.fft.rfft2(pred.float(), norm=self.norm)
        target_freq = torch.fft.rfft2(target.float(), norm=self.norm)
        amplitude = (pred_freq.abs() - target_freq.abs()).abs()
        product = pred_freq * target_freq.conj()
        defined = product.abs() > 1e-12
        safe = torch.where(defined, product, torch.ones_like(product))
        phase = torch.where(defined, torch.angle(safe).abs(), torch.zeros_like(amplitude))
        reduce = torch.mean if self.reduction == 'mean' else torch.sum
        return self.loss_weight * (self.amplitude_weight * reduce(amplitude) +
                                   self.phase_weight * reduce(phase))


@LOSS_REGISTRY.register()
class FFTLoss(_PixelLoss):
    """As the SAFMN recipes use it (``fft_opt``, weight 0.05; the SAFMN authors'
    ``basicsr/losses/losses.py``): L1 between the real and imaginary parts of the 2-D real FFTs
    (unnormalised, over H and W) of prediction and target: it weighs every spatial frequency
    alike, so it pushes on the high frequencies a pixel L1 lets blur."""

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred_f, target_f = torch.fft.rfft2(pred.float()), torch.fft.rfft2(target.float())
        return (torch.view_as_real(pred_f) - torch.view_as_real(target_f)).abs()
