import sys

import pytest

from basicsr_lite.registry import (ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY,
                                   MODEL_REGISTRY, Registry, RegistryError, build_from_opt)
from basicsr_lite.utils.misc import import_modules_with_suffix


def test_register_and_get():
    reg = Registry('thing')

    @reg.register()
    class Foo:
        def __init__(self, a=1):
            self.a = a

    reg.register(name='bar')(dict)
    assert reg.get('Foo') is Foo
    assert reg.get('bar') is dict
    assert 'Foo' in reg and list(reg) == ['Foo', 'bar']


def test_duplicate_name_is_an_error():
    reg = Registry('thing')
    reg.register(name='x')(int)
    with pytest.raises(ValueError, match="'x' is already registered"):
        reg.register(name='x')(float)


def test_miss_names_closest_and_lists_registered():
    with pytest.raises(RegistryError) as info:
        ARCH_REGISTRY.get('MSRResnet')
    message = str(info.value)
    assert "No arch named 'MSRResnet'" in message
    assert "Did you mean 'MSRResNet'?" in message
    assert 'EDSR' in message


def test_build_from_opt_does_not_mutate():
    opt = {'type': 'L1Loss', 'loss_weight': 0.5}
    loss = build_from_opt(LOSS_REGISTRY, opt)
    assert opt == {'type': 'L1Loss', 'loss_weight': 0.5}
    assert loss.loss_weight == 0.5


def test_all_builtin_registries_are_filled():
    import basicsr_lite.archs
    import basicsr_lite.data
    import basicsr_lite.losses  # noqa: F401
    import basicsr_lite.metrics
    import basicsr_lite.models  # noqa: F401
    assert {'EDSR', 'MSRResNet'} <= set(ARCH_REGISTRY.keys())
    assert {'L1Loss', 'MSELoss', 'CharbonnierLoss'} <= set(LOSS_REGISTRY.keys())
    assert {'calculate_psnr', 'calculate_ssim'} <= set(METRIC_REGISTRY.keys())
    assert {'PairedImageDataset', 'SingleImageDataset'} <= set(DATASET_REGISTRY.keys())
    assert 'SRModel' in MODEL_REGISTRY


def test_auto_import_by_suffix(tmp_path, monkeypatch):
    pkg = tmp_path / 'plugpkg'
    pkg.mkdir()
    (pkg / '__init__.py').write_text('')
    (pkg / 'tiny_arch.py').write_text(
        'from basicsr_lite.registry import Registry\nREG = Registry("x")\n'
        '@REG.register()\nclass Tiny: pass\n')
    (pkg / 'helper.py').write_text('raise RuntimeError("must not be imported")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    names = import_modules_with_suffix('plugpkg', pkg, '_arch')
    assert names == ['tiny_arch']
    assert 'Tiny' in sys.modules['plugpkg.tiny_arch'].REG
    assert 'plugpkg.helper' not in sys.modules
