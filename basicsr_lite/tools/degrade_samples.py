"""Write the training pairs a Real-ESRNet / Real-ESRGAN option file synthesises, to look at
what the model will see (or to make a validation set of the same degradations):

    python tools/degrade_samples.py -opt options/train/RealESRGAN/train_realesrgan_x4plus.yml \\
        --output results/degraded_samples --num 4

Writes ``<output>/GT/<name>.png`` (the GT crop) and ``<output>/LQ/<name>.png`` (its degraded LQ)
for every image of ``datasets.train`` (or of ``--input``). The same ``--seed`` writes the same
images.
"""
from __future__ import annotations

import argparse
import sys

from basicsr_lite.engine.cli import tool_main
from basicsr_lite.prep.degraded_samples import write_degraded_samples


@tool_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', required=True, help='a RealESRNetModel / RealESRGANModel file')
    parser.add_argument('--output', required=True, help='new (or empty) output folder')
    parser.add_argument('--input', default=None, help='HR folder (default: datasets.train)')
    parser.add_argument('--num', type=int, default=1, help='samples per image')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--crop_pad_size', type=int, default=None,
                        help="GT crop size (default: the dataset's crop_pad_size)")
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    args = parser.parse_args(argv)
    count = write_degraded_samples(args.opt, args.output, args.input, args.num, args.seed,
                                   args.crop_pad_size, args.device)
    print(f'{count} GT / LQ pairs written to {args.output}.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
