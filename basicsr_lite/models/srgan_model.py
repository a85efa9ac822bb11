"""SRGAN and ESRGAN: a generator trained with pixel + perceptual + adversarial losses against a
discriminator, with BasicSR's option keys, phases and logged names.

Each iteration trains D on real GT and the (detached) output; G is trained when
``iter % net_d_iters == 0`` and ``iter > net_d_init_iters`` (the first ``net_d_init_iters``
iterations train D only). ESRGAN (``esrgan_model.py``) uses the relativistic average form.
"""
from __future__ import annotations

import torch

from basicsr_lite.errors import OptionError
from basicsr_lite.losses.gan_loss import (adversarial_weight, gradient_penalty, map_pred,
                                          pred_mean, r1_penalty)
from basicsr_lite.models import loss_terms
from basicsr_lite.models.sr_model import SRModel
from basicsr_lite.registry import MODEL_REGISTRY
from basicsr_lite.runtime.dist import reduce_mean, unwrap


@MODEL_REGISTRY.register()
class SRGANModel(SRModel):
    """``network_g`` + ``network_d``; ``train``: ``optim_g``, ``optim_d``, the losses
    (``train.losses`` with one GANLoss entry, or BasicSR's ``pixel_opt``, ``ldl_opt``,
    ``perceptual_opt``, ``gan_opt``), ``net_d_iters``, ``net_d_init_iters``, and beyond BasicSR:
    ``net_g_pretrain_iters`` (the first N iterations train G alone with its non-GAN losses:
    pretraining without a separate PSNR run), ``gan_warmup_iter`` / ``gan_warmup`` (the
    adversarial weight rises from 0 over that many G iterations, 'linear' or 'cosine'),
    ``r1_reg_weight`` / ``d_reg_every`` (R1 penalty on real images every that many iterations,
    scaled by it, as lazy regularisation), ``gp_weight`` (WGAN-GP's gradient penalty on
    real / fake mixes, logged l_d_gp), ``d_skip_threshold`` (D not stepped while its loss is
    below it).
    Logged: G's losses by name (BasicSR's slots: l_g_pix, l_g_ldl, l_g_percep, l_g_style,
    l_g_gan), l_d_real, l_d_fake, l_d_r1, l_d_gp, out_d_real, out_d_fake, d_skipped, d_skips."""

    network_keys = ('network_g', 'network_d')
    loss_prefix = 'l_g_'
    # BasicSR's order of G's terms (Real-ESRGAN's with LDL)
    loss_slots = (('pixel_opt', 'pix'), ('fft_opt', 'fft'), ('ldl_opt', 'ldl'),
                  ('perceptual_opt', 'percep'), ('gan_opt', 'gan'))
    reserved_log_names = ('l_d_real', 'l_d_fake', 'l_d_r1', 'l_d_gp', 'out_d_real', 'out_d_fake',
                          'd_skipped', 'd_skips')

    @classmethod
    def train_keys(cls, kit) -> dict:
        return {
            **super().train_keys(kit),
            'optim_d': kit.optimizer(doc="The discriminator's optimizer: its type and "
                                         "arguments."),
            'ldl_opt': kit.loss(doc='LDL: a pixel loss (L1Loss, MSELoss, CharbonnierLoss) '
                                    'between artefact-map-weighted output and GT (logged '
                                    'l_g_ldl; needs ema_decay > 0); null: none.'),
            'perceptual_opt': kit.loss(doc='The perceptual (VGG feature) and style loss of G '
                                           '(logged l_g_percep, l_g_style); null: none.'),
            'gan_opt': kit.loss(doc='The adversarial loss (a GANLoss), which also trains D; '
                                    'required unless train.losses has a GANLoss entry.'),
            'net_d_iters': kit.Value((int,), default=1, check=kit.positive,
                                     doc='G is trained on every this-many-th iteration (D on '
                                         'every one).'),
            'net_d_init_iters': kit.Value((int,), default=0, check=kit.non_negative,
                                          doc='The first this many iterations train D only.'),
            'net_g_pretrain_iters': kit.Value((int,), default=0, check=kit.non_negative,
                                              doc='The first this many iterations train G '
                                                  'alone with its non-GAN losses.'),
            'gan_warmup_iter': kit.Value((int,), default=0, check=kit.non_negative,
                                         doc='The adversarial weight rises from 0 over this '
                                             'many G iterations (0: at once).'),
            'gan_warmup': kit.Value((str,), default='linear', choices=('linear', 'cosine'),
                                    doc='The shape of that rise.'),
            'r1_reg_weight': kit.Value((int, float), default=0.0, check=kit.non_negative,
                                       doc="Weight of the R1 penalty on D's gradients at real "
                                           "images (logged l_d_r1; 0: off)."),
            'd_reg_every': kit.Value((int,), default=16, check=kit.positive,
                                     doc='Apply the R1 penalty every this many iterations, '
                                         'scaled by it (lazy regularisation).'),
            'gp_weight': kit.Value((int, float), default=0.0, check=kit.non_negative,
                                   doc="Weight of WGAN-GP's gradient penalty on real / fake "
                                       "mixes (logged l_d_gp; 0: off)."),
            'd_skip_threshold': kit.Value((int, float, type(None)), default=None,
                                          doc="D is not stepped while its loss is below this "
                                              "value; null: always stepped."),
        }

    @classmethod
    def slot_entry(cls, opt: dict, key: str, short: str) -> dict:
        entry = super().slot_entry(opt, key, short)
        if key == 'ldl_opt':
            entry = {**loss_terms.ldl_entry(opt['train'][key]), 'name': entry['name'],
                     'target': entry['target']}
        return entry

    @classmethod
    def option_problems(cls, opt: dict, is_train: bool) -> list[str]:
        problems = super().option_problems(opt, is_train)
        ldl = opt['train'].get('ldl_opt') if is_train else None
        if is_train and opt['train'].get('d_skip_threshold') is not None and \
                opt['train'].get('accumulate_grad_batches', 1) > 1:
            problems.append('train.d_skip_threshold: skipping D decides per step; it does not '
                            'work with train.accumulate_grad_batches > 1.')
        if ldl is not None and ldl['type'] not in loss_terms.LDL_CRITERIA:
            problems.append(f"train.ldl_opt.type: LDL weights a pixel loss "
                            f"({', '.join(loss_terms.LDL_CRITERIA)}); got {ldl['type']}.")
        return problems

    @classmethod
    def gan_entry_problems(cls, entries: list[tuple[str, dict]]) -> list[str]:
        gans = [where for where, entry in entries if loss_terms.is_gan_entry(entry)]
        if len(gans) > 1:
            return [f"{gans[1]}: a second GANLoss (the first is {gans[0]}); the GAN loss also "
                    f"drives D, so a model has one."]
        if gans:
            return []
        if any(where.startswith('train.losses') for where, _ in entries):
            return ['train.losses: no GANLoss entry; a GAN model needs one (it also trains D), '
                    'e.g. {type: GANLoss, gan_type: vanilla, loss_weight: 0.1}.']
        return ['train.gan_opt: required key is missing. A GAN model needs an adversarial loss: '
                'gan_opt, or a GANLoss entry in train.losses.']

    def init_training_settings(self) -> None:
        train_opt = self.opt['train']
        self.init_generator_training()
        self.net_d = self.build_net('network_d')
        self.net_d.train()
        self.gan_term = next(term for term in self.loss_terms if term.is_gan)
        self.cri_gan = self.gan_term.loss
        if train_opt['net_g_pretrain_iters'] and \
                all(term.is_gan for term in self.loss_terms):
            raise OptionError('train.net_g_pretrain_iters: G needs a pixel_opt or perceptual_opt '
                              '(or a loss besides the GANLoss in train.losses) to learn from '
                              'before the GAN starts.')
        self.net_d_iters, self.net_d_init_iters = train_opt['net_d_iters'], \
            train_opt['net_d_init_iters']
        self.optimizer_d = self.setup_optimizer(
            [p for p in self.net_d.parameters() if p.requires_grad], train_opt['optim_d'],
            'train.optim_d')
        self.setup_stepper('d', self.optimizer_d, {'net_d': self.net_d})
        self.setup_schedulers()
        self.g_iters = 0  # G steps taken (for the adversarial warm-up); kept in the state
        self.d_skips = 0  # D steps skipped under train.d_skip_threshold; kept in the state

    def networks_to_save(self) -> dict[str, dict[str, torch.nn.Module]]:
        return {**super().networks_to_save(), 'net_d': {'params': self.net_d}}

    def state_dict(self) -> dict:
        return {**super().state_dict(), 'g_iters': self.g_iters, 'd_skips': self.d_skips}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.g_iters = state.get('g_iters', 0)
        self.d_skips = state.get('d_skips', 0)

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
        if self.skips_d(d_losses, logged):
            if not trains_g:
                self.update_ema()
        else:
            self.step('d', d_losses, current_iter, ema=not trains_g)
        logged.update(d_losses)
        logged.update(d_outputs)
        self.record_losses(logged)

    def skips_d(self, d_losses: dict[str, torch.Tensor], logged: dict) -> bool:
        """Adaptive D skipping (``train.d_skip_threshold``): D is not stepped while its
        adversarial loss (l_d_real + l_d_fake, averaged over ranks so that all agree) is below
        the threshold. A host sync per iteration, only when the option is set. Logged:
        ``d_skipped`` (this iteration) and ``d_skips`` (all so far)."""
        threshold = self.opt['train']['d_skip_threshold']
        if threshold is None:
            return False
        d_loss = float(sum(v.detach() for k, v in d_losses.items()
                           if k not in ('l_d_r1', 'l_d_gp')))  # the adversarial terms only
        skip = reduce_mean({'d': d_loss}, self.device)['d'] < threshold
        self.d_skips += int(skip)
        logged['d_skipped'] = torch.tensor(float(skip))
        logged['d_skips'] = torch.tensor(float(self.d_skips))
        return skip

    def generator_losses(self, output: torch.Tensor, current_iter: int
                         ) -> dict[str, torch.Tensor]:
        losses = self.content_losses(output)
        net_d = unwrap(self.net_d)  # no DDP bookkeeping for D in G's step (D gets no grads)
        net_d.requires_grad_(False)
        try:
            with self.autocast():
                gan = self.adversarial_generator_loss(net_d, output)
        finally:
            net_d.requires_grad_(True)
        train_opt = self.opt['train']
        losses[self.gan_term.names[0]] = gan * adversarial_weight(
            self.g_iters, train_opt['gan_warmup_iter'], train_opt['gan_warmup'])
        return losses

    def real_images(self) -> torch.Tensor:
        """D's real images: the GAN loss's ``target`` ('gt', or Real-ESRGAN's 'gt_usm')."""
        return self.loss_target(self.gan_term.target, self.gt)

    def d_input(self, img: torch.Tensor) -> torch.Tensor:
        """What D sees of an image (conditional GANs add the input here)."""
        return img

    def adversarial_generator_loss(self, net_d, output: torch.Tensor) -> torch.Tensor:
        """G's adversarial loss of ``output`` (``net_d``: D, frozen, not DDP-wrapped)."""
        return self.cri_gan(map_pred(torch.Tensor.float, net_d(self.d_input(output))), True,
                            is_disc=False)

    def discriminator_losses(self, fake: torch.Tensor, current_iter: int
                             ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """D's losses on real GT and the detached output, and its mean outputs (logged)."""
        train_opt = self.opt['train']
        r1 = train_opt['r1_reg_weight'] > 0 and current_iter % train_opt['d_reg_every'] == 0
        real = self.real_images()
        real = real.detach().requires_grad_(True) if r1 else real
        with self.autocast():
            real_pred, fake_pred = self.discriminator_predictions(real, fake)
            real_pred = map_pred(torch.Tensor.float, real_pred)  # a multiscale D: a list
            fake_pred = map_pred(torch.Tensor.float, fake_pred)
            losses = self.adversarial_discriminator_losses(real_pred, fake_pred)
        if r1:
            losses['l_d_r1'] = (train_opt['r1_reg_weight'] / 2 * train_opt['d_reg_every']
                                * r1_penalty(real_pred, real))
        if train_opt['gp_weight'] > 0:  # WGAN-GP, on D's inputs (with the condition, if any)
            losses['l_d_gp'] = train_opt['gp_weight'] * gradient_penalty(
                self.net_d, self.d_input(real), self.d_input(fake))
        outputs = {'out_d_real': pred_mean(map_pred(torch.Tensor.detach, real_pred)),
                   'out_d_fake': pred_mean(map_pred(torch.Tensor.detach, fake_pred))}
        return losses, outputs

    def discriminator_predictions(self, real: torch.Tensor, fake: torch.Tensor
                                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """D's outputs for the real images and the detached output, in BasicSR's order."""
        return self.net_d(self.d_input(real)), self.net_d(self.d_input(fake))

    def adversarial_discriminator_losses(self, real_pred: torch.Tensor, fake_pred: torch.Tensor
                                         ) -> dict[str, torch.Tensor]:
        return {'l_d_real': self.cri_gan(real_pred, True, is_disc=True),
                'l_d_fake': self.cri_gan(fake_pred, False, is_disc=True)}
