"""An OpenModelDB-style model card (the fields of its data/models/*.json) for a training run:

    python tools/model_card.py experiments/<name> [-o card.json] [--weights FILE]

Everything comes from what the run recorded: the option file copied into the folder (network,
scale, dataset, HR patch size, on-the-fly degradation, pretrained start), the log's "Training
statistics" line (dataset size, effective batch), the saved network file (iterations, size,
sha256) and the validation metrics of the logs / TensorBoard events. A field the run cannot tell
(author, license, tags, description, date, images, download URLs, ...) is left out and named in
``missing``: nothing is invented. Run-specific facts that OpenModelDB has no field for are under
``basicsrLite``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

from basicsr_lite.archs.constraints import network_needs
from basicsr_lite.engine.cli import tool_main
from basicsr_lite.errors import UserError
from basicsr_lite.options.parse import load_option_file
from basicsr_lite.report.run_data import read_run

# OpenModelDB's architecture ids (its data/architectures.json / model files) of ours.
OPENMODELDB_ARCHS = {'EDSR': 'EDSR', 'MSRResNet': 'sr-res-net', 'OmniSR': 'omnisr',
                     'RRDBNet': 'esrgan', 'RealPLKSR': 'realplksr', 'SRVGGNetCompact': 'compact',
                     'SwinIR': 'swinir'}
# Dataset types that degrade the GT on the fly (OpenModelDB's trainingOTF).
OTF_DATASETS = {'RealESRGANDataset', 'DegradationDataset'}
NEVER_RECORDED = ['author', 'license', 'tags', 'description', 'date', 'images',
                  'resources[].urls', 'trainingEpochs', 'pretrainedModelD']
STATISTICS = re.compile(r'Training statistics: (\d+) images, enlarge ratio \S+, batch (\d+)'
                        r'(?: x (\d+) accumulated)? x (\d+) process')


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def iteration_of(weights: Path, folder: Path) -> int | None:
    """``net_g_<iter>.pth`` -> iter; ``net_g_latest`` -> the newest training state's."""
    match = re.search(r'_(\d+)\.(pth|safetensors)$', weights.name)
    if match:
        return int(match.group(1))
    states = [int(p.stem) for p in (folder / 'training_states').glob('*.state')
              if p.stem.isdigit()]
    return max(states) if states else None


def newest_weights(folder: Path) -> Path:
    models = folder / 'models'
    for name in ('net_g_latest.pth', 'net_g_latest.safetensors'):
        if (models / name).is_file():
            return models / name
    numbered = [p for p in models.glob('net_g_*') if re.search(r'_\d+\.', p.name)]
    if not numbered:
        raise UserError(f'{folder} has no models/net_g_*.pth: nothing to describe.')
    return max(numbered, key=lambda p: int(re.search(r'_(\d+)\.', p.name).group(1)))


def option_copy(folder: Path) -> dict:
    copies = sorted([*folder.glob('*.yml'), *folder.glob('*.toml')],
                    key=lambda p: p.stat().st_mtime)
    if not copies:
        raise UserError(f'{folder} has no copy of its option file (*.yml): the network and '
                        f'training settings are unknown.')
    return load_option_file(copies[-1])


def statistics(folder: Path) -> dict:
    """Dataset size and effective batch from the newest log's 'Training statistics' line."""
    found = {}
    for log in sorted(folder.glob('train_*.log')):
        for match in STATISTICS.finditer(log.read_text(errors='replace')):
            images, batch, accumulate, processes = match.groups()
            found = {'datasetSize': int(images),
                     'trainingBatchSize': int(batch) * int(accumulate or 1) * int(processes)}
    return found


def validation(folder: Path) -> dict:
    """``{dataset: {metric: {'last': v, 'iter': i, 'best': b}}}`` from the run's records."""
    run = read_run(folder)
    out: dict = {}
    for tag in run.tags('metrics/'):
        _, dataset, metric = tag.split('/', 2)
        series = run.scalars[tag]
        it, last = series[-1]
        out.setdefault(dataset, {})[metric] = {'last': round(last, 6), 'iter': it}
    return out


def model_card(folder: Path, weights: Path | None = None) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f'{folder} is not an experiment folder.')
    weights = Path(weights) if weights else newest_weights(folder)
    opt = option_copy(folder)
    net = opt.get('network_g') or {}
    train_set = (opt.get('datasets') or {}).get('train') or {}
    card: dict = {'name': opt.get('name', folder.name)}
    missing = list(NEVER_RECORDED)
    if net.get('type') in OPENMODELDB_ARCHS:
        card['architecture'] = OPENMODELDB_ARCHS[net['type']]
    else:
        missing.append(f"architecture (no OpenModelDB id known here for {net.get('type')})")
    card['scale'] = opt.get('scale')
    needs = network_needs(net) if net.get('type') not in (None, 'auto') else None
    for field, value in (('inputChannels', needs and needs.in_ch),
                         ('outputChannels', needs and needs.out_ch)):
        if value is not None:
            card[field] = value
        else:
            missing.append(field)
    card['resources'] = [{'platform': 'pytorch',
                          'type': 'safetensors' if weights.suffix == '.safetensors' else 'pth',
                          'size': weights.stat().st_size, 'sha256': sha256_of(weights)}]
    iterations = iteration_of(weights, folder)
    if iterations is not None:
        card['trainingIterations'] = iterations
    else:
        missing.append('trainingIterations')
    stats = statistics(folder)
    if 'trainingBatchSize' in stats:
        card['trainingBatchSize'] = stats['trainingBatchSize']
    else:
        missing.append('trainingBatchSize (no "Training statistics" line in the logs)')
    if train_set.get('gt_size') is not None:
        card['trainingHRSize'] = train_set['gt_size']
    else:
        missing.append('trainingHRSize')
    if train_set.get('type'):
        card['trainingOTF'] = train_set['type'] in OTF_DATASETS
    if train_set.get('name'):
        card['dataset'] = train_set['name']
    if 'datasetSize' in stats:
        card['datasetSize'] = stats['datasetSize']
    else:
        missing.append('datasetSize')
    pretrained = (opt.get('path') or {}).get('pretrain_network_g')
    if pretrained:
        card['pretrainedModelG'] = Path(pretrained).name  # a file name, not an OpenModelDB id
    card['basicsrLite'] = {'network_g': net, 'weights': str(weights.relative_to(folder)),
                           'model_type': opt.get('model_type'), 'validation': validation(folder)}
    card['missing'] = missing
    return card


@tool_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('experiment', help='experiments/<name>')
    parser.add_argument('--weights', help='the network file (default: the newest net_g)')
    parser.add_argument('-o', '--output', help='JSON file (default: print)')
    args = parser.parse_args(argv)
    text = json.dumps(model_card(Path(args.experiment), args.weights), indent=4)
    if args.output:
        Path(args.output).write_text(text + '\n')
        print(f'Wrote {args.output}.')
    else:
        print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
