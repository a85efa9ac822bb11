"""Real-ESRNet and Real-ESRGAN: training pairs synthesised from GT batches on the device with
the second-order degradation model (``data/degrade/realesrgan_pipeline.py``), BasicSR's option keys.

A training batch of ``RealESRGANDataset`` (GT + kernels) is degraded, cropped to ``gt_size``
and exchanged with the pair pool (``queue_size``); a batch with ``lq`` (validation, or training
on pairs with ``high_order_degradation: false``) is used as it is. The random stream of the
synthesis and the pool are saved per rank with the training state: a resumed run makes the same
pairs as the uninterrupted one.
"""
from __future__ import annotations

import torch

from basicsr_lite.data.contract import traits_of
from basicsr_lite.data.degrade.batch_degradations import USMSharp
from basicsr_lite.data.degrade.realesrgan_pipeline import (PIPELINE_OPTIONS, HighOrderDegradation,
                                                           TrainingPairPool,
                                                           paired_random_crop_batch)
from basicsr_lite.errors import OptionError
from basicsr_lite.models.sr_model import SRModel
from basicsr_lite.models.srgan_model import SRGANModel
from basicsr_lite.registry import DATASET_REGISTRY, MODEL_REGISTRY
from basicsr_lite.runtime.random_streams import RandomStreams


def _value_types(default) -> tuple[type, ...]:
    if isinstance(default, list):
        return (list,)
    return (int, float) if isinstance(default, (int, float)) else (type(default),)


# the top-level keys of the synthesis (data/degrade/realesrgan_pipeline.py), what each does
PIPELINE_DOCS = {
    'resize_prob': 'First stage: the probabilities of resizing up, down or not at all.',
    'resize_range': 'First stage: the range of the resize factor (up: from 1 to max, down: '
                    'from min to 1).',
    'gaussian_noise_prob': 'First stage: the probability of Gaussian noise (else Poisson '
                           'noise), per batch.',
    'noise_range': 'First stage: the range of the Gaussian noise sigma (0..255 scale).',
    'poisson_scale_range': 'First stage: the range of the Poisson noise scale.',
    'gray_noise_prob': 'First stage: the probability that an image gets the same noise in '
                       'every channel.',
    'jpeg_range': 'First stage: the range of the JPEG quality.',
    'second_blur_prob': 'Second stage: the probability of blurring with the second kernel.',
    'resize_prob2': 'Second stage: the probabilities of resizing up, down or not at all.',
    'resize_range2': 'Second stage: the range of the resize factor, relative to the LQ size.',
    'gaussian_noise_prob2': 'Second stage: the probability of Gaussian noise (else Poisson '
                            'noise), per batch.',
    'noise_range2': 'Second stage: the range of the Gaussian noise sigma (0..255 scale).',
    'poisson_scale_range2': 'Second stage: the range of the Poisson noise scale.',
    'gray_noise_prob2': 'Second stage: the probability that an image gets the same noise in '
                        'every channel.',
    'jpeg_range2': 'The final JPEG compression: the range of its quality.',
}


class SyntheticPairs:
    """What both models share: the option keys, the synthesis in ``feed_data``, its state."""

    opt: dict
    device: torch.device
    is_train: bool

    @classmethod
    def option_keys(cls, kit) -> dict:
        keys = {key: kit.Value(_value_types(default), default=default, check=check,
                               doc=PIPELINE_DOCS[key])
                for key, (default, check) in PIPELINE_OPTIONS.items()}
        keys.update(
            gt_size=kit.Value((int,), default=256, check=kit.positive,
                              doc='The GT patch the model crops after degrading (the LQ patch '
                                  'is gt_size / scale).'),
            queue_size=kit.Value((int,), default=180, check=kit.non_negative,
                                 doc='Training pairs in the pool that mixes degradations '
                                     'across batches (0: no pool).'),
            high_order_degradation=kit.Value((bool,), default=True,
                                             doc='Synthesise the LQ images from GT images and '
                                                 'kernels; false: train on the pairs of a '
                                                 'paired dataset.'))
        return keys

    def init_synthesis(self) -> None:
        """The USM sharpener; for training from GT only, the degradation, the pair pool and
        the random stream (seeded by manual_seed and the rank)."""
        self.usm_sharpener = USMSharp().to(self.device)
        self._gt_usm: torch.Tensor | None = None
        self.synthesis: HighOrderDegradation | None = None
        if not (self.is_train and self.opt['high_order_degradation']):
            return
        self.synthesis = HighOrderDegradation(self.opt, self.opt['scale'], self.device)
        self.pool = TrainingPairPool(self.opt['queue_size'])
        self.streams = RandomStreams(self.opt['manual_seed'] + self.opt['rank'], self.device)

    @classmethod
    def option_problems(cls, opt: dict, is_train: bool) -> list[str]:
        # the model's own (losses) first: this class stands before the model in the MRO
        return super().option_problems(opt, is_train) + cls.synthesis_problems(opt, is_train)

    @classmethod
    def synthesis_problems(cls, opt: dict, is_train: bool) -> list[str]:
        if not is_train:
            return []
        train = opt['datasets']['train']
        gives_kernels = traits_of(DATASET_REGISTRY.get(train['type'])).model_crops
        if not opt['high_order_degradation']:
            return [f"high_order_degradation: false trains on pairs, but datasets.train "
                    f"({train['type']}) gives GT images and kernels; use a paired dataset or "
                    f"set it to true."] if gives_kernels else []
        if not gives_kernels:
            return [f"high_order_degradation: {cls.__name__} makes the LQ images from GT images "
                    f"and kernels (datasets.train.type: RealESRGANDataset); datasets.train.type "
                    f"is {train['type']}. Set high_order_degradation: false to train on its "
                    f"pairs."]
        problems = []
        gt_size, crop = opt['gt_size'], train.get('crop_pad_size', 400)
        if gt_size % opt['scale']:
            problems.append(f"gt_size: {gt_size} is not divisible by scale {opt['scale']}.")
        if train.get('gt_size') is not None and train['gt_size'] != gt_size:
            problems.append(f"datasets.train.gt_size ({train['gt_size']}) differs from gt_size "
                            f"({gt_size}), the patch {cls.__name__} crops after degrading; make "
                            f"them equal (or drop datasets.train.gt_size).")
        if gt_size > crop:
            problems.append(f'gt_size: {gt_size} is larger than datasets.train.crop_pad_size '
                            f'({crop}).')
        if opt['queue_size'] % train['batch_size_per_gpu']:
            problems.append(f"queue_size: {opt['queue_size']} is not a multiple of "
                            f"datasets.train.batch_size_per_gpu ({train['batch_size_per_gpu']}).")
        return problems

    def degradation_source(self, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(what is degraded, the training GT) for a GT batch."""
        raise NotImplementedError

    def feed_data(self, data: dict) -> None:
        self._gt_usm = None
        if 'kernel1' not in data:  # pairs: validation, or training on a paired dataset
            super().feed_data(data)
            return
        if self.synthesis is None:
            raise OptionError('high_order_degradation is false, but datasets.train gives GT '
                              'images and kernels (RealESRGANDataset); use a paired dataset.')
        gt = data['gt'].to(self.device, non_blocking=True)
        kernels = [data[k].to(self.device, non_blocking=True)
                   for k in ('kernel1', 'kernel2', 'sinc_kernel')]
        source, target = self.degradation_source(gt)
        lq = self.synthesis(source, *kernels, self.streams)
        (target,), lq = paired_random_crop_batch([target], lq, self.opt['gt_size'],
                                                 self.opt['scale'], self.streams)
        lq, target = self.pool.exchange(lq, target, self.streams)
        self.lq, self.gt = self.to_device(lq.contiguous()), self.to_device(target.contiguous())

    def loss_target(self, target: str, output: torch.Tensor) -> torch.Tensor:
        return self.gt_usm if target == 'gt_usm' else super().loss_target(target, output)

    @property
    def gt_usm(self) -> torch.Tensor:
        """The USM-sharpened GT of the current batch (computed once per batch)."""
        if self._gt_usm is None:
            self._gt_usm = self.usm_sharpener(self.gt)
        return self._gt_usm

    def rank_state(self) -> dict:
        if self.synthesis is None:
            return {}
        return {'synthesis_streams': self.streams.state_dict(),
                'pair_pool': self.pool.state_dict()}

    def load_rank_state(self, state: dict) -> None:
        if self.synthesis is not None and 'synthesis_streams' in state:
            self.streams.load_state_dict(state['synthesis_streams'])
            self.pool.load_state_dict(state['pair_pool'], self.device)


@MODEL_REGISTRY.register()
class RealESRNetModel(SyntheticPairs, SRModel):
    """Real-ESRNet: the generator alone with a pixel loss on synthesised pairs. ``gt_usm``:
    sharpen the GT before degrading it, and train towards the sharpened GT."""

    loss_targets = ('gt', 'gt_usm', 'lq_up')

    @classmethod
    def option_keys(cls, kit) -> dict:
        return {**super().option_keys(kit),
                'gt_usm': kit.Value((bool,), default=True,
                                    doc='Sharpen the GT (unsharp mask) before degrading it, '
                                        'and train towards the sharpened GT.')}

    def __init__(self, opt: dict, device: torch.device) -> None:
        super().__init__(opt, device)
        self.init_synthesis()

    def degradation_source(self, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.opt['gt_usm']:
            gt = self.usm_sharpener(gt)
        return gt, gt


USM_FLAG_DOCS = {
    'l1_gt_usm': "pixel_opt compares with the sharpened GT (true) or the GT; null: true.",
    'percep_gt_usm': "perceptual_opt compares with the sharpened GT (true) or the GT; null: "
                     "true.",
    'gan_gt_usm': "D's real images are the sharpened GT (true) or the GT; null: false.",
}


@MODEL_REGISTRY.register()
class RealESRGANModel(SyntheticPairs, SRGANModel):
    """Real-ESRGAN: SRGAN's losses (pixel, perceptual, GAN; a U-Net discriminator with spectral
    norm in the x4plus recipe) on synthesised pairs. The sharpened GT is degraded; the losses
    compare with the sharpened GT where ``l1_gt_usm`` / ``percep_gt_usm`` / ``gan_gt_usm``
    (D's real images) say so, else with the GT (null: BasicSR's defaults true, true, false).
    With ``train.losses`` each entry says its ``target`` instead (the flags must be left out);
    BasicSR's ``ldl_opt`` compares with the plain GT, as the authors' code."""

    loss_targets = ('gt', 'gt_usm', 'lq_up')
    USM_FLAGS = {'pixel_opt': ('l1_gt_usm', True), 'perceptual_opt': ('percep_gt_usm', True),
                 'gan_opt': ('gan_gt_usm', False)}

    @classmethod
    def option_keys(cls, kit) -> dict:
        return {**super().option_keys(kit),
                **{flag: kit.Value((bool, type(None)), default=None, doc=USM_FLAG_DOCS[flag])
                   for flag, _ in cls.USM_FLAGS.values()}}

    @classmethod
    def usm_flag(cls, opt: dict, slot: str) -> bool:
        flag, default = cls.USM_FLAGS[slot]
        return default if opt.get(flag) is None else opt[flag]

    @classmethod
    def slot_entry(cls, opt: dict, key: str, short: str) -> dict:
        entry = super().slot_entry(opt, key, short)
        if key in cls.USM_FLAGS and cls.usm_flag(opt, key):
            entry['target'] = 'gt_usm'
        return entry

    @classmethod
    def option_problems(cls, opt: dict, is_train: bool) -> list[str]:
        problems = super().option_problems(opt, is_train)
        if is_train and opt['train'].get('losses') is not None:
            problems += [f"{flag}: applies to BasicSR's train.{slot}; with train.losses give "
                         f"the entry a target (gt_usm or gt) instead and drop {flag}."
                         for slot, (flag, _) in cls.USM_FLAGS.items() if opt.get(flag) is not None]
        return problems

    def __init__(self, opt: dict, device: torch.device) -> None:
        super().__init__(opt, device)
        self.init_synthesis()

    def degradation_source(self, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.usm_sharpener(gt), gt

    def gt_for(self, loss: str) -> torch.Tensor:
        """The GT that BasicSR's ``loss`` slot ('pixel', 'perceptual', 'gan': D's real images)
        compares with under the ``*_gt_usm`` flags."""
        slot = {'pixel': 'pixel_opt', 'perceptual': 'perceptual_opt', 'gan': 'gan_opt'}[loss]
        return self.gt_usm if self.usm_flag(self.opt, slot) else self.gt
