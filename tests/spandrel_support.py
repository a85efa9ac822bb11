"""The one place where tests import spandrel (the loader of chaiNNer / ComfyUI).

spandrel's package import imports every architecture it has, and two unrelated ones (LaMa,
RestoreFormer) import torchvision, which this project's CPU environment does not install. When
torchvision is absent, :func:`spandrel_or_skip` puts a minimal stand-in module with the three
names they import into ``sys.modules`` for the test only (monkeypatch removes it afterwards).
The package itself never does this: on users' machines the check uses the real package."""
from __future__ import annotations

import importlib.util
import sys
import types

import pytest


def torchvision_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """``torchvision.transforms.functional`` with ``InterpolationMode``, ``rotate`` and
    ``normalize`` (never called by what the tests load), if torchvision is missing."""
    if importlib.util.find_spec('torchvision') is not None:
        return
    tv = types.ModuleType('torchvision')
    transforms = types.ModuleType('torchvision.transforms')
    functional = types.ModuleType('torchvision.transforms.functional')
    functional.InterpolationMode = object
    functional.rotate = functional.normalize = None
    tv.transforms, transforms.functional = transforms, functional
    for name, module in [('torchvision', tv), ('torchvision.transforms', transforms),
                         ('torchvision.transforms.functional', functional)]:
        monkeypatch.setitem(sys.modules, name, module)


def spandrel_or_skip(monkeypatch: pytest.MonkeyPatch):
    """The spandrel package (with the torchvision stand-in where needed), or a skip."""
    if importlib.util.find_spec('spandrel') is None:
        pytest.skip('spandrel is not installed (pip install -e ".[interop]")')
    torchvision_stand_in(monkeypatch)
    import spandrel
    return spandrel


@pytest.fixture
def spandrel(monkeypatch):
    """spandrel for one test (see the module docstring for the torchvision stand-in)."""
    return spandrel_or_skip(monkeypatch)
