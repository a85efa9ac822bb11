"""Pre-upsampled input for pre-upsampling networks (VDSR-style): ``lq_interp: bicubic``."""
from __future__ import annotations

import numpy as np
import pytest

from basicsr_lite.data import build_dataset
from basicsr_lite.data.degrade.imresize import imresize
from basicsr_lite.errors import OptionError
from basicsr_lite.utils.img_util import imread, tensor2img
from tests.runs import train_in_process


def dataset_opt(tiny_opt: dict, key: str, **extra) -> dict:
    opt = {k: v for k, v in tiny_opt['datasets'][key].items() if k not in ('name',)}
    return {**opt, **extra}


@pytest.mark.parametrize('phase', ['train', 'val'])
def test_lq_is_the_matlab_bicubic_of_the_lr_patch(tiny_opt, phase):
    extra = {'gt_size': 16, 'lq_interp': 'bicubic'} if phase == 'train' else \
        {'lq_interp': 'bicubic'}
    key = 'train' if phase == 'train' else 'val'
    opt = {k: v for k, v in dataset_opt(tiny_opt, key, **extra).items()
           if k not in ('num_worker_per_gpu', 'batch_size_per_gpu', 'dataset_enlarge_ratio')}
    item = build_dataset(opt, phase, 2)[0]
    assert item['lq'].shape == item['gt'].shape
    if phase == 'val':  # the whole image: the bicubic upsampling of the LR file, exactly
        lr = imread(item['lq_path'])
        expected = imresize(lr, 2, output_shape=item['gt'].shape[-2:])
        assert np.array_equal(tensor2img(item['lq'][None]), expected)


def test_training_a_pre_upsampling_network(tiny_opt, tmp_path, capsys):
    tiny_opt['network_g'] = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 1,
                             'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4}
    for key in ('train', 'val'):
        tiny_opt['datasets'][key]['lq_interp'] = 'bicubic'
    tiny_opt['train']['total_iter'] = 2
    assert train_in_process(tmp_path, tiny_opt) == 0
    log = capsys.readouterr().err
    # The bicubic baseline of a pre-upsampled input is that input itself.
    assert 'bicubic' in log and 'Final validation on tiny_val (2 images)' in log


def test_unknown_interpolation_is_an_option_error(tiny_opt):
    opt = dataset_opt(tiny_opt, 'val', lq_interp='nearest')
    with pytest.raises(OptionError, match=r"lq_interp must be one of \[None, 'bicubic'\]; got "
                                          r"'nearest'"):
        build_dataset(opt, 'val', 2, 'val')
