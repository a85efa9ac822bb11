"""ESRGAN: SRGAN with the relativistic average GAN loss (Wang et al. 2018), with BasicSR 1.4.2's
calls of the discriminator.

BasicSR's ESRGANModel calls D five times per iteration: in G's step D(gt) (detached) and then
D(output); in D's step D(output) (detached, for the real term's mean), D(gt), and D(output
.detach()) (the fake term). Where a train-mode forward changes D (spectral norm's power iteration,
batch-norm running statistics), the calls and their order decide the training, so that such a D
is called exactly so. A D whose forward changes nothing gives the same numbers with one call
less (D's fake output serves both terms), which saves that forward. A run resumed from a
training state written before this rule continues with the calls it began with (four, fake
before real in G's step): exact resume wins over the mend there.
"""
from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm

from basicsr_lite.losses.gan_loss import map_pred, relativistic_pair
from basicsr_lite.models.srgan_model import SRGANModel
from basicsr_lite.registry import MODEL_REGISTRY
from basicsr_lite.runtime.dist import unwrap

logger = logging.getLogger('basicsr_lite')


def forward_changes_state(net: nn.Module) -> bool:
    """Whether a train-mode forward of ``net`` changes it: spectral norm (hook or
    parametrization form: one power iteration per call) or batch norm with running statistics."""
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            return True
        if any(isinstance(hook, SpectralNorm) for hook in module._forward_pre_hooks.values()):
            return True
        parametrizations = getattr(module, 'parametrizations', None)
        if parametrizations is not None and any(
                type(p).__name__ == '_SpectralNorm' for plist in parametrizations.values()
                for p in plist):
            return True
    return False


@MODEL_REGISTRY.register()
class ESRGANModel(SRGANModel):
    """SRGAN with the relativistic average GAN loss (ESRGAN): G makes its output look more real
    than real images on average, D the opposite; D's two terms are halved. ``d_calls``:
    'basicsr' (BasicSR's five calls) when D's forward changes D, else 'compact' (four)."""

    d_calls = 'compact'
    _fake_pred_for_real: torch.Tensor | None = None  # BasicSR's third call, for l_d_real

    def init_training_settings(self) -> None:
        super().init_training_settings()
        stateful = forward_changes_state(unwrap(self.net_d))
        self.d_calls = 'basicsr' if stateful else 'compact'

    def state_dict(self) -> dict:
        return {**super().state_dict(), 'd_calls': self.d_calls}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if 'd_calls' in state:
            self.d_calls = state['d_calls']
        elif 'model_type' in state and self.d_calls != 'compact':  # basicsr_lite, before
            self.d_calls = 'compact'
            logger.info('The training state is from before BasicSR\'s order of D calls; the run '
                        'continues with the calls it began with (four per iteration).')

    def adversarial_generator_loss(self, net_d, output: torch.Tensor) -> torch.Tensor:
        def real() -> torch.Tensor:
            return map_pred(lambda p: p.detach().float(),
                            net_d(self.d_input(self.real_images())))

        if self.d_calls == 'basicsr':
            real_pred = real()
            fake_pred = map_pred(torch.Tensor.float, net_d(self.d_input(output)))
        else:
            fake_pred = map_pred(torch.Tensor.float, net_d(self.d_input(output)))
            real_pred = real()
        return (relativistic_pair(self.cri_gan, real_pred, fake_pred, False, is_disc=False)
                + relativistic_pair(self.cri_gan, fake_pred, real_pred, True, is_disc=False)) / 2

    def discriminator_predictions(self, real: torch.Tensor, fake: torch.Tensor
                                  ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.d_calls == 'basicsr':
            with torch.no_grad():  # BasicSR's net_d(output).detach()
                self._fake_pred_for_real = map_pred(torch.Tensor.float,
                                                    self.net_d(self.d_input(fake)))
        return super().discriminator_predictions(real, fake)

    def adversarial_discriminator_losses(self, real_pred: torch.Tensor, fake_pred: torch.Tensor
                                         ) -> dict[str, torch.Tensor]:
        fake_for_real, self._fake_pred_for_real = self._fake_pred_for_real, None
        if fake_for_real is None:
            fake_for_real = map_pred(torch.Tensor.detach, fake_pred)
        return {
            'l_d_real': relativistic_pair(self.cri_gan, real_pred, fake_for_real, True,
                                          is_disc=True) * 0.5,
            'l_d_fake': relativistic_pair(self.cri_gan, fake_pred,
                                          map_pred(torch.Tensor.detach, real_pred), False,
                                          is_disc=True) * 0.5,
        }
