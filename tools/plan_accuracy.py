"""How close the memory planner's predictions are, for every generator of the registry.

Each architecture, as its shipped option file configures it, trains at x4 on the demo data
(options/train/demo.yml with that network_g). The planner's fit (two real steps at small sizes,
measured on ``--fit-device``) predicts the peak of steps at two larger settings, which are then
measured for real on ``--check-device`` (CUDA: ``max_memory_allocated``; CPU: the allocator's
events). Prints predicted / measured per setting and the worst over the registry.

    python tools/plan_accuracy.py [--archs SPAN SwinIR] [--fit-device cpu]
                                  [--check-device cpu|cuda] [--scale-checks 2 3]
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
from basicsr_lite.archs.capabilities import ANY_SCALE, capability
from basicsr_lite.archs.constraints import network_needs
from basicsr_lite.options import parse_options
from basicsr_lite.options.zoo import reference_option_file
from basicsr_lite.plan.measure import Setting, measure_step
from basicsr_lite.plan.planner import Plan, Request, fit_for
from basicsr_lite.plan.run import offered_patches
from basicsr_lite.registry import ARCH_REGISTRY

CONDITIONED = {'ArbSR': 'arbitrary scale: its own model and data',
               'SFTMD': 'metadata-conditioned: its own model and data'}


def demo_options(network: dict, amp: str | None) -> dict | str:
    """The demo option file training ``network`` at x4, parsed; a reason string if it cannot."""
    if network['type'] in CONDITIONED:
        return CONDITIONED[network['type']]
    cap = capability(network)
    needs = network_needs(network)
    if cap.scales is not ANY_SCALE and 4 not in cap.scales:
        return f'builds {cap.scales} only; the demo data is x4'
    if needs.in_ch not in (None, 3) or needs.out_ch not in (None, 3):
        return f'{needs.in_ch} -> {needs.out_ch} channels; the demo data is RGB'
    network = {**network, needs.scale_key: 4}
    raw = yaml.safe_load((ROOT / 'options/train/demo.yml').read_text())
    raw['network_g'] = network
    raw['train']['amp'] = amp
    path = ROOT / 'experiments' / '.plan_accuracy.yml'
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    try:
        return parse_options(['-opt', str(path)], is_train=True)[0]
    finally:
        path.unlink()


def check_settings(patches: list[int], fitted: list[Setting]) -> list[Setting]:
    """Two settings well beyond the fitted ones: about 1.5x and 2x the larger fitted side, at
    its batch and twice it."""
    side, batch = fitted[1].gt_size, fitted[1].batch
    pick = [min(patches, key=lambda p: abs(p - f * side)) for f in (1.5, 2.0)]
    return [Setting(pick[0], batch), Setting(pick[1], 2 * batch)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--archs', nargs='*', help='registered names (default: every generator)')
    parser.add_argument('--fit-device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--check-device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--amp', default=None, choices=(None, 'bf16', 'fp16'),
                        help='train.amp of the measured steps')
    args = parser.parse_args(argv)
    names = args.archs or [n for n in ARCH_REGISTRY.keys()
                           if capability({'type': n}).scales != ()]
    fit_device, check_device = torch.device(args.fit_device), torch.device(args.check_device)
    print(f'Planner accuracy: fit on {fit_device} (two real steps), checked on {check_device} '
          f'({"max_memory_allocated" if check_device.type == "cuda" else "allocator events"})'
          f'; demo data at x4, amp {args.amp or "off"}.\n')
    print('| arch | fitted at | checked at | predicted MiB | measured MiB | predicted / measured |')
    print('|---|---|---|---:|---:|---:|')
    worst = []
    for name in names:
        path = reference_option_file(name)
        if path is None:
            print(f'| {name} | (no option file) | | | | |', flush=True)
            continue
        network = copy.deepcopy(yaml.safe_load(path.read_text())['network_g'])
        opt = demo_options(network, args.amp)
        if isinstance(opt, str):
            print(f'| {name} | skipped: {opt} | | | | |', flush=True)
            continue
        patches, _ = offered_patches(opt)
        plan = Plan(Request(budget=0), patches)
        fit = fit_for(opt, fit_device, plan, False)
        fitted = [m.setting for m in plan.measured]
        for setting in check_settings(patches, fitted):
            measured = measure_step(opt, check_device, setting).peak
            ratio = fit.predict(setting) / measured
            worst.append((abs(ratio - 1), ratio, name))
            print(f'| {name} | {" + ".join(f"{s.gt_size}x{s.batch}" for s in fitted)} | '
                  f'{setting.gt_size}x{setting.batch} | {fit.predict(setting) / 2**20:.0f} | '
                  f'{measured / 2**20:.0f} | {ratio:.3f} |', flush=True)
            if check_device.type == 'cuda':
                torch.cuda.empty_cache()
    if worst:
        _, ratio, name = max(worst)
        low = min(r for _, r, _ in worst)
        print(f'\nWorst: {name} {ratio:.3f}; lowest ratio {low:.3f} over {len(worst)} checks.')


if __name__ == '__main__':
    main()
