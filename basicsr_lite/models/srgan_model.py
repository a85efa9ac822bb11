"""SRGAN and ESRGAN: a generator trained with pixel + perceptual + adversarial losses against a
discriminator, with BasicSR's option keys, phases and logged names.

Each iteration trains D on real GT and the (detached) output; G is trained when
``iter % net_d_iters == 0`` and ``iter > net_d_init_iters`` (the first ``net_d_init_iters``
iterations train D only). ESRGAN uses the relativistic average form of the GAN loss.
"""
from __future__ import annotations

import torch

from basicsr_lite.errors import OptionError
from basicsr_lite.losses.gan_loss import (Pred, adversarial_weight, map_pred, pred_mean,
                                          r1_penalty, relativistic_pair)
from basicsr_lite.models.sr_model import SRModel
from basicsr_lite.registry import MODEL_REGISTRY
from basicsr_lite.runtime.dist import unwrap


@MODEL_REGISTRY.register()
class SRGANModel(SRModel):
    """``network_g`` + ``network_d``; ``train``: ``optim_g``, ``optim_d``, ``pixel_opt``,
    ``fft_opt``, ``perceptual_opt``, ``gan_opt`` (required), ``net_d_iters``,
    ``net_d_init_iters``, and beyond BasicSR: ``net_g_pretrain_iters`` (the first N iterations
    train G alone with its pixel / perceptual losses: pretraining without a separate PSNR run),
    ``gan_warmup_iter`` / ``gan_warmup`` (the adversarial weight rises from 0 over that many G
    iterations, 'linear' or 'cosine'), ``r1_reg_weight`` / ``d_reg_every`` (R1 penalty on real
    images every that many iterations, scaled by it, as lazy regularisation).
    Logged: l_g_pix, l_g_fft, l_g_percep, l_g_style, l_g_gan, l_d_real, l_d_fake, l_d_r1,
    out_d_real, out_d_fake."""

    network_keys = ('network_g', 'network_d')

    @classmethod
    def train_keys(cls, kit) -> dict:
        return {
            **super().train_keys(kit),
            'optim_d': kit.optimizer(),
            'perceptual_opt': kit.loss(),
            'gan_opt': kit.loss(required=True),
            'net_d_iters': kit.Value((int,), default=1, check=kit.positive),
            'net_d_init_iters': kit.Value((int,), default=0, check=kit.non_negative),
            'net_g_pretrain_iters': kit.Value((int,), default=0, check=kit.non_negative),
            'gan_warmup_iter': kit.Value((int,), default=0, check=kit.non_negative),
            'gan_warmup': kit.Value((str,), default='linear', choices=('linear', 'cosine')),
            'r1_reg_weight': kit.Value((int, float), default=0.0, check=kit.non_negative),
            'd_reg_every': kit.Value((int,), default=16, check=kit.positive),
        }

    def init_training_settings(self) -> None:
        train_opt = self.opt['train']
        self.init_generator_training()
        self.net_d = self.build_net('network_d')
        self.net_d.train()
        self.cri_perceptual = self.optional_loss('perceptual_opt')
        self.cri_gan = self.optional_loss('gan_opt')
        if train_opt['net_g_pretrain_iters'] and self.cri_pix is None and \
                self.cri_perceptual is None:
            raise OptionError('train.net_g_pretrain_iters: G needs a pixel_opt or perceptual_opt '
                              'to learn from before the GAN starts.')
        self.net_d_iters, self.net_d_init_iters = train_opt['net_d_iters'], \
            train_opt['net_d_init_iters']
        self.optimizer_d = self.setup_optimizer(
            [p for p in self.net_d.parameters() if p.requires_grad], train_opt['optim_d'],
            'train.optim_d')
        self.setup_stepper('d', self.optimizer_d, {'net_d': self.net_d})
        self.setup_schedulers()
        self.g_iters = 0  # G steps taken (for the adversarial warm-up); kept in the state

    def networks_to_save(self) -> dict[str, dict[str, torch.nn.Module]]:
        return {**super().networks_to_save(), 'net_d': {'params': self.net_d}}

    def state_dict(self) -> dict:
        return {**super().state_dict(), 'g_iters': self.g_iters}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.g_iters = state.get('g_iters', 0)

    # ---- one iteration -------------------------------------------------------------------------
    def trains_g(self, current_iter: int) -> bool:
        return current_iter % self.net_d_iters == 0 and current_iter > self.net_d_init_iters

    def optimize_parameters(self, current_iter: int) -> None:
        with self.autocast():
            self.output = self.as_generator(self.net_g)(self.lq)
        if current_iter <= self.opt['train']['net_g_pretrain_iters']:
            losses = self.content_losses(self.output.float())
            self.step('g', losses, current_iter)
            self.record_losses(losses)
            return
        logged: dict[str, torch.Tensor] = {}
        trains_g = self.trains_g(current_iter)
        if trains_g:
            g_losses = self.generator_losses(self.output.float(), current_iter)
            if self.step('g', g_losses, current_iter).taken:
                self.g_iters += 1  # G steps taken (the adversarial warm-up counts them)
            logged.update(g_losses)
        d_losses, d_outputs = self.discriminator_losses(self.output.detach().float(),
                                                        current_iter)
        # The EMA follows G once per iteration (also while only D trains, as BasicSR), unless
        # G's step was dropped.
        self.step('d', d_losses, current_iter, ema=not trains_g)
        logged.update(d_losses)
        logged.update(d_outputs)
        self.record_losses(logged)

    def content_losses(self, output: torch.Tensor) -> dict[str, torch.Tensor]:
        """G's pixel and perceptual / style losses."""
        losses: dict[str, torch.Tensor] = {}
        if self.cri_pix is not None:
            losses['l_g_pix'] = self.cri_pix(output, self.gt_for('pixel'))
        if self.cri_fft is not None:
            losses['l_g_fft'] = self.cri_fft(output, self.gt_for('pixel'))
        if self.cri_perceptual is not None:
            percep, style = self.cri_perceptual(output, self.gt_for('perceptual'))
            if percep is not None:
                losses['l_g_percep'] = percep
            if style is not None:
                losses['l_g_style'] = style
        return losses

    def generator_losses(self, output: torch.Tensor, current_iter: int
                         ) -> dict[str, torch.Tensor]:
        losses = self.content_losses(output)
        net_d = unwrap(self.net_d)  # no DDP bookkeeping for D in G's step (D gets no grads)
        net_d.requires_grad_(False)
        try:
            with self.autocast():
                fake_pred = map_pred(torch.Tensor.float, net_d(self.d_input(output)))
                gan = self.adversarial_generator_loss(net_d, fake_pred)
        finally:
            net_d.requires_grad_(True)
        train_opt = self.opt['train']
        losses['l_g_gan'] = gan * adversarial_weight(self.g_iters, train_opt['gan_warmup_iter'],
                                                     train_opt['gan_warmup'])
        return losses

    def gt_for(self, loss: str) -> torch.Tensor:
        """The GT that the ``loss`` ('pixel', 'perceptual', 'gan': D's real images) compares
        with (Real-ESRGAN uses a sharpened GT for some)."""
        return self.gt

    def d_input(self, img: torch.Tensor) -> torch.Tensor:
        """What D sees of an image (conditional GANs add the input here)."""
        return img

    def adversarial_generator_loss(self, net_d, fake_pred: Pred) -> torch.Tensor:
        return self.cri_gan(fake_pred, True, is_disc=False)

    def discriminator_losses(self, fake: torch.Tensor, current_iter: int
                             ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """D's losses on real GT and the detached output, and its mean outputs (logged)."""
        train_opt = self.opt['train']
        r1 = train_opt['r1_reg_weight'] > 0 and current_iter % train_opt['d_reg_every'] == 0
        real = self.gt_for('gan')
        real = real.detach().requires_grad_(True) if r1 else real
        with self.autocast():
            real_pred = self.net_d(self.d_input(real))
            fake_pred = self.net_d(self.d_input(fake))
            real_pred = map_pred(torch.Tensor.float, real_pred)
            fake_pred = map_pred(torch.Tensor.float, fake_pred)
            losses = self.adversarial_discriminator_losses(real_pred, fake_pred)
        if r1:
            losses['l_d_r1'] = (train_opt['r1_reg_weight'] / 2 * train_opt['d_reg_every']
                                * r1_penalty(real_pred, real))
        outputs = {'out_d_real': pred_mean(map_pred(torch.Tensor.detach, real_pred)),
                   'out_d_fake': pred_mean(map_pred(torch.Tensor.detach, fake_pred))}
        return losses, outputs

    def adversarial_discriminator_losses(self, real_pred: Pred, fake_pred: Pred
                                         ) -> dict[str, torch.Tensor]:
        return {'l_d_real': self.cri_gan(real_pred, True, is_disc=True),
                'l_d_fake': self.cri_gan(fake_pred, False, is_disc=True)}


@MODEL_REGISTRY.register()
class ESRGANModel(SRGANModel):
    """SRGAN with the relativistic average GAN loss (ESRGAN): G makes its output look more real
    than real images on average, D the opposite; D's two terms are halved."""

    def adversarial_generator_loss(self, net_d, fake_pred: Pred) -> torch.Tensor:
        real_pred = map_pred(lambda p: p.detach().float(),
                             net_d(self.d_input(self.gt_for('gan'))))
        return (relativistic_pair(self.cri_gan, real_pred, fake_pred, False, is_disc=False)
                + relativistic_pair(self.cri_gan, fake_pred, real_pred, True, is_disc=False)) / 2

    def adversarial_discriminator_losses(self, real_pred: Pred, fake_pred: Pred
                                         ) -> dict[str, torch.Tensor]:
        return {
            'l_d_real': relativistic_pair(self.cri_gan, real_pred,
                                          map_pred(torch.Tensor.detach, fake_pred), True,
                                          is_disc=True) * 0.5,
            'l_d_fake': relativistic_pair(self.cri_gan, fake_pred,
                                          map_pred(torch.Tensor.detach, real_pred), False,
                                          is_disc=True) * 0.5,
        }
