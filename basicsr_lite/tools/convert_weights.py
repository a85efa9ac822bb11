"""Convert weights between PyTorch (.pth) and safetensors (.safetensors), both ways:

    python tools/convert_weights.py --input net_g_latest.pth --output net_g_latest.safetensors
    python tools/convert_weights.py --input net.safetensors --output net.pth

BasicSR files keep both ``params`` and ``params_ema`` (stored as ``params.<key>`` in
safetensors). Reading a .pth never runs pickled code (weights-only). Needs ``pip install
safetensors``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from basicsr_lite.engine.cli import tool_main
from basicsr_lite.runtime.weights import (flatten_param_keys, load_weights, read_metadata,
                                          save_safetensors, save_torch)


def convert(src: Path, dest: Path) -> int:
    """Write ``src``'s weights to ``dest`` (format from the suffix); returns the tensor count."""
    weights = load_weights(src)
    if dest.suffix == '.safetensors':  # a self-describing source keeps its metadata
        save_safetensors(weights, dest, {'format': 'pt', **read_metadata(src)})
    else:
        save_torch(weights, dest)
    return len(flatten_param_keys(weights))


@tool_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True)
    parser.add_argument('--output', required=True)
    parser.add_argument('--overwrite', action='store_true')
    args = parser.parse_args(argv)
    src, dest = Path(args.input), Path(args.output)
    if dest.exists() and not args.overwrite:
        print(f'Error: {dest} exists; use --overwrite.', file=sys.stderr)
        return 2
    count = convert(src, dest)
    print(f'{dest}: {count} tensors.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
