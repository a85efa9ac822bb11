"""SR conditioned on per-image metadata: ``output = net_g(lq, meta)`` (SFTMD)."""
from __future__ import annotations

import inspect

import torch

from basicsr_lite.errors import DataError
from basicsr_lite.models.sr_model import SRModel
from basicsr_lite.registry import ARCH_REGISTRY, MODEL_REGISTRY


@MODEL_REGISTRY.register()
class ConditionedSRModel(SRModel):
    """SRModel whose network also takes each image's ``meta`` vector, which every dataset of the
    run must give (its ``metadata`` option: values of the degradation it applied, or of a
    metadata file)."""

    @classmethod
    def option_problems(cls, opt: dict, is_train: bool) -> list[str]:
        network = opt['network_g']
        params = inspect.signature(ARCH_REGISTRY.get(network['type'])).parameters
        num_meta = network.get('num_meta', params['num_meta'].default
                               if 'num_meta' in params else None)
        problems = []
        for key, entry in opt['datasets'].items():
            names = entry.get('metadata')
            if not names:
                problems.append(f'datasets.{key}.metadata: {cls.__name__} feeds each image\'s '
                                f'metadata to network_g; this dataset gives none (list the '
                                f'values, e.g. metadata: [blur_sigma]).')
            elif isinstance(num_meta, int) and len(names) != num_meta:
                problems.append(f'datasets.{key}.metadata: {len(names)} value(s) '
                                f'({", ".join(names)}) but network_g.num_meta is {num_meta}.')
        train = opt['datasets'].get('train')
        for key, entry in opt['datasets'].items():
            if train is None or key == 'train' or not entry.get('metadata'):
                continue
            for option in ('metadata', 'metadata_range'):
                if entry.get(option) != train.get(option):
                    problems.append(f'datasets.{key}.{option}: {entry.get(option)} differs from '
                                    f"datasets.train's ({train.get(option)}); the network would "
                                    f'see other values than it was trained on.')
        return problems

    def __init__(self, opt: dict, device: torch.device) -> None:
        self.meta: torch.Tensor | None = None
        super().__init__(opt, device)

    def feed_data(self, data: dict) -> None:
        super().feed_data(data)
        if 'meta' not in data:
            raise DataError(f'{type(self).__name__}: a batch without metadata (its dataset has '
                            f'no metadata option).')
        self.meta = self.to_device(data['meta'])

    def as_generator(self, net: torch.nn.Module, index: int | None = None):
        meta = self.meta if index is None else self.meta[index:index + 1]
        return lambda lq: net(lq, meta.expand(lq.size(0), -1))
