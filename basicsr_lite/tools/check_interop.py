"""Does a generator saved here open in the upscaling tools? Loads it through spandrel (the
loader of chaiNNer, ComfyUI, AUTOMATIC1111, InvokeAI), compares spandrel's network with ours on
a fixed smooth input (fp32; max |diff| <= 1e-5 x max(1, max |output|)), and prints the detected
architecture, scale, hyper-parameters and the precision flags next to our capability table's:

    basicsr-check-interop experiments/<name>              (its option file, newest net_g)
    basicsr-check-interop net_g_latest.pth --opt options/train/X.yml
    basicsr-check-interop net_g.pth                       (from its metadata, else detected)
    basicsr-check-interop net_g.pth --export net_g_spandrel.pth

``--export`` writes the weights in the layout spandrel recognises (RCAN: the authors' keys; the
others unchanged). Exit status 0: passes, 1: fails. Needs ``pip install -e ".[interop]"``.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from basicsr_lite.archs.detection import options_from_weights
from basicsr_lite.archs.interop import check_file, load_generator, spandrel_layout
from basicsr_lite.engine.checkpoint.files import find_network_file
from basicsr_lite.engine.cli import tool_main
from basicsr_lite.errors import UserError
from basicsr_lite.options.parse import load_option_file
from basicsr_lite.registry import ARCH_REGISTRY
from basicsr_lite.runtime.weights import adapt_layout, save_torch


def experiment_files(folder: Path) -> tuple[Path, Path | None]:
    """(newest net_g file, .pth or .safetensors; option file copy) of an experiment folder."""
    models = folder / 'models'
    weights = find_network_file(models, 'net_g', 'latest')
    if weights is None:
        numbered = [(int(m.group(1)), p) for p in models.glob('net_g_*')
                    if (m := re.fullmatch(r'net_g_(\d+)\.(pth|safetensors)', p.name))]
        weights = max(numbered)[1] if numbered else None
    if weights is None:
        raise UserError(f'{folder} has no models/net_g_*.pth (or .safetensors).')
    copies = sorted([*folder.glob('*.yml'), *folder.glob('*.toml')],
                    key=lambda p: p.stat().st_mtime)
    return weights, copies[-1] if copies else None


def network_options(option_file: Path | None, weights: Path) -> dict:
    """``network_g`` of the option file, else the file's metadata, else detected."""
    if option_file is not None:
        opt = load_option_file(option_file)
        if isinstance(opt, dict) and isinstance(opt.get('network_g'), dict) and \
                opt['network_g'].get('type') not in (None, 'auto'):
            return dict(opt['network_g'])
    return options_from_weights(str(weights))


@tool_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('target', help='a net_g file or an experiment folder')
    parser.add_argument('--opt', help='option file with network_g (default: the experiment\'s '
                                      'copy, else detection from the weights)')
    parser.add_argument('--export', help='write the weights in the layout spandrel recognises')
    args = parser.parse_args(argv)
    target = Path(args.target)
    option_file = Path(args.opt) if args.opt else None
    if target.is_dir():
        target, found = experiment_files(target)
        option_file = option_file or found
    options = network_options(option_file, target)
    report = check_file(str(target), options)
    print(f'{target}:')
    for line in report.lines():
        print('  ' + line)
    if args.export:
        state = adapt_layout(ARCH_REGISTRY.get(options['type']), load_generator(target))
        save_torch({'params': spandrel_layout(options, state)}, args.export)
        print(f'Wrote {args.export} (the layout spandrel recognises).')
    return 0 if report.passed else 1


if __name__ == '__main__':
    sys.exit(main())
