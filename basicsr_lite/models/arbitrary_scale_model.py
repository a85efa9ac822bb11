"""SR at arbitrary scales: ``output = net_g(lq, scale)`` (ArbSR)."""
from __future__ import annotations

import inspect

import torch

from basicsr_lite.data.contract import traits_of
from basicsr_lite.errors import DataError
from basicsr_lite.models.sr_model import SRModel
from basicsr_lite.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY


@MODEL_REGISTRY.register()
class ArbitraryScaleSRModel(SRModel):
    """SRModel whose network also takes the batch's scale, (scale_h, scale_w), given by the
    data (MultiScaleDataset: one scale per training batch; one validation set per scale)."""

    @classmethod
    def option_problems(cls, opt: dict, is_train: bool) -> list[str]:
        problems = []
        arch = ARCH_REGISTRY.get(opt['network_g']['type'])
        if 'scale' not in inspect.signature(arch.forward).parameters:
            problems.append(f"network_g.type: {cls.__name__} runs net_g(lq, scale); "
                            f"{opt['network_g']['type']} takes no scale (use ArbSR).")
        for key, entry in opt['datasets'].items():
            if not traits_of(DATASET_REGISTRY.get(entry['type'])).gives_scale:
                problems.append(f"datasets.{key}.type: {cls.__name__} needs each image's scale; "
                                f"{entry['type']} gives none (use MultiScaleDataset).")
        if (opt.get('val') or {}).get('tile') is not None:
            problems.append(f'val.tile: tiled inference works at integer scales; '
                            f'{cls.__name__} validates whole images.')
        return problems

    def __init__(self, opt: dict, device: torch.device) -> None:
        self.scale_pair: tuple[float, float] | None = None
        super().__init__(opt, device)

    def feed_data(self, data: dict) -> None:
        super().feed_data(data)
        if 'scale' not in data:
            raise DataError(f'{type(self).__name__}: a batch without its scale.')
        scales = data['scale'].reshape(-1, 2)
        if not torch.all(scales == scales[0]):
            raise DataError(f'{type(self).__name__}: a batch mixes scales '
                            f'{sorted(set(map(tuple, scales.tolist())))}.')
        self.scale_pair = tuple(scales[0].tolist())

    def as_generator(self, net: torch.nn.Module, index: int | None = None):
        pair = self.scale_pair
        return lambda lq: net(lq, pair)
