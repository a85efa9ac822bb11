import cv2
import numpy as np
import pytest

from basicsr_lite.data import build_dataset
from basicsr_lite.data.io.scan import image_size, size_from_header
from basicsr_lite.errors import DataError
from basicsr_lite.prep.lmdb_util import make_lmdb_from_folder
from basicsr_lite.prep.synthetic import make_paired_folder


@pytest.mark.parametrize('ext', ['.png', '.jpg', '.bmp'])
def test_header_sizes_match_decoded(tmp_path, ext):
    img = np.random.default_rng(0).integers(0, 256, (37, 53, 3), np.uint8)
    path = tmp_path / f'x{ext}'
    cv2.imwrite(str(path), img)
    assert image_size(str(path)) == (37, 53)


def test_unknown_or_damaged_header_is_left_to_load_time(tmp_path):
    assert size_from_header(b'') is None and size_from_header(b'GIF89a....') is None
    (tmp_path / 'e.png').write_bytes(b'')
    assert image_size(str(tmp_path / 'e.png')) is None
    with pytest.raises(DataError, match='Cannot read image'):
        image_size(str(tmp_path / 'missing.png'))


def opt(gt, lq, **extra):
    return {'type': 'PairedImageDataset', 'dataroot_gt': str(gt), 'dataroot_lq': str(lq),
            'filename_tmpl': '{}x2', **extra}


def test_lq_size_mismatch_is_named(tmp_path):
    gt, lq = make_paired_folder(tmp_path, ['a', 'b'], (32, 32), 2)
    cv2.imwrite(str(lq / 'bx2.png'), np.zeros((15, 16, 3), np.uint8))
    with pytest.raises(DataError, match=r'1 image pair\(s\) cannot be used:\n  .*bx2.png is '
                                        r'16x15 but .*b.png is 32x32 \(expected LQ = GT / 2\)'):
        build_dataset(opt(gt, lq, gt_size=16), 'train', 2)


def test_image_smaller_than_gt_size_is_named(tmp_path):
    gt, lq = make_paired_folder(tmp_path, ['small'], (24, 40), 2)
    with pytest.raises(DataError, match=r'small.png is 40x24, smaller than gt_size 32'):
        build_dataset(opt(gt, lq, gt_size=32), 'train', 2)


def test_val_tolerates_gt_not_mod_cropped(tmp_path):
    gt, lq = make_paired_folder(tmp_path, ['v'], (32, 32), 2)
    big = np.zeros((33, 33, 3), np.uint8)
    cv2.imwrite(str(gt / 'v.png'), big)  # 33 = 2 * 16 + 1: fine for val, not for train
    assert len(build_dataset(opt(gt, lq), 'val', 2)) == 1
    with pytest.raises(DataError, match='expected LQ = GT / 2'):
        build_dataset(opt(gt, lq, gt_size=16), 'train', 2)
    assert len(build_dataset(opt(gt, lq, gt_size=16, scan=False), 'train', 2)) == 1


def test_lmdb_scan_uses_meta_info(tmp_path):
    gt, lq = make_paired_folder(tmp_path, ['a'], (32, 32), 2, lq_suffix='')
    make_lmdb_from_folder(gt, tmp_path / 'gt.lmdb')
    make_lmdb_from_folder(lq, tmp_path / 'lq.lmdb')
    meta = tmp_path / 'lq.lmdb' / 'meta_info.txt'
    meta.write_text(meta.read_text().replace('(16,16,3)', '(16,15,3)'))
    with pytest.raises(DataError, match=r'lq.lmdb:a is 15x16 but gt.lmdb:a is 32x32'):
        build_dataset({'type': 'PairedImageDataset', 'dataroot_gt': str(tmp_path / 'gt.lmdb'),
                       'dataroot_lq': str(tmp_path / 'lq.lmdb'), 'io_backend': {'type': 'lmdb'},
                       'gt_size': 16}, 'train', 2)
