"""Network interpolation (ESRGAN's DNI, Wang et al. 2018: blend a PSNR-oriented and a GAN model of
the same architecture to trade fidelity for detail): every tensor becomes
``(1 - alpha) * a + alpha * b``.

    python tools/interpolate.py net_psnr.pth net_esrgan.pth --alpha 0.3 -o net_interp.pth
    python tools/interpolate.py a.safetensors b.pth --alpha 0.5 -o c.safetensors

Both files must hold the same architecture: the same keys with the same shapes (every
difference is listed). BasicSR files (``params`` / ``params_ema``) keep that form, each group
interpolated; bare state dicts stay bare; other wrappers (``state_dict``, ``model``, ...) are
written as ``params``. The output format follows the suffix (.pth or .safetensors).
Non-float tensors (counters) must be equal in both and are copied.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from basicsr_lite.archs.detection import detect
from basicsr_lite.engine.cli import tool_main
from basicsr_lite.errors import CheckpointError, UserError
from basicsr_lite.runtime.weights import (PARAM_GROUPS, extract_state_dict, flatten_param_keys,
                                          load_weights, save_torch)
from basicsr_lite.utils.files import atomic_write


def groups_of(checkpoint: dict, path: str) -> dict[str, dict]:
    """``{group: state dict}``: BasicSR's groups, or ``{'': state}`` for a bare / wrapped one."""
    found = {g: checkpoint[g] for g in PARAM_GROUPS if isinstance(checkpoint.get(g), dict)}
    if found:
        return {g: extract_state_dict({g: s}, g, path) for g, s in found.items()}
    return {'': extract_state_dict(checkpoint, None, path)}


def differences(a: dict, b: dict, where: str) -> list[str]:
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    out = []
    for title, keys in ((f'{where}only in the first', only_a),
                        (f'{where}only in the second', only_b)):
        if keys:
            out.append(f'{title} ({len(keys)}): ' + ', '.join(keys[:8])
                       + (f' ... {len(keys) - 8} more' if len(keys) > 8 else ''))
    shapes = [f'{k} {tuple(a[k].shape)} vs {tuple(b[k].shape)}' for k in sorted(set(a) & set(b))
              if a[k].shape != b[k].shape]
    if shapes:
        out.append(f'{where}shapes differ ({len(shapes)}): ' + ', '.join(shapes[:8]))
    return out


def blend(a: dict, b: dict, alpha: float, where: str) -> dict:
    out = {}
    for key, ta in a.items():
        tb = b[key]
        if ta.is_floating_point():
            mixed = (1 - alpha) * ta.double() + alpha * tb.to(ta.device).double()
            out[key] = mixed.to(ta.dtype)
        elif torch.equal(ta, tb):
            out[key] = ta.clone()
        else:
            raise UserError(f'{where}{key}: a non-float tensor ({ta.dtype}) that differs between '
                            f'the files; it cannot be interpolated.')
    return out


def interpolate(path_a: str, path_b: str, alpha: float) -> dict:
    """The interpolated checkpoint, in the form of ``path_a``."""
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f'--alpha {alpha}: must be between 0 (the first file) and 1 (the second).')
    raw_a, raw_b = load_weights(path_a), load_weights(path_b)
    ga, gb = groups_of(raw_a, path_a), groups_of(raw_b, path_b)
    if set(ga) != set(gb):
        raise UserError(f'{path_a} holds {_form(ga)}, {path_b} holds {_form(gb)}: not the '
                        f'same form.')
    problems = [p for g in ga for p in differences(ga[g], gb[g], f'[{g}] ' if g else '')]
    if problems:
        raise UserError(f'{path_a} and {path_b} are not the same architecture: '
                        + '; '.join(problems))
    arch_a, arch_b = (detect(next(iter(g.values()))) for g in (ga, gb))
    if arch_a and arch_b and arch_a != arch_b:
        raise UserError(f'{path_a} is {arch_a[0]}, {path_b} is {arch_b[0]}.')
    mixed = {g: blend(ga[g], gb[g], alpha, f'[{g}] ' if g else '') for g in ga}
    bare = '' in mixed and all(isinstance(v, torch.Tensor) for v in raw_a.values())
    if '' in mixed:
        return mixed[''] if bare else {'params': mixed['']}
    return mixed


def _form(groups: dict) -> str:
    return 'one state dict' if '' in groups else 'BasicSR groups ' + ', '.join(sorted(groups))


def write(checkpoint: dict, dest: Path, metadata: dict[str, str]) -> None:
    if dest.suffix != '.safetensors':
        save_torch(checkpoint, dest)
        return
    try:
        from safetensors.torch import save
    except ImportError as err:
        raise CheckpointError('Writing .safetensors needs: pip install safetensors') from err
    flat = {k: v.contiguous() for k, v in flatten_param_keys(checkpoint).items()}
    atomic_write(dest, lambda f: f.write(save(flat, metadata={'format': 'pt', **metadata})),
                 CheckpointError)


@tool_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('a', help='the first network (alpha 0)')
    parser.add_argument('b', help='the second network (alpha 1)')
    parser.add_argument('--alpha', type=float, required=True)
    parser.add_argument('-o', '--output', required=True, help='.pth or .safetensors')
    parser.add_argument('--overwrite', action='store_true')
    args = parser.parse_args(argv)
    dest = Path(args.output)
    if dest.exists() and not args.overwrite:
        print(f'Error: {dest} exists; use --overwrite.', file=sys.stderr)
        return 2
    mixed = interpolate(args.a, args.b, args.alpha)
    write(mixed, dest, {'interpolated': f'(1 - {args.alpha}) * {Path(args.a).name} + '
                                        f'{args.alpha} * {Path(args.b).name}'})
    print(f'Wrote {dest}: (1 - {args.alpha}) * {args.a} + {args.alpha} * {args.b}.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
