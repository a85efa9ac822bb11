"""Adversarial losses: GANLoss (BasicSR's types and semantics), the relativistic average form
(ESRGAN), the R1 gradient penalty, and a warm-up of the adversarial weight.

A discriminator's output ("pred") is a logit tensor, or a list of them for a multiscale
discriminator (pix2pixHD); each loss here then averages its per-scale values, so a loss
weight means the same for one scale or several."""
from __future__ import annotations

import math
from typing import Callable, Union

import torch
from torch import nn
from torch.nn import functional as F

from basicsr_lite.registry import LOSS_REGISTRY

Pred = Union[torch.Tensor, list[torch.Tensor]]  # one logit map, or one per scale

GAN_TYPES = ('vanilla', 'lsgan', 'wgan', 'wgan_softplus', 'hinge')


@LOSS_REGISTRY.register()
class GANLoss(nn.Module):
    """``forward(pred, target_is_real, is_disc)`` on discriminator outputs (logits).

    vanilla: BCE with logits against the real / fake label values; lsgan: MSE against them;
    wgan: -mean (real) / +mean (fake); wgan_softplus: softplus(-x) / softplus(x); hinge:
    relu(1 - x) / relu(1 + x) for the discriminator, -mean(x) for the generator.
    ``loss_weight`` applies to the generator's loss only (``is_disc=False``), as in BasicSR.
    ``real_label_val`` is the real label of both G's and D's targets (BasicSR);
    ``d_real_label_val`` (e.g. 0.9) replaces it in D's targets for real images only: one-sided
    label smoothing (Salimans et al. 2016, "Improved Techniques for Training GANs"); None: no
    smoothing. Label-based types only (vanilla, lsgan).
    """

    def __init__(self, gan_type: str = 'vanilla', real_label_val: float = 1.0,
                 fake_label_val: float = 0.0, loss_weight: float = 1.0,
                 d_real_label_val: float | None = None) -> None:
        super().__init__()
        if gan_type not in GAN_TYPES:
            raise ValueError(f"gan_type '{gan_type}' is not one of {list(GAN_TYPES)}.")
        if d_real_label_val is not None and gan_type not in ('vanilla', 'lsgan'):
            raise ValueError(f"d_real_label_val (label smoothing) needs labels: gan_type "
                             f"vanilla or lsgan, not '{gan_type}'.")
        self.gan_type = gan_type
        self.real_label_val, self.fake_label_val = real_label_val, fake_label_val
        self.d_real_label_val = real_label_val if d_real_label_val is None else d_real_label_val
        self.loss_weight = loss_weight

    def forward(self, pred: Pred, target_is_real: bool, is_disc: bool = False) -> torch.Tensor:
        if isinstance(pred, (list, tuple)):
            return torch.stack([self(p, target_is_real, is_disc) for p in pred]).mean()
        pred = pred.float()
        sign = -1.0 if target_is_real else 1.0
        if self.gan_type == 'vanilla':
            loss = F.binary_cross_entropy_with_logits(
                pred, self._labels(pred, target_is_real, is_disc))
        elif self.gan_type == 'lsgan':
            loss = F.mse_loss(pred, self._labels(pred, target_is_real, is_disc))
        elif self.gan_type == 'wgan':
            loss = sign * pred.mean()
        elif self.gan_type == 'wgan_softplus':
            loss = F.softplus(sign * pred).mean()
        elif is_disc:  # hinge
            loss = F.relu(1.0 + sign * pred).mean()
        else:
            loss = -pred.mean()
        return loss if is_disc else loss * self.loss_weight

    def _labels(self, pred: torch.Tensor, target_is_real: bool, is_disc: bool) -> torch.Tensor:
        if not target_is_real:
            return torch.full_like(pred, self.fake_label_val)
        return torch.full_like(pred, self.d_real_label_val if is_disc else self.real_label_val)


def map_pred(fn: Callable[[torch.Tensor], torch.Tensor], pred: Pred) -> Pred:
    """``fn`` applied to each scale's logits (e.g. ``.float()``, ``.detach()``)."""
    return [fn(p) for p in pred] if isinstance(pred, (list, tuple)) else fn(pred)


def pred_mean(pred: Pred) -> torch.Tensor:
    """The mean logit (the mean of the scales' means for a multiscale output), for logging."""
    if isinstance(pred, (list, tuple)):
        return torch.stack([p.float().mean() for p in pred]).mean()
    return pred.float().mean()


def relativistic_pair(gan: GANLoss, pred_a: Pred, pred_b: Pred, a_is_real: bool,
                      is_disc: bool) -> torch.Tensor:
    """Relativistic average loss of outputs ``pred_a`` against ``pred_b`` (ESRGAN): ``a`` is
    judged by how much more (or less) real it looks than ``b`` on average:
    ``gan(pred_a - mean(pred_b), a_is_real)``; for multiscale outputs per scale (each against
    its own scale's mean), averaged."""
    if isinstance(pred_a, (list, tuple)):
        return torch.stack([relativistic_pair(gan, a, b, a_is_real, is_disc)
                            for a, b in zip(pred_a, pred_b, strict=True)]).mean()
    return gan(pred_a - pred_b.mean(), a_is_real, is_disc=is_disc)


def r1_penalty(real_pred: Pred, real_img: torch.Tensor) -> torch.Tensor:
    """R1 regularisation: the mean over the batch of ``||d D(x) / d x||^2`` at real images
    (``real_img`` needs ``requires_grad``); differentiable (create_graph). For a multiscale
    output, D(x) is the sum of all scales' logits."""
    total = sum(p.sum() for p in real_pred) if isinstance(real_pred, (list, tuple)) \
        else real_pred.sum()
    grad, = torch.autograd.grad(total, real_img, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def gradient_penalty(net_d: Callable[[torch.Tensor], Pred], real: torch.Tensor,
                     fake: torch.Tensor, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017), as BasicSR's ``gradient_penalty_loss``: the mean over the
    batch of ``(||d D(x) / d x||_2 - 1)^2`` at ``x = a * real + (1 - a) * fake``, one uniform
    ``a`` per image; differentiable (create_graph). For a multiscale output, D(x) is the sum of
    all scales' logits."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device, generator=generator)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    pred = net_d(mixed)
    total = sum(p.float().sum() for p in pred) if isinstance(pred, (list, tuple)) \
        else pred.float().sum()
    grad, = torch.autograd.grad(total, mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def adversarial_weight(current_iter: int, warmup_iter: int, mode: str = 'linear') -> float:
    """Factor of the adversarial loss at ``current_iter``: rising from 0 to 1 over the first
    ``warmup_iter`` iterations ('linear', or 'cosine': 0.5 * (1 - cos(pi t))), then 1."""
    if warmup_iter <= 0 or current_iter >= warmup_iter:
        return 1.0
    t = max(current_iter, 0) / warmup_iter
    return t if mode == 'linear' else 0.5 * (1.0 - math.cos(math.pi * t))
