"""Name -> class registries that turn option dicts into objects."""
from __future__ import annotations

import copy
import importlib
from typing import Any, Callable, Iterator

from basicsr_lite.basicsr_names import not_available_message
# RegistryError is also importable from here (its home before errors.py).
from basicsr_lite.errors import RegistryError, closest_match, rejected_options


class Registry:
    """Maps names to classes or functions.

    Register with ``@ARCH_REGISTRY.register()``; look up with ``ARCH_REGISTRY.get('EDSR')``.
    """

    def __init__(self, name: str, package: str | None = None) -> None:
        self.name = name
        self._items: dict[str, Any] = {}
        # Importing the package runs its auto-import of ``*_<kind>.py`` files (on first lookup).
        self._package = package

    def _load(self) -> None:
        if self._package is not None:
            package, self._package = self._package, None
            importlib.import_module(package)

    def register(self, obj: Any = None, name: str | None = None) -> Callable | Any:
        """Use as ``@reg.register()``, ``@reg.register(name='x')`` or ``reg.register(obj)``."""
        if obj is not None:
            self._add(name or obj.__name__, obj)
            return obj

        def decorator(target: Any) -> Any:
            self._add(name or target.__name__, target)
            return target

        return decorator

    def _add(self, name: str, obj: Any) -> None:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"'{name}' is already registered in the {self.name} registry "
                             f'(by {self._items[name].__module__}).')
        self._items[name] = obj

    def get(self, name: str) -> Any:
        self._load()
        if name not in self._items:
            raise RegistryError(self.missing_message(name))
        return self._items[name]

    def missing_message(self, name: Any) -> str:
        self._load()
        msg = not_available_message(self.name, str(name))
        if msg is not None:
            return f"{msg} Available: {', '.join(sorted(self._items))}."
        msg = f"No {self.name} named '{name}'."
        close = closest_match(str(name), self._items)
        if close is not None:
            msg += f" Did you mean '{close}'?"
        return msg + f" Registered: {', '.join(sorted(self._items)) or '(none)'}."

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def keys(self) -> list[str]:
        self._load()
        return sorted(self._items)


ARCH_REGISTRY = Registry('arch', 'basicsr_lite.archs')
MODEL_REGISTRY = Registry('model', 'basicsr_lite.models')
DATASET_REGISTRY = Registry('dataset', 'basicsr_lite.data')
LOSS_REGISTRY = Registry('loss', 'basicsr_lite.losses')
METRIC_REGISTRY = Registry('metric', 'basicsr_lite.metrics')
HOOK_REGISTRY = Registry('hook', 'basicsr_lite.engine.builtin_hooks')  # see engine/hooks.py


def build_from_opt(registry: Registry, opt: dict, where: str | None = None,
                   **extra: Any) -> Any:
    """Build ``registry[opt['type']](**rest, **extra)`` without mutating ``opt``. A value the
    constructor rejects is an OptionError naming ``where`` (the option key, e.g. 'network_g')."""
    kwargs = copy.deepcopy(dict(opt))
    type_name = kwargs.pop('type')
    kwargs.update(extra)
    cls = registry.get(type_name)
    with rejected_options(f'{where or registry.name} ({type_name})'):
        return cls(**kwargs)
