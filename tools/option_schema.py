"""Write the JSON Schema (draft 2020-12) of basicsr_lite option files, generated from the option
schema (basicsr_lite/options/spec.py, each model's own keys, the registries' signatures), so that
editors with the YAML language server complete, explain and check option files. ``--check``
exits 1 when the committed file is stale (tests/test_option_docs.py checks it too).

    python tools/option_schema.py [--check] [--out schemas/options.schema.json]

Rerun it after registering an architecture, loss, dataset, metric, optimizer or scheduler. It
documents the installed basicsr_lite (``pip install -e .``); for another checkout, run it from
there with ``PYTHONPATH=.``.
The schema checks what a file alone shows: keys, types, allowed values and ranges, the arguments
of each ``type``; ``train.py`` also checks what needs more (paths exist, values that must agree
across sections).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from basicsr_lite.data.contract import constructor_keys, traits_of
from basicsr_lite.options import spec_parts
from basicsr_lite.options.describe import (KEY, Argument, arguments, constraint,
                                           documented_names, json_type,
                                           summary, third_party_versions, to_json, value_text)
from basicsr_lite.options.legacy import LEGACY_DOCS
from basicsr_lite.options.schema import MISSING, ListOf, MapOf, Section, Spec, Typed, Value
from basicsr_lite.options.spec import option_spec
from basicsr_lite.registry import DATASET_REGISTRY, MODEL_REGISTRY

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / 'schemas' / 'options.schema.json'
DRAFT = 'https://json-schema.org/draft/2020-12/schema'
SHARED = ('datasets', 'path', 'val', 'logger', 'hooks', 'dist_params', 'train')  # big
LEGACY_TYPES = {'suffix': (str, type(None)), 'save_img': (bool,), 'crop_border': None}


def described(doc: str, schema: dict) -> dict:
    return {'description': doc, **schema} if doc else schema


class SchemaBuilder:
    """Turns schema nodes into JSON Schema; each registered entry and each ``type`` dispatch
    is one definition (``$defs``), shared by every place that uses it."""

    def __init__(self) -> None:
        self.defs: dict[str, dict] = {}
        self.variant_fields: dict[str, tuple[str, ...]] = {}

    def ref(self, name: str) -> dict:
        return {'$ref': f'#/$defs/{name}'}

    def node(self, spec: Spec) -> dict:
        if isinstance(spec, Value):
            return self.value(spec)
        if isinstance(spec, Section):
            return self.section(spec)
        if isinstance(spec, Typed):
            return self.typed_use(spec)
        if isinstance(spec, MapOf):
            return self.map_of(spec)
        if isinstance(spec, ListOf):
            return described(spec.doc, {'type': ['array', 'null'], 'items': self.node(spec.item)})
        raise TypeError(f'no JSON Schema for {type(spec).__name__}')

    def value(self, spec: Value) -> dict:
        out: dict[str, Any] = {}
        if spec.choices is not None:
            out['enum'] = [to_json(choice)[1] for choice in spec.choices]
        else:
            out.update(json_type(spec.types))
        found = constraint(spec.check) if spec.check is not None else None
        if found is not None:
            out.update({k: v for k, v in found.schema.items() if k not in out})
        default = spec.default() if callable(spec.default) else spec.default
        ok, as_json = to_json(default)
        if default is not MISSING and ok and default != KEY:
            out['default'] = as_json
        return described(spec.doc, out)

    def section(self, spec: Section) -> dict:
        out = {'type': ['object', 'null'] if spec.nullable else 'object',
               'properties': {key: self.node(child) for key, child in spec.fields.items()},
               'additionalProperties': False}
        required = [key for key, child in spec.fields.items() if child.required]
        if required:
            out['required'] = required
        return described(spec.doc, out)

    def map_of(self, spec: MapOf) -> dict:
        patterns = {f'^{spec.key_pattern}$': self.node(spec.spec_for(KEY))}
        if spec.spec_for is spec_parts.dataset_spec:
            patterns[r'^train(_\w+)?$'] = train_dataset_rules()
        out = {'type': ['object', 'null'], 'patternProperties': patterns,
               'additionalProperties': False}
        if spec.key_hint:
            out['$comment'] = spec.key_hint
        return described(spec.doc, out)

    # ---- {type: Name, ...} entries ----------------------------------------------------------------
    def typed_use(self, spec: Typed) -> dict:
        target = self.ref(self.dispatch(spec))
        if spec.nullable:
            return described(spec.doc, {'anyOf': [{'type': 'null'}, target]})
        return described(spec.doc, {'allOf': [target]})

    def dispatch(self, spec: Typed) -> str:
        """The definition that picks an entry's schema by its ``type``; its name: the kind,
        ``<kind>_entry`` when the framework adds keys of its own (a dataset's loader keys),
        ``<kind>_or_<name>`` with open types (``network_g: {type: auto}``)."""
        if spec.open_types:
            plain = self.dispatch(replace(spec, open_types={}))
            variant = f'{plain}_or_' + '_'.join(sorted(spec.open_types))
            self.defs[variant] = {
                'if': {'required': ['type'], 'properties': {'type': {
                    'enum': sorted(spec.open_types)}}},
                'then': {'properties': {'type': {'description': ' '.join(
                    f"'{name}': {doc}" for name, doc in sorted(spec.open_types.items()))}}},
                'else': self.ref(plain)}
            return variant
        variant = f'{spec.kind}_entry' if spec.fields else spec.kind
        fields = tuple(sorted(spec.fields))
        if self.variant_fields.setdefault(variant, fields) != fields:
            raise ValueError(f'two {variant} entries with different framework keys')
        if variant in self.defs:
            return variant
        self.defs[variant] = {}  # (reserved before its entries are built)
        names = documented_names(spec)
        kind_type = ({'type': 'string', 'examples': names} if spec.extensible
                     else {'enum': names})
        out = {'type': 'object', 'required': ['type'],
               'properties': {'type': {'description': f'The {spec.kind} to use.',
                                       **kind_type}}}
        branches = [{'if': {'properties': {'type': {'const': name}}, 'required': ['type']},
                     'then': self.ref(self.entry(spec, variant, name))} for name in names]
        if branches:
            out['allOf'] = branches
        if spec.kind == 'optimizer':  # (torch's and pytorch-optimizer's signatures)
            out['$comment'] = 'arguments of ' + ', '.join(
                f'{package} {version}' for package, version in third_party_versions().items())
        self.defs[variant] = described(f'A registered {spec.kind}: ``type`` and its arguments.',
                                       out)
        return variant

    def entry(self, spec: Typed, variant: str, name: str) -> str:
        key = f'{variant}.{name}'
        args = arguments(spec, name)
        properties = {'type': {'const': name}}
        properties.update({arg.name: argument_schema(name, arg) for arg in args})
        properties.update({field: self.node(child) for field, child in spec.fields.items()})
        required = [a.name for a in args if a.default is MISSING and a.name not in spec.fields]
        required += [field for field, child in spec.fields.items() if child.required]
        out = {'type': 'object', 'title': name, 'properties': properties,
               'additionalProperties': False}
        if required:
            out['required'] = required
        self.defs[key] = described(summary(spec.resolve(name)), out)
        return key

    # ---- the whole file --------------------------------------------------------------------------
    def model(self, cls: type) -> dict[str, dict]:
        """The top-level keys of option files of model ``cls`` (training and test)."""
        train, test = option_spec(cls, True), option_spec(cls, False)
        properties = {key: self.node(child) for key, child in train.fields.items()}
        for key in cls.network_keys:
            if test.fields[key].nullable:
                properties[key] = self.node(test.fields[key])
        for key, doc in LEGACY_DOCS.items():
            properties[key] = {'description': doc, 'deprecated': True,
                               **json_type(LEGACY_TYPES[key])}
        return properties


def argument_schema(owner: str, arg: Argument) -> dict:
    out = json_type(arg.types, nullable=True)
    kind = arg.annotation or 'any value'
    if arg.default is MISSING:
        out['description'] = f'{owner} argument ({kind}); required.'
        return out
    out['description'] = f'{owner} argument ({kind}); default {value_text(arg.default)}.'
    ok, as_json = to_json(arg.default)
    if ok:
        out['default'] = as_json
    return out


def train_dataset_rules() -> dict:
    """What a training set must give besides its class's arguments: ``batch_size_per_gpu``, and
    ``gt_size`` where the class takes one and the model does not crop (as spec_parts checks)."""
    rules = [{'if': {'properties': {'type': {'const': name}}, 'required': ['type']},
              'then': {'required': ['gt_size'], 'properties': {'gt_size': {'type': 'integer'}}}}
             for name in DATASET_REGISTRY.keys()
             if 'gt_size' in constructor_keys(DATASET_REGISTRY.get(name))
             and not traits_of(DATASET_REGISTRY.get(name)).model_crops]
    return {'required': ['batch_size_per_gpu'], 'allOf': rules}


def base_model(names: list[str]) -> str:
    """The model of ``names`` whose class the others derive from (else the first by name)."""
    classes = {name: MODEL_REGISTRY.get(name) for name in sorted(names)}
    return next((name for name, cls in classes.items()
                 if all(issubclass(other, cls) for other in classes.values())), min(names))


def build_schema() -> dict:
    builder = SchemaBuilder()
    models = {name: builder.model(MODEL_REGISTRY.get(name)) for name in MODEL_REGISTRY.keys()}
    # the big sections: one definition per distinct content (most are the same for every model)
    for key in SHARED:
        groups: dict[str, list[str]] = {}
        for name, keys in models.items():
            groups.setdefault(json.dumps(keys[key], sort_keys=True), []).append(name)
        for members in groups.values():
            def_name = f'section.{key}' if len(groups) == 1 else \
                f'section.{key}.{base_model(members)}'
            builder.defs[def_name] = models[members[0]][key]
            for name in members:
                models[name][key] = builder.ref(def_name)
    branches = []
    for name, properties in models.items():
        cls = MODEL_REGISTRY.get(name)
        others = [key for key in cls.network_keys if key != 'network_g']
        builder.defs[f'model.{name}'] = described(summary(cls), {
            'type': 'object', 'properties': properties, 'additionalProperties': False,
            'required': ['name', 'datasets'],
            # a file with a train section is a training file: every network and a train set
            'if': {'required': ['train']},
            'then': {'required': others, 'properties': {
                'datasets': {'required': ['train']}, **{key: {'type': 'object'} for key in others}}},
            'else': {'properties': {'datasets': {'minProperties': 1}}},
        })
        condition = {'properties': {'model_type': {'const': name}}}
        if name != 'SRModel':  # (SRModel is also the model of a file without model_type)
            condition['required'] = ['model_type']
        branches.append({'if': condition, 'then': builder.ref(f'model.{name}')})
    return {
        '$schema': DRAFT,
        'title': 'basicsr_lite option file',
        'description': 'A training or test option file of basicsr_lite (generated by '
                       'tools/option_schema.py; the keys are explained in '
                       'docs/reference/options.md).',
        'type': 'object',
        'properties': {'model_type': {
            'description': 'The model: what a training step does with the networks and losses '
                           '(a registered model).',
            'enum': MODEL_REGISTRY.keys(), 'default': 'SRModel'}},
        'allOf': branches,
        '$defs': dict(sorted(builder.defs.items())),
    }


def render() -> str:
    return json.dumps(build_schema(), indent=1, ensure_ascii=False) + '\n'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=OUT, help='where the schema is written')
    parser.add_argument('--check', action='store_true',
                        help='do not write: exit 1 when the file differs from a fresh one')
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not args.out.is_file() or args.out.read_text() != text:
            print(f'{args.out} is stale; regenerate it with python tools/option_schema.py')
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
