"""What the option reference (``tools/options_reference.py``) and the JSON Schema
(``tools/option_schema.py``) say about the nodes of the option schema: their types, defaults and
value checks, in words and as JSON Schema keywords, and the arguments and docstrings of
registered entries. One module, so that the page and the schema say the same thing."""
from __future__ import annotations

import importlib.metadata
import inspect
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from basicsr_lite.data.degrade.realesrgan_pipeline import resize_range
from basicsr_lite.options import spec_parts
from basicsr_lite.options.schema import (MISSING, ListOf, MapOf, Section, Spec, Typed, Value,
                                         argument_types)
from basicsr_lite.runtime import speed, speed_probe
from basicsr_lite.utils import checks

KEY = '<key>'  # the name of a user-named entry (datasets.<key>, val.metrics.<key>)

TYPE_WORDS = {bool: 'bool', int: 'int', float: 'float', str: 'str', type(None): 'null',
              dict: 'mapping', list: 'list', tuple: 'list', object: 'any'}
JSON_TYPES = {bool: 'boolean', int: 'integer', float: 'number', str: 'string',
              type(None): 'null', dict: 'object', list: 'array', tuple: 'array'}


def type_text(types: tuple[type, ...]) -> str:
    """``(int, type(None))`` -> ``'int or null'``; int and float together are a number."""
    words = list(dict.fromkeys(TYPE_WORDS.get(t, t.__name__) for t in types))
    if 'int' in words and 'float' in words:
        words[words.index('int')] = 'number'
        words.remove('float')
    return ' or '.join(words)


def json_type(types: tuple[type, ...] | None, nullable: bool = False) -> dict:
    """The ``type`` keyword of ``types`` (``{}``: any value). ``number`` covers ``integer``."""
    if types is None or object in types:
        return {}
    names = list(dict.fromkeys(JSON_TYPES[t] for t in types))
    if 'number' in names and 'integer' in names:
        names.remove('integer')
    if nullable and 'null' not in names:
        names.append('null')
    return {'type': names[0] if len(names) == 1 else names}


def to_json(value: Any) -> tuple[bool, Any]:
    """``(ok, value as JSON)``: tuples become lists; non-finite floats, objects and functions
    have no JSON form."""
    if value is None or isinstance(value, (bool, int, str)):
        return True, value
    if isinstance(value, float):
        return math.isfinite(value), value
    if isinstance(value, (list, tuple)):
        items = [to_json(v) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: to_json(v) for k, v in value.items()}
        return all(ok for ok, _ in items.values()), {k: v for k, (_, v) in items.items()}
    return False, value


def value_text(value: Any) -> str:
    """A value as an option file writes it (``null``, ``true``, ``[0.5, 1]``); other objects by
    a repr without memory addresses (so that the page is the same on every run)."""
    ok, as_json = to_json(value)
    if ok:
        return json.dumps(as_json, ensure_ascii=False) if not isinstance(as_json, str) \
            else as_json
    return re.sub(r' at 0x[0-9a-fA-F]+', '', repr(value))


def default_of(spec: Spec) -> Any:
    """The default a node fills in (MISSING: none), ``{}`` / ``[]`` for factory defaults."""
    default = spec.default
    return default() if callable(default) else default


# ---- value checks: in words and as JSON Schema keywords -------------------------------------------

@dataclass(frozen=True)
class Constraint:
    text: str  # for the page, e.g. '> 0'
    schema: dict  # JSON Schema keywords that say the same (as much as JSON Schema can)


NUMBER = {'type': 'number'}
FIXED = {
    checks.positive: Constraint('> 0', {'exclusiveMinimum': 0}),
    checks.non_negative: Constraint('>= 0', {'minimum': 0}),
    checks.in_unit_interval: Constraint('in [0, 1)', {'minimum': 0, 'exclusiveMaximum': 1}),
    checks.probability: Constraint('in [0, 1]', {'minimum': 0, 'maximum': 1}),
    spec_parts.num_gpu_check: Constraint(
        "'auto' or an integer >= 0",
        {'anyOf': [{'const': 'auto'}, {'type': 'integer', 'minimum': 0}]}),
    spec_parts.fraction_or_count: Constraint(
        'a number of batches >= 1, or a fraction in (0, 1]',
        {'anyOf': [{'type': 'integer', 'minimum': 1},
                   {'type': 'number', 'exclusiveMinimum': 0, 'maximum': 1},
                   {'type': 'null'}]}),
    spec_parts.memory_size_check: Constraint(
        'a size such as 24GB, 11.5GiB or 800MB (GB means GiB), or a number of bytes',
        {'anyOf': [{'type': 'integer', 'minimum': 0},
                   {'type': 'string', 'pattern': r'^\s*\d+(\.\d+)?\s*[KMGTkmgt]?([Ii]?[Bb])?\s*$'},
                   {'type': 'null'}]}),
    spec_parts.safetensors_installed: Constraint(
        'safetensors needs the safetensors package', {}),
    speed_probe.bool_or_auto: Constraint("true, false or 'auto'",
                                         {'enum': [True, False, 'auto']}),
    speed.compile_problems: Constraint(
        f"true, false or a mapping of {', '.join(speed.COMPILE_KEYS)}",
        {'anyOf': [{'type': 'boolean'}, {
            'type': 'object', 'additionalProperties': False, 'properties': {
                'backend': {'type': 'string', 'description': 'torch.compile backend.'},
                'mode': {'enum': list(speed.COMPILE_MODES), 'description': 'torch.compile mode.'},
                'dynamic': {'type': ['boolean', 'null']},
                'fullgraph': {'type': ['boolean', 'null']}}}]}),
    resize_range: Constraint(
        '[min, max] with min <= 1 <= max, min >= 0.01',
        {'type': 'array', 'minItems': 2, 'maxItems': 2,
         'items': {'type': 'number', 'minimum': 0.01}}),
}


def _probabilities(length: int | None) -> Constraint:
    size = {'minItems': length, 'maxItems': length} if length is not None else {}
    count = f'{length} ' if length is not None else ''
    return Constraint(f'a list of {count}probabilities that sum to 1',
                      {'type': 'array', **size,
                       'items': {'type': 'number', 'minimum': 0, 'maximum': 1}})


def _value_range(low: float | None, high: float | None) -> Constraint:
    bounds = {**({'minimum': low} if low is not None else {}),
              **({'maximum': high} if high is not None else {})}
    where = (f', within [{low}, {high}]' if low is not None and high is not None else
             f', each >= {low}' if low is not None else
             f', each <= {high}' if high is not None else '')
    return Constraint(f'[min, max] with min <= max{where}',
                      {'type': 'array', 'minItems': 2, 'maxItems': 2,
                       'items': {'type': 'number', **bounds}})


def _clip(model_cls: type) -> Constraint:
    labels = model_cls.network_labels()
    limit = {'type': 'number', 'exclusiveMinimum': 0}
    return Constraint('a max norm > 0, or a mapping of network labels (net_g, ...) to one',
                      {'anyOf': [limit, {'type': 'null'}, {
                          'type': 'object', 'additionalProperties': False,
                          'properties': {label: limit for label in labels}}]})


# checks made by a factory: the factory's name -> a Constraint from the values its check keeps
FACTORIES: dict[str, Callable[[dict], Constraint]] = {
    'probabilities': lambda cells: _probabilities(cells['length']),
    'value_range': lambda cells: _value_range(cells['low'], cells['high']),
    'clip_check': lambda cells: _clip(cells['model_cls']),
}


def constraint(check: Callable) -> Constraint | None:
    """What ``check`` (a Value's check) accepts; None for a check this module does not know."""
    if check in FIXED:
        return FIXED[check]
    factory, _, rest = check.__qualname__.partition('.<locals>.')
    if rest and factory in FACTORIES:
        return FACTORIES[factory](inspect.getclosurevars(check).nonlocals)
    return None


# ---- registered entries --------------------------------------------------------------------------

DOCUMENTED_PACKAGES = ('basicsr_lite', 'torch', 'pytorch_optimizer')


def documented_names(typed: Typed) -> list[str]:
    """The names registered for ``typed``'s kind, sorted: those of the package and of the
    libraries it wraps (torch's and pytorch-optimizer's optimizers), not what a test or a
    user's code registered (the pages describe the package, whatever else is imported)."""
    if typed.names is None:
        return []
    return sorted(name for name in typed.names()
                  if getattr(typed.resolve(name), '__module__', '').split('.')[0]
                  in DOCUMENTED_PACKAGES)


@dataclass(frozen=True)
class Argument:
    name: str
    annotation: str  # as written in the signature ('' when unannotated)
    default: Any  # MISSING: required
    types: tuple[type, ...] | None  # what the option check accepts (None: anything)


def arguments(typed: Typed, name: str) -> list[Argument]:
    """The arguments an entry ``{type: name, ...}`` may give, in signature order."""
    out = []
    for param in typed.parameters(name).values():
        annotation = param.annotation
        if annotation is inspect.Parameter.empty:
            annotation = ''
        elif not isinstance(annotation, str):
            annotation = inspect.formatannotation(annotation)
        default = MISSING if param.default is inspect.Parameter.empty else param.default
        out.append(Argument(param.name, annotation.replace('typing.', ''), default,
                            argument_types(param)))
    return out


_ROLE = re.compile(r':[a-z]+:`~?([^`]+)`')
_ABBREVIATIONS = ('al.', 'e.g.', 'i.e.', 'etc.', 'vs.', 'cf.', 'Fig.', 'approx.')


def summary(obj: Any) -> str:
    """The first sentence of an entry's docstring: its own, or that of a base class of the
    same package (a registered subclass that only overrides a method); '' without one."""
    doc = None
    if isinstance(obj, type):
        package = obj.__module__.split('.')[0]
        for cls in obj.__mro__:
            if cls.__module__.split('.')[0] != package:
                break
            doc = cls.__dict__.get('__doc__')
            if doc and doc.strip():
                break
    else:
        doc = getattr(obj, '__doc__', None)
    if not doc or not doc.strip():
        return ''
    paragraph = ' '.join(inspect.cleandoc(doc).split('\n\n')[0].split())
    paragraph = _ROLE.sub(r'``\1``', paragraph)
    for match in re.finditer(r'[.!?](?=\s+[A-Z(`"\'])', paragraph):
        before = paragraph[:match.end()].rsplit(' ', 1)[-1]
        if before not in _ABBREVIATIONS:
            return paragraph[:match.end()]
    return paragraph


def third_party_versions() -> dict[str, str]:
    """The versions of the packages whose optimizers the registry lists (their signatures are
    theirs: the generated reference and schema say which versions they describe)."""
    found = {}
    for package in ('torch', 'pytorch-optimizer'):
        try:
            found[package] = importlib.metadata.version(package).split('+')[0]
        except importlib.metadata.PackageNotFoundError:
            found[package] = 'not installed'
    return found


# ---- walking the schema --------------------------------------------------------------------------

def children(spec: Spec) -> Iterator[tuple[str, Spec]]:
    """The named sub-nodes of a node: a Section's keys, a Typed node's framework keys, the
    entry of a MapOf (``<key>``) or ListOf (``[]``)."""
    if isinstance(spec, Section):
        yield from spec.fields.items()
    elif isinstance(spec, Typed):
        yield from spec.fields.items()
    elif isinstance(spec, MapOf):
        yield KEY, spec.spec_for(KEY)
    elif isinstance(spec, ListOf):
        yield '[]', spec.item


def walk(spec: Spec, path: str = '') -> Iterator[tuple[str, Spec]]:
    """Every node under ``spec`` with its dotted path (``val.metrics.<key>.better``)."""
    for key, child in children(spec):
        sub = f'{path}{key}' if key == '[]' else (f'{path}.{key}' if path else key)
        yield sub, child
        yield from walk(child, sub)


def is_value(spec: Spec) -> bool:
    return isinstance(spec, Value)
