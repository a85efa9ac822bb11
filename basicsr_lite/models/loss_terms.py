"""The losses of a model as one list: ``train.losses`` entries, or BasicSR's slots (``pixel_opt``,
``ldl_opt``, ``perceptual_opt``, ``gan_opt``) translated into the same list, so that both forms
run through one code path.

An entry is a loss's options plus two keys of the framework: ``name`` (the logged name; default
``<prefix><type without 'Loss', lower case>``, ``_2``, ``_3`` for repeats) and ``target`` (what
the output is compared with: ``gt``; ``gt_usm``, Real-ESRGAN's sharpened GT; ``lq_up``, the LQ
upsampled bicubically to the output's size, not clamped). The GANLoss entry is the adversarial
loss (it drives D too; its ``target`` is D's real images); LDLLoss also gets the EMA output.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from basicsr_lite.losses import build_loss
from basicsr_lite.losses.gan_loss import GANLoss
from basicsr_lite.registry import LOSS_REGISTRY

TARGETS = ('gt', 'gt_usm', 'lq_up')
FRAMEWORK_KEYS = ('name', 'target')
# BasicSR's short names where they differ from the type's
SHORT_NAMES = {'PerceptualLoss': 'percep'}
# pixel losses that BasicSR's ldl_opt may name -> LDLLoss's criterion
LDL_CRITERIA = {'L1Loss': 'l1', 'MSELoss': 'l2', 'CharbonnierLoss': 'charbonnier'}
NAME_PATTERN = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


@dataclass
class LossTerm:
    """One built loss: ``names`` are its logged names (two for a perceptual loss: perceptual
    and style term)."""
    where: str
    names: tuple[str, ...]
    loss: nn.Module
    target: str

    @property
    def is_gan(self) -> bool:
        return isinstance(self.loss, GANLoss)

    @property
    def needs_ema_output(self) -> bool:
        return getattr(self.loss, 'needs_ema_output', False)


def is_gan_entry(entry: dict) -> bool:
    try:
        cls = LOSS_REGISTRY.get(entry['type'])
    except KeyError:
        return False
    return isinstance(cls, type) and issubclass(cls, GANLoss)


def short_name(type_name: str) -> str:
    if type_name in SHORT_NAMES:
        return SHORT_NAMES[type_name]
    base = type_name[:-4] if type_name.endswith('Loss') and len(type_name) > 4 else type_name
    return base.lower()


def logged_names(entries: list[tuple[str, dict]], prefix: str) -> list[tuple[str, ...]]:
    """The logged names of each entry: its ``name``, else the default, numbered from the second
    entry of a type on (``l_g_l1``, ``l_g_l1_2``). A perceptual loss also logs its style term:
    ``<prefix>style`` by default, as in BasicSR (``l_g_percep``, ``l_g_style``); a given name
    with 'percep' in it has it replaced by 'style', any other name gets ``_style``."""
    seen: dict[str, int] = {}
    names = []
    for _, entry in entries:
        pair = entry['type'] == 'PerceptualLoss'
        if entry.get('name'):
            base = str(entry['name'])
            style = base.replace('percep', 'style', 1) if 'percep' in base else f'{base}_style'
            names.append((base, style) if pair else (base,))
            continue
        short = short_name(entry['type'])
        seen[short] = seen.get(short, 0) + 1
        suffix = '' if seen[short] == 1 else f'_{seen[short]}'
        first = f'{prefix}{short}{suffix}'
        names.append((first, f'{prefix}style{suffix}') if pair else (first,))
    return names


def build_terms(entries: list[tuple[str, dict]], prefix: str,
                device: torch.device) -> list[LossTerm]:
    terms = []
    for (where, entry), names in zip(entries, logged_names(entries, prefix)):
        options = {k: v for k, v in entry.items() if k not in FRAMEWORK_KEYS}
        loss = build_loss(options, where).to(device)
        terms.append(LossTerm(where, names, loss, entry.get('target') or 'gt'))
    return terms


def slot_problem(slots: dict[str, dict | None]) -> str | None:
    """``train.losses`` given together with BasicSR's slots: one form only."""
    given = [f'train.{k}' for k, v in slots.items() if v is not None]
    if not given:
        return None
    return (f"train.losses: given together with {', '.join(given)}; use either the list "
            f"(train.losses) or BasicSR's slots, not both.")


def entry_problems(entries: list[tuple[str, dict]], prefix: str, reserved: tuple[str, ...],
                   targets: tuple[str, ...]) -> list[str]:
    """Names (valid, distinct, not a reserved log key) and targets this model can give."""
    problems = []
    seen: dict[str, str] = {}
    for (where, entry), names in zip(entries, logged_names(entries, prefix)):
        if entry.get('name') is not None and not NAME_PATTERN.fullmatch(str(entry['name'])):
            problems.append(f"{where}.name: {entry['name']!r} is not a valid logged name "
                            f"(letters, digits and '_', not starting with a digit).")
        for name in names:
            if name in reserved:
                problems.append(f'{where}.name: {name!r} is a logged value of the model '
                                f'({", ".join(reserved)}); choose another name.')
            elif name in seen:
                problems.append(f'{where}.name: {name!r} is also the name of {seen[name]}; '
                                f'give one of them another name.')
            seen.setdefault(name, where)
        target = entry.get('target')
        if target is not None and target not in targets:
            extra = " ('gt_usm' needs a Real-ESRGAN model)" if target == 'gt_usm' else ''
            problems.append(f"{where}.target: {target!r} is not a target of this model "
                            f"({', '.join(targets)}){extra}.")
        if is_gan_entry(entry) and target == 'lq_up':
            problems.append(f"{where}.target: the GANLoss's target is D's real images: 'gt' "
                            f"or 'gt_usm'.")
    return problems


def ldl_entry(slot: dict) -> dict:
    """BasicSR's ``ldl_opt`` (a pixel loss applied to the artefact-weighted images) as an
    LDLLoss entry (another type is reported by the GAN models' option check)."""
    options = {k: v for k, v in slot.items() if k != 'type'}
    return {'type': 'LDLLoss', 'criterion': LDL_CRITERIA.get(slot['type'], 'l1'), **options}
