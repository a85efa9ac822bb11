"""Round trips to the upscaling tools: does spandrel (the loader of chaiNNer, ComfyUI,
AUTOMATIC1111 and InvokeAI) recognise a generator saved here, with the same hyper-parameters,
and does its network compute what ours does?

:data:`SPANDREL_ARCHS` maps our architecture names to spandrel's, with what spandrel cannot read
from a state dict (it assumes a value) and, where the saved keys are not the ones spandrel
knows, the export into its layout. A new architecture joins with one entry. spandrel is an
optional extra (``pip install -e ".[interop]"``); only :func:`import_spandrel` imports it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from basicsr_lite.archs import build_network
from basicsr_lite.archs.capabilities import capability
from basicsr_lite.archs.constraints import constructor_args
from basicsr_lite.archs.rcan_arch import to_authors_layout
from basicsr_lite.errors import UserError
from basicsr_lite.registry import ARCH_REGISTRY
from basicsr_lite.runtime.weights import adapt_layout, extract_state_dict, few, load_weights

TOLERANCE = 1e-5  # max |ours - spandrel's| in fp32, relative to max(1, max |ours|)


@dataclass(frozen=True)
class SpandrelArch:
    """``name``: spandrel's architecture id; ``assumes``: constructor arguments spandrel does not
    detect (it builds these values whatever the file holds); ``export``: our state dict ->
    the layout spandrel recognises (None: our keys are already its keys); ``signed_range``: the
    argument that makes our network map [0, 1] to [-1, 1] inside (spandrel feeds [0, 1] in)."""
    name: str
    assumes: dict[str, Any] = field(default_factory=dict)
    export: Callable[[dict, dict], dict] | None = None
    signed_range: str | None = None


def _rcan_export(state: dict, args: dict) -> dict:
    return to_authors_layout(state, args['img_range'], args['rgb_mean'])


SPANDREL_ARCHS: dict[str, SpandrelArch] = {
    'OmniSR': SpandrelArch('OmniSR', signed_range='signed_range'),
    'PLKSR': SpandrelArch('PLKSR'),
    # spandrel's RCAN skips res_scale and builds its mean shift for 3 channels
    'RCAN': SpandrelArch('RCAN', assumes={'res_scale': 1.0, 'num_in_ch': 3, 'num_out_ch': 3},
                         export=_rcan_export),
    'RRDBNet': SpandrelArch('ESRGAN', assumes={'num_grow_ch': 32}),
    'RealPLKSR': SpandrelArch('PLKSR'),
    'SRVGGNetCompact': SpandrelArch('Compact'),
    'SwinIR': SpandrelArch('SwinIR'),
    # architectures being added in parallel (checked by the tests once registered)
    'DRCT': SpandrelArch('DRCT', assumes={'img_range': 1.0, 'qk_scale': None}),
    'HAT': SpandrelArch('HAT', assumes={'conv_scale': 0.01, 'img_range': 1.0, 'qk_scale': None}),
    'SAFMN': SpandrelArch('SAFMN'),
    'SPAN': SpandrelArch('SPAN', assumes={'img_range': 255.0,
                                          'rgb_mean': (0.4488, 0.4371, 0.4040)}),
    'DAT': SpandrelArch('DAT'),
    'RGT': SpandrelArch('RGT'),
}


def _same(ours: Any, theirs: Any) -> bool:
    if isinstance(theirs, (tuple, list)) and isinstance(ours, (tuple, list)):
        return len(ours) == len(theirs) and all(_same(a, b) for a, b in zip(ours, theirs))
    return ours == theirs


def import_spandrel():
    """The spandrel package, or a UserError saying how to get it."""
    try:
        import spandrel
    except ModuleNotFoundError as err:
        if err.name == 'spandrel':
            raise UserError('The interop check needs spandrel: pip install -e ".[interop]" '
                            '(or pip install spandrel).') from err
        raise UserError(f"spandrel is installed but its import fails: module '{err.name}' is "
                        f'missing (spandrel imports torchvision for two of its architectures: '
                        f'install the torchvision that matches your torch).') from err
    except Exception as err:  # a broken install: any error of its import
        raise UserError(f'spandrel is installed but its import fails: {err!r}. Reinstall it: '
                        f'pip install -e ".[interop]".') from err
    return spandrel


def spandrel_layout(options: dict, state: dict) -> dict:
    """``state`` (ours) in the layout spandrel recognises."""
    entry = SPANDREL_ARCHS.get(options['type'])
    if entry is None or entry.export is None:
        return dict(state)
    return entry.export(state, constructor_args(ARCH_REGISTRY.get(options['type']), options))


def smooth_input(channels: int, height: int, width: int) -> torch.Tensor:
    """A fixed smooth image in (0, 1): low-frequency sines, different per channel."""
    y = torch.linspace(0, 1, height).view(-1, 1)
    x = torch.linspace(0, 1, width).view(1, -1)
    planes = [0.5 + 0.35 * torch.sin(2 * math.pi * (x * (1 + c % 3) + y * (2 - c % 2)) + c)
              for c in range(channels)]
    return torch.stack(planes).unsqueeze(0)


@dataclass
class InteropReport:
    arch: str
    options: dict
    passed: bool = False
    spandrel_arch: str | None = None
    scale: int | None = None
    hyperparameters: dict = field(default_factory=dict)
    spandrel_fp16: bool | None = None
    spandrel_bf16: bool | None = None
    our_fp16: bool | None = None
    our_bf16: bool | None = None
    max_diff: float | None = None
    max_output: float | None = None  # max |ours|: the tolerance is relative to max(1, it)
    input_shape: tuple[int, ...] = ()
    exported: bool = False
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def one_line(self) -> str:
        verdict = 'passes' if self.passed else 'FAILS'
        detail = (f'spandrel {self.spandrel_arch} x{self.scale}, max |diff| {self.max_diff:.2e}'
                  if self.max_diff is not None else '; '.join(self.problems))
        return f'interop check {verdict} for {self.arch}: {detail}'

    def lines(self) -> list[str]:
        out = [self.one_line(), f'ours: {self.options}']
        if self.spandrel_arch:
            out += [f'spandrel: {self.spandrel_arch}, scale {self.scale}, hyper-parameters '
                    f'{self.hyperparameters}',
                    f'fp16: spandrel {self.spandrel_fp16} / our table {self.our_fp16}; '
                    f'bf16: spandrel {self.spandrel_bf16} / our table {self.our_bf16}']
        if self.max_diff is not None:
            out.append(f'input {tuple(self.input_shape)} (fixed smooth image), fp32, raw outputs: '
                       f'max |diff| {self.max_diff:.3e} (tolerance {TOLERANCE:g} x max(1, '
                       f'max |output|))')
        out += [f'problem: {p}' for p in self.problems] + [f'note: {n}' for n in self.notes]
        return out


def check_state_dict(options: dict, state: dict, spandrel: Any = None) -> InteropReport:
    """Load ``state`` (ours, for the network ``options``) through spandrel and compare outputs."""
    name = options['type']
    report = InteropReport(name, dict(options))
    cap = capability(options)
    report.our_fp16, report.our_bf16 = cap.fp16, cap.bf16
    entry = SPANDREL_ARCHS.get(name)
    if entry is None:
        report.problems.append(f'spandrel 0.4.2 has no {name} (no entry in '
                               f'basicsr_lite/archs/interop.py SPANDREL_ARCHS)')
        return report
    args = constructor_args(ARCH_REGISTRY.get(name), options)
    for key, value in entry.assumes.items():
        if key in args and not _same(args[key], value):
            report.problems.append(f'spandrel cannot detect {key} and builds {value!r}; this '
                                   f'network has {args.get(key)!r}')
    if report.problems:
        return report
    spandrel = spandrel or import_spandrel()
    ours = build_network(options, 'network_g').eval()
    ours.load_state_dict(state, strict=True)
    theirs_state = spandrel_layout(options, state)
    report.exported = entry.export is not None
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(
            {k: v.clone() for k, v in theirs_state.items()})
    except Exception as err:  # spandrel's UnsupportedModelError or a failed strict load
        report.problems.append(f'spandrel does not load it: {type(err).__name__}: '
                               f'{str(err).splitlines()[0] if str(err) else ""}'.rstrip(': '))
        return report
    report.spandrel_arch = descriptor.architecture.id
    report.scale = descriptor.scale
    report.hyperparameters = dict(getattr(descriptor.model, 'hyperparameters', {}) or {})
    report.spandrel_fp16 = descriptor.supports_half
    report.spandrel_bf16 = descriptor.supports_bfloat16
    if descriptor.architecture.id != entry.name:
        report.problems.append(f'spandrel detects {descriptor.architecture.id}, not {entry.name}')
    req = descriptor.size_requirements
    multiple = math.lcm(req.multiple_of, cap.size_multiple)
    side = -(-max(32, req.minimum, cap.min_size) // multiple) * multiple
    x = smooth_input(descriptor.input_channels, side, side)
    report.input_shape = tuple(x.shape)
    model = descriptor.model.eval()
    signed = bool(entry.signed_range and args.get(entry.signed_range))
    with torch.no_grad():
        mine = ours(x.clone())
        theirs = (model(x * 2 - 1) + 1) / 2 if signed else model(x.clone())
    if signed:
        report.notes.append(f'{entry.signed_range}=True: this network maps [0, 1] to [-1, 1] '
                            f'inside, spandrel feeds [0, 1] straight in; compared as '
                            f'(spandrel(2x - 1) + 1) / 2. In chaiNNer / ComfyUI its outputs are '
                            f'not ours (as with the authors\' own files)')
    if report.exported:
        report.notes.append("saved in BasicSR's keys; spandrel recognises the export "
                            '(basicsr-check-interop FILE --export OUT.pth)')
    if theirs.shape != mine.shape:
        report.problems.append(f'output shapes differ: ours {tuple(mine.shape)}, spandrel '
                               f'{tuple(theirs.shape)}')
        return report
    report.max_diff = (mine - theirs).abs().max().item()
    report.max_output = mine.abs().max().item()
    bound = TOLERANCE * max(1.0, report.max_output)
    if not report.max_diff <= bound:
        report.problems.append(f'outputs differ: max |diff| {report.max_diff:.3e} > {bound:.1e}')
    if report.spandrel_fp16 is not None and report.spandrel_fp16 != report.our_fp16:
        report.notes.append(f'fp16 facts differ: spandrel {report.spandrel_fp16}, our capability '
                            f'table {report.our_fp16}')
    report.passed = not report.problems
    return report


def load_generator(path: str) -> dict:
    """The generator's state dict in a file: ``params_ema`` when it has it (what is shipped),
    else ``params``, else whatever wrapper it uses."""
    checkpoint = load_weights(path)
    key = 'params_ema' if isinstance(checkpoint, dict) and 'params_ema' in checkpoint else None
    return extract_state_dict(checkpoint, key, str(path))


def check_file(path: str, options: dict, spandrel: Any = None) -> InteropReport:
    """:func:`check_state_dict` on the generator in ``path`` (either layout of its arch)."""
    state = adapt_layout(ARCH_REGISTRY.get(options['type']), load_generator(path))
    return check_state_dict(options, state, spandrel)


def spandrel_names_it(state: dict) -> str | None:
    """spandrel's name and hyper-parameters for ``state``, or None (not recognised, or spandrel
    not installed: this only adds to an error message)."""
    try:
        descriptor = import_spandrel().ModelLoader().load_from_state_dict(dict(state))
    except Exception:  # not installed, broken, or not recognised
        return None
    hyper = getattr(descriptor.model, 'hyperparameters', {}) or {}
    return f'{descriptor.architecture.id} x{descriptor.scale} {hyper}'


def spandrel_descriptor(state: dict, where: str):
    """spandrel's model for weights that none of our architectures is (inference / export only),
    or a UserError saying what was found."""
    spandrel = import_spandrel()
    try:
        return spandrel.ModelLoader().load_from_state_dict(dict(state))
    except Exception as err:
        raise UserError(f'{where}: neither our architectures nor spandrel recognise these '
                        f'weights ({type(err).__name__}); they hold {few(state, 5)}.') from err
