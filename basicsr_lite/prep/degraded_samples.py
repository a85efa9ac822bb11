"""Write what a Real-ESRNet / Real-ESRGAN option file makes of HR images: GT crops and their
synthesised LQ images, as a paired folder (``GT/<name>.png``, ``LQ/<name>.png``) that can be
looked at, or used as a validation set with PairedImageDataset."""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from basicsr_lite.data import build_dataset
from basicsr_lite.data.degrade.batch_degradations import USMSharp
from basicsr_lite.data.degrade.realesrgan_pipeline import HighOrderDegradation
from basicsr_lite.data.loading.sample_wrappers import SeededSamples
from basicsr_lite.errors import OptionError
from basicsr_lite.options import load_option_file, validate_options
from basicsr_lite.runtime.random_streams import RandomStreams
from basicsr_lite.utils.img_util import imwrite, tensor2img

SYNTHESIS_MODELS = ('RealESRNetModel', 'RealESRGANModel')


def write_degraded_samples(option_file: str | Path, output: str | Path,
                           input_folder: str | None = None, num_per_image: int = 1,
                           seed: int = 0, crop_pad_size: int | None = None,
                           device: str = 'cpu') -> int:
    """Degrade every image of ``datasets.train`` of ``option_file`` (or of ``input_folder``)
    ``num_per_image`` times with the file's synthesis options; returns the pairs written.

    The same ``seed`` gives the same samples. ``crop_pad_size`` overrides the dataset's GT crop
    (e.g. the whole size of validation images). ``output`` must not exist yet, or be empty.
    """
    raw = load_option_file(option_file)
    if raw.get('model_type') not in SYNTHESIS_MODELS:
        raise OptionError(f"{option_file}: model_type must be one of {', '.join(SYNTHESIS_MODELS)} "
                          f"(models that synthesise their training pairs); got "
                          f"{raw.get('model_type')!r}.")
    raw = copy.deepcopy(raw)
    # only the synthesis matters here: no validation sets, weights to load or states to resume
    train = raw.get('datasets', {}).get('train', {})
    raw['datasets'] = {'train': train}
    raw['path'] = {key: value for key, value in (raw.get('path') or {}).items()
                   if not key.startswith(('pretrain_network', 'resume_state'))}
    if input_folder is not None:
        train.update(dataroot_gt=input_folder, meta_info=None)
    if crop_pad_size is not None:
        train['crop_pad_size'] = crop_pad_size
        train.pop('gt_size', None)
    opt = validate_options(raw, is_train=True, source=str(option_file))
    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise OptionError(f'Output folder {output} is not empty; choose a new one.')
    dataset = SeededSamples(build_dataset(opt['datasets']['train'], 'train', opt['scale']))
    device_ = torch.device(device)
    synthesis = HighOrderDegradation(opt, opt['scale'], device_)
    sharpen = opt['model_type'] == 'RealESRGANModel' or opt.get('gt_usm', False)
    usm = USMSharp().to(device_)
    streams = RandomStreams(seed, device_)
    written = 0
    for index in range(len(dataset.dataset)):
        for k in range(num_per_image):
            sample = dataset[(index, seed * 1_000_003 + index * num_per_image + k)]
            gt = sample['gt'][None].to(device_)
            kernels = [sample[key][None].to(device_)
                       for key in ('kernel1', 'kernel2', 'sinc_kernel')]
            lq = synthesis(usm(gt) if sharpen else gt, *kernels, streams)
            name = Path(sample['gt_path']).stem + (f'_{k}' if num_per_image > 1 else '')
            imwrite(tensor2img(gt[0]), output / 'GT' / f'{name}.png')
            imwrite(tensor2img(lq[0]), output / 'LQ' / f'{name}.png')
            written += 1
    return written
