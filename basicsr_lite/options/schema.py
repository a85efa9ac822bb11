"""A small declarative schema for option files: checks keys, types and values, fills defaults.

Three kinds of node:
- :class:`Value`: a leaf with types, default, choices and an optional check.
- :class:`Section`: a dict with a fixed set of keys.
- :class:`Typed`: a dict with ``type: <name>``; the other keys are the keyword arguments of the
  named class/function, checked against its signature (unknown, missing, wrongly typed).
- :class:`MapOf`: a dict of user-named entries (e.g. ``val.metrics.psnr``) sharing one spec.
- :class:`ListOf`: a list whose entries share one spec (e.g. ``train.losses``).

Every node has a ``doc``: one sentence saying what the key does, which the generated option
reference (``tools/options_reference.py``) and the JSON Schema (``tools/option_schema.py``) show.

Validation never mutates its input: it returns a new dict with defaults filled in, and collects
every problem as ``'<key.path>: <what is wrong>'``.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from basicsr_lite.basicsr_names import foreign_key_message
from basicsr_lite.errors import did_you_mean

MISSING = object()
Check = Callable[[Any], 'str | None']


def _type_name(types: tuple[type, ...]) -> str:
    return ' or '.join('null' if t is type(None) else t.__name__ for t in types)


def coerce(value: Any, types: tuple[type, ...]) -> tuple[bool, Any]:
    """(ok, value) for ``value`` against ``types``. Integral floats such as ``!!float 5e3`` are
    accepted for int; ints for float; lists for tuple. bool is never an int here."""
    if isinstance(value, bool):
        return (bool in types), value
    if isinstance(value, tuple(t for t in types if t not in (tuple,))):
        return True, value
    if int in types and isinstance(value, float) and value.is_integer():
        return True, int(value)
    if float in types and isinstance(value, int):
        return True, float(value)
    if tuple in types and isinstance(value, list):
        return True, tuple(value)
    if list in types and isinstance(value, tuple):
        return True, list(value)
    return False, value


class Spec:
    required: bool = False
    default: Any = MISSING
    doc: str = ''  # what the key means, one sentence (the option reference, editors' hovers)

    def validate(self, value: Any, path: str, errors: list[str], ctx: dict) -> Any:
        raise NotImplementedError


@dataclass
class Value(Spec):
    types: tuple[type, ...] = (object,)
    default: Any = MISSING
    required: bool = False
    choices: tuple | None = None
    check: Check | None = None
    doc: str = ''

    def validate(self, value, path, errors, ctx):
        ok, value = coerce(value, self.types)
        if not ok:
            errors.append(f'{path}: expected {_type_name(self.types)}, got '
                          f'{type(value).__name__} {value!r}.')
            return value
        if self.choices is not None and value not in self.choices:
            errors.append(f'{path}: {value!r} is not one of {list(self.choices)}'
                          f'{did_you_mean(str(value), map(str, self.choices))}')
        elif self.check is not None and value is not None:
            problem = self.check(value)
            if problem:
                errors.append(f'{path}: {problem}')
        return value


def _check_dict(value, path, errors) -> bool:
    if not isinstance(value, dict):
        errors.append(f'{path}: expected a mapping of keys, got {type(value).__name__} {value!r}.')
        return False
    return True


def validate_fields(fields: dict[str, Spec], value: dict, path: str, errors: list[str],
                    ctx: dict, extra_ok: Callable[[str], bool] = lambda k: False) -> dict:
    """Check the keys of ``value`` against ``fields``; fill defaults; keep extra keys if
    ``extra_ok`` says so."""
    out = {}
    prefix = f'{path}.' if path else ''
    for key, item in value.items():
        if key in fields:
            out[key] = fields[key].validate(item, prefix + key, errors, ctx)
        elif extra_ok(key):
            out[key] = item
        elif foreign_key_message(path, str(key)) is not None:
            errors.append(f'{prefix}{key}: {foreign_key_message(path, str(key))}.')
        else:
            errors.append(f'{prefix}{key}: unknown key{did_you_mean(str(key), fields)}'
                          f' (valid keys here: {", ".join(sorted(fields))}).')
    for key, spec in fields.items():
        if key in out:
            continue
        if spec.required:
            errors.append(f'{prefix}{key}: required key is missing.')
        elif spec.default is not MISSING:
            default = spec.default() if callable(spec.default) else spec.default
            out[key] = spec.validate(default, prefix + key, errors, ctx) \
                if isinstance(spec, Section) else default
    return out


@dataclass
class Section(Spec):
    fields: dict[str, Spec] = field(default_factory=dict)
    required: bool = False
    default: Any = MISSING
    nullable: bool = False
    doc: str = ''

    def validate(self, value, path, errors, ctx):
        if value is None and self.nullable:
            return None
        if not _check_dict(value, path, errors):
            return value
        return validate_fields(self.fields, value, path, errors, ctx)


@dataclass
class MapOf(Spec):
    """User-named entries; ``key_pattern`` restricts their names, ``spec_for(key)`` picks a spec."""
    spec_for: Callable[[str], Spec]
    key_pattern: str = r'.+'
    key_hint: str = ''
    required: bool = False
    default: Any = MISSING
    doc: str = ''

    def validate(self, value, path, errors, ctx):
        if value is None:
            value = {}
        if not _check_dict(value, path, errors):
            return value
        out = {}
        for key, item in value.items():
            if not re.fullmatch(self.key_pattern, str(key)):
                errors.append(f'{path}.{key}: invalid name; {self.key_hint}.')
                continue
            out[key] = self.spec_for(key).validate(item, f'{path}.{key}', errors, ctx)
        return out


@dataclass
class ListOf(Spec):
    """A list whose every entry is checked by ``item`` (``path[i]`` in messages); null is an
    empty list, or stays null when ``nullable``."""
    item: Spec
    required: bool = False
    default: Any = MISSING
    nullable: bool = False
    doc: str = ''

    def validate(self, value, path, errors, ctx):
        if value is None:
            return None if self.nullable else []
        if not isinstance(value, list):
            errors.append(f'{path}: expected a list, got {type(value).__name__} {value!r}.')
            return value
        return [self.item.validate(entry, f'{path}[{i}]', errors, ctx)
                for i, entry in enumerate(value)]


def argument_types(param: inspect.Parameter) -> tuple[type, ...] | None:
    """The types a keyword argument accepts in an option file, inferred from its default value
    (None: any value). An int default whose annotation names float (torch's ``weight_decay=0``,
    ``momentum=0``) takes floats too."""
    default = param.default
    if default is None or default is inspect.Parameter.empty:
        return None
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, int):
        return (int, float) if 'float' in str(param.annotation) else (int,)
    if isinstance(default, float):
        return (float,)
    if isinstance(default, str):
        return (str,)
    if isinstance(default, (list, tuple)):
        return (list, tuple)
    return None


def _value_matches_default(value: Any, param: inspect.Parameter) -> tuple[bool, Any, str]:
    """Type check of a keyword argument (:func:`argument_types`); null is always accepted."""
    types = argument_types(param)
    if types is None or value is None:
        return True, value, ''
    ok, value = coerce(value, types)
    return ok, value, _type_name(types)


@dataclass
class Typed(Spec):
    """``{type: Name, **kwargs}``: ``resolve(name)`` returns the callable (or raises KeyError with
    a helpful message); its signature decides which kwargs exist.

    ``fields``: extra keys handled by the framework (e.g. a loader's batch size);
    ``hidden``: parameters the framework passes itself (never from the user);
    ``checks``: functions ``(kwargs, path, errors, ctx)`` for cross-key rules;
    ``names``: the registered names (for the generated reference and JSON Schema);
    ``extensible``: names registered by the user's own code are valid too (hooks);
    ``open_types``: names the framework replaces before this check (``network_g: {type:
    auto}``), with what they do; their entries take any keys.
    """
    resolve: Callable[[str], Callable]
    kind: str = 'type'
    fields: dict[str, Spec] = field(default_factory=dict)
    hidden: tuple[str, ...] = ()
    required: bool = False
    default: Any = MISSING
    nullable: bool = False
    checks: tuple[Callable, ...] = ()
    names: Callable[[], Iterable[str]] | None = None
    extensible: bool = False
    open_types: dict[str, str] = field(default_factory=dict)
    doc: str = ''

    def parameters(self, name: str) -> dict[str, inspect.Parameter]:
        """The keyword arguments an option entry of type ``name`` may give (the constructor's,
        less the hidden ones and ``*args`` / ``**kwargs``)."""
        return {n: p for n, p in inspect.signature(self.resolve(name)).parameters.items()
                if n not in self.hidden and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    def validate(self, value, path, errors, ctx):
        if value is None and self.nullable:
            return None
        if not _check_dict(value, path, errors):
            return value
        if 'type' not in value:
            errors.append(f'{path}.type: required key is missing (the {self.kind} to use).')
            return value
        try:
            self.resolve(value['type'])
        except KeyError as err:
            errors.append(f'{path}.type: {err.args[0] if err.args else err}')
            return value
        params = self.parameters(value['type'])
        user = {k: v for k, v in value.items() if k != 'type' and k not in self.fields}
        out = validate_fields(self.fields, {k: v for k, v in value.items() if k in self.fields},
                              path, errors, ctx)
        out['type'] = value['type']
        for key, item in user.items():
            if key not in params:
                valid = sorted(set(params) | set(self.fields))
                errors.append(f'{path}.{key}: unknown argument of {self.kind} {value["type"]}'
                              f'{did_you_mean(str(key), valid)} (valid: {", ".join(valid)}).')
                continue
            ok, item, expected = _value_matches_default(item, params[key])
            if not ok:
                errors.append(f'{path}.{key}: expected {expected} (like the default '
                              f'{params[key].default!r}), got {type(item).__name__} {item!r}.')
            out[key] = item
        for name, param in params.items():
            if param.default is inspect.Parameter.empty and name not in user:
                errors.append(f'{path}.{name}: required argument of {self.kind} {value["type"]} '
                              f'is missing.')
        for check in self.checks:
            check(out, path, errors, ctx)
        return out
