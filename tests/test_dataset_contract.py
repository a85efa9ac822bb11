"""The dataset contract (basicsr_lite/data/contract.py): every registered dataset keeps it, and its
accessors read a dataset's traits and state through the sample wrappers."""
import dataclasses

import cv2
import numpy as np
import pytest
from torch.utils.data import Dataset, Subset

import basicsr_lite.data  # noqa: F401  (registers the datasets)
from basicsr_lite.data.contract import (TRAIT_NAMES, BatchSampled, DatasetTraits, ScaleVariants,
                                        SRDataset, base_dataset, constructor_keys, dataset_codec,
                                        dataset_scales, fixed_scale, image_list_attr,
                                        option_problems, pixel_reader, produces, traits_of)
from basicsr_lite.data.io.band_io import write_lossless
from basicsr_lite.data.loading.sample_wrappers import SeededSamples, SkipCorruptEval
from basicsr_lite.data.multiscale_dataset import MultiScaleDataset
from basicsr_lite.data.single_image_dataset import SingleImageDataset
from basicsr_lite.registry import DATASET_REGISTRY

DECLARED = {'MultiScaleDataset': DatasetTraits(per_batch=True, gives_scale=True),
            'RealESRGANDataset': DatasetTraits(model_crops=True)}


def registered() -> list[tuple[str, type]]:
    return [(name, DATASET_REGISTRY.get(name)) for name in sorted(DATASET_REGISTRY.keys())]


def test_the_registry_holds_the_known_datasets():
    assert [name for name, _ in registered()] == [
        'AlignedDataset', 'DegradationDataset', 'MultiScaleDataset', 'PairedImageDataset',
        'RealESRGANDataset', 'SingleImageDataset']


@pytest.mark.parametrize('name, cls', registered())
def test_every_registered_dataset_keeps_the_contract(name, cls):
    assert issubclass(cls, SRDataset)
    # traits are declared only through DatasetTraits, never as loose class attributes
    for klass in cls.__mro__:
        assert not set(TRAIT_NAMES) & set(vars(klass)), klass
    declared = vars(cls).get('traits')
    assert declared is None or type(declared) is DatasetTraits
    traits = traits_of(cls)
    assert traits == DECLARED.get(name, DatasetTraits())
    for field in dataclasses.fields(traits):
        assert type(getattr(traits, field.name)) is bool
    if traits.per_batch:  # told its batch by the training wrapper
        assert issubclass(cls, BatchSampled)
    if traits.gives_scale:  # one evaluation set per scale
        assert callable(getattr(cls, 'at_scale', None))


def test_constructor_keys_are_the_options_and_run_values():
    assert {'dataroot_gt', 'scales', 'phase', 'lq_size'} <= constructor_keys(MultiScaleDataset)
    assert 'scale' not in constructor_keys(MultiScaleDataset)
    assert {'dataroot_lq', 'scale', 'phase', 'read_mode'} <= constructor_keys(SingleImageDataset)


def test_traits_take_only_known_names_and_flags():
    with pytest.raises(TypeError):
        DatasetTraits(gives_scales=True)  # a misspelt trait
    with pytest.raises(TypeError, match=r'DatasetTraits\.per_batch: expected true or false'):
        DatasetTraits(per_batch=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DatasetTraits().per_batch = True

    class WrongTraits(Dataset):
        traits = {'per_batch': True}

    with pytest.raises(TypeError, match=r'WrongTraits\.traits: expected a DatasetTraits'):
        traits_of(WrongTraits)


def test_a_dataset_without_declarations_gets_the_defaults():
    class Plain(Dataset):
        def __len__(self) -> int:
            return 1

        def __getitem__(self, index: int) -> dict:
            return {'lq': index}

    plain = Plain()
    assert isinstance(plain, SRDataset) and not isinstance(plain, ScaleVariants)
    assert traits_of(Plain) == traits_of(SeededSamples(plain)) == DatasetTraits()
    assert option_problems(Plain, {}) == [] and produces(Subset(plain, [0])) is None
    assert fixed_scale(plain) is None and fixed_scale(None) is None
    assert pixel_reader(plain) is None and dataset_codec(None) is None
    assert list(dataset_scales(plain)) == [] and image_list_attr(plain) is None


def test_stated_outputs_and_own_checks_are_read_through_the_contract():
    class Stating(Dataset):
        paths = 'not a list'
        pairs = [('a', 'b')]

        @classmethod
        def option_problems(cls, options: dict, check_files: bool = True) -> list:
            return [('gt_size', f'checked files: {check_files}')]

        def produces(self) -> dict:
            return {'lq_ch': 1, 'gt_ch': 3, 'scale': 1}

    stating = Stating()
    assert produces(SkipCorruptEval(Subset(stating, [0]))) == {'lq_ch': 1, 'gt_ch': 3,
                                                               'scale': 1}
    assert option_problems(Stating, {}, check_files=False) == [('gt_size',
                                                                'checked files: False')]
    assert image_list_attr(stating) == 'pairs'  # 'paths' is no list


@pytest.fixture
def multiscale(tmp_path) -> MultiScaleDataset:
    (tmp_path / 'gt').mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / 'gt' / 'a.png'), rng.integers(0, 256, (38, 40, 3), np.uint8))
    return MultiScaleDataset(str(tmp_path / 'gt'), [[1.4, 3], 2], phase='val')


def test_the_accessors_look_through_the_sample_wrappers(multiscale):
    variant = multiscale.at_scale((1.4, 3.0))
    for wrapped in (SkipCorruptEval(Subset(variant, range(1))), SeededSamples(variant),
                    Subset(SkipCorruptEval(variant), [0])):
        assert base_dataset(wrapped) is variant
        assert traits_of(wrapped) == DatasetTraits(per_batch=True, gives_scale=True)
        assert fixed_scale(wrapped) == (1.4, 3.0)
        assert list(dataset_scales(wrapped)) == [(1.4, 3.0), (2.0, 2.0)]
        assert pixel_reader(wrapped) is variant.pixels and dataset_codec(wrapped) is None
    # the set of two scales has none fixed; each variant is one set of the loaders
    assert fixed_scale(SeededSamples(multiscale)) is None
    assert isinstance(multiscale, ScaleVariants) and isinstance(multiscale, BatchSampled)
    assert image_list_attr(multiscale) == 'paths' and len(multiscale.paths) == 1


def test_the_band_codec_is_read_through_the_wrappers(tmp_path):
    (tmp_path / 'lq').mkdir()
    image = np.arange(6 * 5 * 4, dtype=np.uint16).reshape(6, 5, 4) * 500
    write_lossless(image, tmp_path / 'lq' / 'a')
    dataset = SingleImageDataset(str(tmp_path / 'lq'), read_mode='unchanged',
                                 normalize={'type': 'range', 'data_range': 65535})
    codec = dataset_codec(SkipCorruptEval(Subset(dataset, [0])))
    assert codec is dataset.pixels.codec and pixel_reader(SeededSamples(dataset)) is dataset.pixels
    assert codec.bands == 4
    assert traits_of(SeededSamples(dataset)) == DatasetTraits()
