from __future__ import annotations

from typing import Callable

import torch

from basicsr_lite.archs.capabilities import capability
from basicsr_lite.losses import build_loss
from basicsr_lite.models.base_model import BaseModel
from basicsr_lite.registry import MODEL_REGISTRY
from basicsr_lite.runtime.dist import unwrap
from basicsr_lite.runtime.ema import ModelEMA
from basicsr_lite.runtime.tiling import padded_forward, tiled_inference


@MODEL_REGISTRY.register()
class SRModel(BaseModel):
    """Single-network restoration: ``output = net_g(lq)``, trained with a pixel loss and,
    optionally, a frequency loss (``fft_opt``, as SAFMN's recipes)."""

    network_keys = ('network_g',)

    @classmethod
    def train_keys(cls, kit) -> dict:
        return {'optim_g': kit.optimizer(), 'pixel_opt': kit.loss(), 'fft_opt': kit.loss()}

    def __init__(self, opt: dict, device: torch.device) -> None:
        super().__init__(opt, device)
        self.lq: torch.Tensor | None = None
        self.gt: torch.Tensor | None = None
        self.output: torch.Tensor | None = None
        self.cri_pix = None
        self.cri_fft = None
        self.net_g = self.build_net('network_g')
        if self.is_train:
            self.init_training_settings()

    def init_training_settings(self) -> None:
        self.init_generator_training()
        self.setup_schedulers()

    def init_generator_training(self) -> None:
        """G in train mode, its EMA copy, pixel loss, optimizer and stepper 'g'."""
        train_opt = self.opt['train']
        self.net_g.train()
        if train_opt['ema_decay'] > 0:
            self.ema = ModelEMA(unwrap(self.net_g), train_opt['ema_decay'])
        self.cri_pix = self.optional_loss('pixel_opt')
        self.cri_fft = self.optional_loss('fft_opt')
        params = [p for p in self.net_g.parameters() if p.requires_grad]
        self.optimizer_g = self.setup_optimizer(params, train_opt['optim_g'])
        self.setup_stepper('g', self.optimizer_g, {'net_g': self.net_g})

    def optional_loss(self, key: str) -> torch.nn.Module | None:
        """The loss of ``train.<key>`` on the device, or None when it is null."""
        opt = self.opt['train'][key]
        return None if opt is None else build_loss(opt, f'train.{key}').to(self.device)

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
        losses = {'l_pix': self.cri_pix(self.output.float(), self.gt)}
        if self.cri_fft is not None:
            losses['l_fft'] = self.cri_fft(self.output.float(), self.gt)
        self.step('g', losses, current_iter)
        self.record_losses(losses)

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


# BasicSR's SwinIRModel is SRModel plus padding of the input to a multiple of the window size at
# test time; the SwinIR arch here pads inside forward, so BasicSR's SwinIR files run unchanged.
MODEL_REGISTRY.register(SRModel, name='SwinIRModel')
