"""Dataset controls: max_images and name-based train / val splits of one folder."""
from __future__ import annotations

import pytest

from basicsr_lite.data import build_dataset
from basicsr_lite.data.loading.selection import in_val_part
from basicsr_lite.errors import OptionError
from basicsr_lite.options.parse import validate_options
from basicsr_lite.prep.synthetic import make_paired_folder
from tests.runs import train_in_process

NAMES = [f'img{i:02d}' for i in range(20)]


@pytest.fixture
def folder(tmp_path) -> dict:
    gt, lq = make_paired_folder(tmp_path / 'all', NAMES, (16, 16), 2, seed=3)
    return {'type': 'PairedImageDataset', 'dataroot_gt': str(gt), 'dataroot_lq': str(lq),
            'filename_tmpl': '{}x2', 'io_backend': {'type': 'disk'}}


def names(dataset_opt: dict, phase: str = 'val') -> list[str]:
    dataset = build_dataset(dataset_opt, phase, 2)
    return [entry['gt_path'].rsplit('/', 1)[1][:-4] for entry in dataset.paths]


def test_max_images_keeps_the_first_by_name(folder):
    assert names({**folder, 'max_images': 3}) == ['img00', 'img01', 'img02']
    assert len(names({**folder, 'max_images': 100})) == 20


def test_a_split_divides_one_folder_by_name(folder):
    split = {'val_fraction': 0.25, 'val_pattern': None}
    train = names({**folder, 'split': {**split, 'part': 'train'}})
    val = names({**folder, 'split': {**split, 'part': 'val'}})
    assert sorted(train + val) == NAMES and not set(train) & set(val)
    assert 1 <= len(val) <= 10  # about a quarter of 20
    # by name alone: the same image falls in the same part in a folder with other images
    assert all(in_val_part(n, {**split, 'part': 'val'}) for n in val)
    pattern = {'val_fraction': None, 'val_pattern': r'^img0[0-4]$'}
    assert names({**folder, 'split': {**pattern, 'part': 'val'}}) == NAMES[:5]
    assert names({**folder, 'split': {**pattern, 'part': 'train'}, 'max_images': 2}) == \
        ['img05', 'img06']


def test_nothing_left_is_an_error(folder):
    with pytest.raises(OptionError, match='datasets.val: no image is left of the 20'):
        build_dataset({**folder, 'split': {'part': 'val', 'val_fraction': None,
                                           'val_pattern': 'nomatch'}}, 'val', 2, 'val')


@pytest.mark.parametrize('split, message', [
    ({'part': 'val'}, 'datasets.val.split: give exactly one of val_fraction and val_pattern; got '
                      'neither.'),
    ({'part': 'val', 'val_fraction': 0.1, 'val_pattern': 'a'},
     'got val_fraction, val_pattern.'),
    ({'part': 'val', 'val_fraction': 1.5}, 'datasets.val.split.val_fraction: expected a fraction'),
    ({'part': 'val', 'val_pattern': '('}, "datasets.val.split.val_pattern: '(' is not a valid"),
    ({'part': 'test', 'val_fraction': 0.1}, "datasets.val.split.part: 'test' is not one of"),
])
def test_split_options_are_checked(tiny_opt, split, message):
    tiny_opt['datasets']['val']['split'] = split
    tiny_opt['path']['experiments_root'] = '/tmp/unused'
    with pytest.raises(OptionError) as err:
        validate_options(tiny_opt, is_train=True)
    assert message in str(err.value)


def test_training_on_the_train_part_validating_on_the_val_part(tiny_opt, tmp_path, folder):
    split = {'val_pattern': r'0[0-1]$'}
    tiny_opt['datasets']['train'].update(
        {k: v for k, v in folder.items() if k != 'type'}, split={**split, 'part': 'train'},
        gt_size=8, dataset_enlarge_ratio=1)
    tiny_opt['datasets']['val'].update({k: v for k, v in folder.items() if k != 'type'},
                                       split={**split, 'part': 'val'})
    tiny_opt['train']['total_iter'] = 2
    assert train_in_process(tmp_path, tiny_opt) == 0
    log = next((tmp_path / 'experiments' / 'tiny').glob('train_*.log')).read_text()
    assert 'Training statistics: 18 images' in log
    assert 'Final validation on tiny_val (2 images)' in log
