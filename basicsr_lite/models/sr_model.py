from __future__ import annotations

from typing import Callable

import torch

from torch.nn import functional as F

from basicsr_lite.archs.capabilities import capability
from basicsr_lite.models import loss_terms
from basicsr_lite.models.base_model import BaseModel
from basicsr_lite.registry import MODEL_REGISTRY
from basicsr_lite.runtime.dist import unwrap
from basicsr_lite.runtime.ema import ModelEMA
from basicsr_lite.runtime.tiling import padded_forward, tiled_inference


@MODEL_REGISTRY.register()
class SRModel(BaseModel):
    """Single-network restoration: ``output = net_g(lq)``, trained with ``train.losses`` (any
    number, in order; see ``models/loss_terms.py``) or BasicSR's ``pixel_opt`` (logged ``l_pix``).
    """

    network_keys = ('network_g',)
    loss_prefix = 'l_'  # logged names: l_pix (BasicSR), l_l1, l_msssim, ...
    # (train key, short name); fft_opt: the SAFMN authors' recipes (FFTLoss, logged l_fft)
    loss_slots: tuple[tuple[str, str], ...] = (('pixel_opt', 'pix'), ('fft_opt', 'fft'))
    loss_targets = ('gt', 'lq_up')
    reserved_log_names: tuple[str, ...] = ()

    @classmethod
    def train_keys(cls, kit) -> dict:
        return {
            'optim_g': kit.optimizer(doc="The generator's optimizer: its type and arguments "
                                         "(lr, betas, ...)."),
            'pixel_opt': kit.loss(doc="BasicSR's pixel loss between output and GT (logged "
                                      "l_pix, l_g_pix in GAN models); null: none."),
            'fft_opt': kit.loss(doc="A frequency loss between output and GT, as the SAFMN "
                                    "recipes' FFTLoss (logged l_fft); null: none."),
            'losses': kit.losses()}

    # ---- the list of losses ----------------------------------------------------------------------
    @classmethod
    def loss_entries(cls, opt: dict) -> list[tuple[str, dict]]:
        """``[(option path, entry)]``: ``train.losses``, or the slots translated into entries
        with BasicSR's logged names."""
        train = opt['train']
        if train.get('losses') is not None:
            return [(f'train.losses[{i}]', entry) for i, entry in enumerate(train['losses'])]
        entries = []
        for key, short in cls.loss_slots:
            if train.get(key) is not None:
                entries.append((f'train.{key}', cls.slot_entry(opt, key, short)))
        return entries

    @classmethod
    def slot_entry(cls, opt: dict, key: str, short: str) -> dict:
        """The list entry that BasicSR's slot ``train.<key>`` means."""
        return {**opt['train'][key], 'name': cls.loss_prefix + short, 'target': 'gt'}

    @classmethod
    def option_problems(cls, opt: dict, is_train: bool) -> list[str]:
        problems = super().option_problems(opt, is_train)
        if not is_train:
            return problems
        train = opt['train']
        if train.get('losses') is not None:
            if not train['losses']:
                problems.append('train.losses: empty; list at least one loss, e.g. '
                                '[{type: L1Loss, loss_weight: 1.0}].')
            problem = loss_terms.slot_problem({k: train.get(k) for k, _ in cls.loss_slots})
            if problem:
                problems.append(problem)
        entries = cls.loss_entries(opt)
        problems += loss_terms.entry_problems(entries, cls.loss_prefix, cls.reserved_log_names,
                                              cls.loss_targets)
        problems += cls.gan_entry_problems(entries)
        if train['ema_decay'] <= 0:
            problems += [f'{where}: {entry["type"]} compares with the EMA network\'s output; set '
                         f'train.ema_decay > 0 (e.g. 0.999).' for where, entry in entries
                         if getattr(_loss_class(entry), 'needs_ema_output', False)]
        return problems

    @classmethod
    def gan_entry_problems(cls, entries: list[tuple[str, dict]]) -> list[str]:
        return [f'{where}: GANLoss needs a discriminator; use a GAN model (SRGANModel, '
                f'ESRGANModel, RealESRGANModel) or drop it.'
                for where, entry in entries if loss_terms.is_gan_entry(entry)]

    def __init__(self, opt: dict, device: torch.device) -> None:
        super().__init__(opt, device)
        self.lq: torch.Tensor | None = None
        self.gt: torch.Tensor | None = None
        self.output: torch.Tensor | None = None
        self.loss_terms: list[loss_terms.LossTerm] = []
        self._ema_output: torch.Tensor | None = None
        self.net_g = self.build_net('network_g')
        if self.is_train:
            self.init_training_settings()

    def init_training_settings(self) -> None:
        self.init_generator_training()
        self.setup_schedulers()

    def init_generator_training(self) -> None:
        """G in train mode, its EMA copy, the losses, optimizer and stepper 'g'."""
        train_opt = self.opt['train']
        self.net_g.train()
        if train_opt['ema_decay'] > 0:
            self.ema = ModelEMA(unwrap(self.net_g), train_opt['ema_decay'])
        self.loss_terms = loss_terms.build_terms(self.loss_entries(self.opt), self.loss_prefix,
                                                 self.device)
        params = [p for p in self.net_g.parameters() if p.requires_grad]
        self.optimizer_g = self.setup_optimizer(params, train_opt['optim_g'])
        self.setup_stepper('g', self.optimizer_g, {'net_g': self.net_g})

    def feed_data(self, data: dict) -> None:
        self.lq = self.to_device(data['lq'])
        self.gt = self.to_device(data['gt']) if 'gt' in data else None

    def as_generator(self, net: torch.nn.Module, index: int | None = None) -> torch.nn.Module:
        """``net`` as a map from ``lq`` to the output in [0, 1] (models whose networks work on
        another range, or take more than the image, wrap it here); ``index``: for the one image
        ``index`` of the batch (tiled inference), else for the whole batch."""
        return net

    def optimize_parameters(self, current_iter: int) -> None:
        with self.autocast():
            self.output = self.as_generator(self.net_g)(self.lq)
        losses = self.content_losses(self.output.float())
        self.step('g', losses, current_iter)
        self.record_losses(losses)

    def content_losses(self, output: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every loss of the list but the GAN one, in order, by logged name."""
        self._ema_output = None
        losses: dict[str, torch.Tensor] = {}
        for term in self.loss_terms:
            if term.is_gan:
                continue
            target = self.loss_target(term.target, output)
            if term.needs_ema_output:
                value = term.loss(output, target, self.ema_output())
            else:
                value = term.loss(output, target)
            values = value if isinstance(value, tuple) else (value,)
            for name, part in zip(term.names, values):
                if part is not None:
                    losses[name] = part
        return losses

    def loss_target(self, target: str, output: torch.Tensor) -> torch.Tensor:
        """What a loss compares ``output`` with: 'gt', 'lq_up' (the LQ upsampled bicubically to
        the output's size), or (Real-ESRGAN models) 'gt_usm'."""
        if target == 'gt':
            return self.gt
        if target == 'lq_up':
            return F.interpolate(self.lq.float(), size=output.shape[-2:], mode='bicubic',
                                 align_corners=False)
        raise ValueError(f'{type(self).__name__} has no loss target {target!r}.')

    def ema_output(self) -> torch.Tensor:
        """The EMA network's output for this batch (LDL), computed once per iteration."""
        if self._ema_output is None:
            with torch.no_grad(), self.autocast():
                self._ema_output = self.as_generator(self.ema.module)(self.lq).float()
        return self._ema_output

    def inference_network(self) -> torch.nn.Module:
        """The network used for testing: the EMA one when training keeps one."""
        return self.ema.module if self.ema is not None else unwrap(self.net_g)

    @torch.no_grad()
    def test(self) -> None:
        """Run the inference network on ``self.lq``; tile by tile when ``val.tile`` is set."""
        net = self.inference_network()
        was_training = net.training
        net.eval()
        tile = (self.opt['val'] or {}).get('tile')
        if tile is None:
            self.output = self.padded(self.as_generator(net))(self.lq)
        else:
            self.output = torch.cat([
                tiled_inference(self.padded(self.as_generator(net, i)), lq[None],
                                self.opt['scale'], tile['size'], tile['overlap'], clamp=False)
                for i, lq in enumerate(self.lq)]).to(self.device)
        net.train(was_training)

    def padded(self, generator: Callable) -> Callable:
        """``generator`` on inputs padded to the size multiple and minimum of network_g's row in
        the capability table (validation images need not be multiples of a window)."""
        cap = capability(self.opt['network_g'])
        return padded_forward(generator, cap.size_multiple, self.opt['scale'], cap.min_size)

    def get_current_visuals(self) -> dict[str, torch.Tensor]:
        """LQ, result and GT of the last test, on the model's device (metrics run there)."""
        visuals = {'lq': self.lq.detach(), 'result': self.output.detach()}
        if self.gt is not None:
            visuals['gt'] = self.gt.detach()
        return visuals

    def networks_to_save(self) -> dict[str, dict[str, torch.nn.Module]]:
        nets = {'params': self.net_g}
        if self.ema is not None:
            nets['params_ema'] = self.ema.module
        return {'net_g': nets}


def _loss_class(entry: dict):
    try:
        return loss_terms.LOSS_REGISTRY.get(entry['type'])
    except KeyError:
        return None


# BasicSR's SwinIRModel is SRModel plus padding of the input to a multiple of the window size at
# test time; the SwinIR arch here pads inside forward, so BasicSR's SwinIR files run unchanged.
MODEL_REGISTRY.register(SRModel, name='SwinIRModel')
# HAT's HATModel and DRCT's DRCTModel (the authors' option files) are the same: their archs here
# pad inside forward too.
MODEL_REGISTRY.register(SRModel, name='HATModel')
MODEL_REGISTRY.register(SRModel, name='DRCTModel')
# DAT's DATModel and RGT's RGTModel test in overlapping chops to save memory; here that is
# val.tile (the archs pad inside forward), so their option files' model_type runs as SRModel.
MODEL_REGISTRY.register(SRModel, name='DATModel')
MODEL_REGISTRY.register(SRModel, name='RGTModel')
