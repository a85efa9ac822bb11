"""The YAML loader of option files and ``--force_yml`` values.

``yaml.SafeLoader`` with two changes:
- YAML 1.1 reads ``1e-3`` and ``5e-5`` (no dot) and ``1.0e3`` (no exponent sign) as strings;
  here they are floats, as a user writing ``lr: 1e-3`` means (YAML 1.2 and TOML agree).
- A key written twice in one mapping is an error (:class:`DuplicateKeyError`) instead of the
  last one silently winning; keys brought in by a ``<<`` merge may still be overridden.
"""
from __future__ import annotations

import re
from typing import Any

import yaml

# DuplicateKeyError is also importable from here (its home before errors.py).
from basicsr_lite.errors import DuplicateKeyError

# YAML 1.1's float forms, with the exponent's dot and sign optional (as in YAML 1.2).
FLOAT_PATTERN = re.compile(r'''^(?:
     [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$''', re.X)


class OptionLoader(yaml.SafeLoader):
    """SafeLoader + floats in scientific notation + duplicate keys refused."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == 'tag:yaml.org,2002:merge':
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKeyError(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: SafeLoader's own error follows
                continue
        return super().construct_mapping(node, deep=deep)


OptionLoader.add_implicit_resolver('tag:yaml.org,2002:float', FLOAT_PATTERN,
                                   list('-+0123456789.'))


def load_yaml(text: str) -> Any:
    """``text`` as YAML with :class:`OptionLoader`."""
    return yaml.load(text, Loader=OptionLoader)  # noqa: S506 (a SafeLoader subclass)
