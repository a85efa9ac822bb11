"""AlignedDataset (pix2pix data), by values: which image is the input and which the target (and
their reported paths) in both directions and both layouts, the crop / flip shared by A and B
over many seeds, and the halves of the AB images tools/make_pix2pix_demo.py writes."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from basicsr_lite.data import build_dataset
from basicsr_lite.data.aligned_dataset import DIRECTIONS
from basicsr_lite.data.loading.sample_wrappers import SeededSamples
from basicsr_lite.utils.img_util import tensor2img
from tests.conftest import load_tool

H, W = 12, 16


def coded(y_scale: int, x_scale: int, offset: int, third: int) -> np.ndarray:
    """A BGR image whose first two channels encode each pixel's (row, column): every pixel, and
    every window, is unique, so a crop tells where it came from and whether it was flipped."""
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([yy * y_scale + offset, xx * x_scale + offset, np.full((H, W), third)],
                    axis=-1).astype(np.uint8)


A_IMG, B_IMG = coded(10, 10, 5, 40), coded(12, 9, 30, 200)
A2_IMG, B2_IMG = 255 - A_IMG, 255 - B_IMG


@pytest.fixture(scope='module')
def folders(tmp_path_factory) -> Path:
    """``ab/`` (side-by-side AB images x and y) and ``A/`` + ``B/`` (the same pairs, two
    folders; B's files listed in another order than A's would suggest)."""
    root = tmp_path_factory.mktemp('pix2pix')
    for sub in ('ab', 'A', 'B'):
        (root / sub).mkdir()
    for name, a, b in (('x', A_IMG, B_IMG), ('y', A2_IMG, B2_IMG)):
        cv2.imwrite(str(root / 'ab' / f'{name}.png'), np.concatenate([a, b], axis=1))
        cv2.imwrite(str(root / 'A' / f'{name}.png'), a)
        cv2.imwrite(str(root / 'B' / f'{name}.png'), b)
    return root


def dataset(root: Path, layout: str, direction: str, phase: str = 'val', **extra):
    opt = {'type': 'AlignedDataset', 'direction': direction, **extra}
    if layout == 'ab':
        opt['dataroot'] = str(root / 'ab')
    else:
        opt.update(dataroot_a=str(root / 'A'), dataroot_b=str(root / 'B'))
    return build_dataset(opt, phase, 1)


@pytest.mark.parametrize('layout', ['ab', 'folders'])
@pytest.mark.parametrize('direction', ['AtoB', 'BtoA'])
def test_direction_picks_input_target_and_paths(folders, layout, direction):
    data = dataset(folders, layout, direction)
    assert len(data) == 2
    for index, (name, a, b) in enumerate((('x', A_IMG, B_IMG), ('y', A2_IMG, B2_IMG))):
        item = data[index]
        src, dst = (a, b) if direction == 'AtoB' else (b, a)
        np.testing.assert_array_equal(tensor2img(item['lq']), src)
        np.testing.assert_array_equal(tensor2img(item['gt']), dst)
        if layout == 'ab':  # one file holds both
            assert item['lq_path'] == item['gt_path'] == str(folders / 'ab' / f'{name}.png')
        else:
            path_a, path_b = (str(folders / sub / f'{name}.png') for sub in ('A', 'B'))
            expected = (path_a, path_b) if direction == 'AtoB' else (path_b, path_a)
            assert (item['lq_path'], item['gt_path']) == expected


def locate(crop: np.ndarray, source: np.ndarray, size: int) -> tuple[int, int, bool]:
    """(top, left, flipped) of the one window of ``source`` (maybe flipped) equal to ``crop``."""
    hits = [(top, left, flip)
            for flip in (False, True)
            for top in range(H - size + 1) for left in range(W - size + 1)
            if np.array_equal(crop, np.flip(source[top:top + size, left:left + size], 1)
                              if flip else source[top:top + size, left:left + size])]
    assert len(hits) == 1, f'{len(hits)} windows match'
    return hits[0]


@pytest.mark.parametrize('direction', ['AtoB', 'BtoA'])
def test_training_crop_and_flip_are_shared_by_input_and_target(folders, direction):
    size, seeds = 8, range(200)
    samples = SeededSamples(dataset(folders, 'folders', direction, 'train', crop_size=size))
    src, dst = (A_IMG, B_IMG) if direction == 'AtoB' else (B_IMG, A_IMG)
    flips, corners = 0, set()
    for seed in seeds:
        item = samples[(0, seed)]
        lq, gt = tensor2img(item['lq']), tensor2img(item['gt'])
        top, left, flipped = locate(lq, src, size)
        window = dst[top:top + size, left:left + size]
        np.testing.assert_array_equal(gt, np.flip(window, 1) if flipped else window)
        flips += flipped
        corners.add((top, left))
    # p = 0.5 over 200 seeds: sigma ~7; 5 sigma either side (fixed seeds: no flakiness)
    assert abs(flips - 100) <= 35, flips
    assert len(corners) > 20  # the crop moves over the 5 x 9 possible corners


def test_no_flip_without_use_hflip(folders):
    samples = SeededSamples(dataset(folders, 'ab', 'AtoB', 'train', crop_size=H,
                                    use_hflip=False))
    for seed in range(40):
        item = samples[(1, seed)]
        assert locate(tensor2img(item['lq']), A2_IMG, H)[2] is False
        assert locate(tensor2img(item['gt']), B2_IMG, H)[2] is False


def test_demo_tool_puts_the_gray_input_left_and_the_colour_target_right(tmp_path):
    """tools/make_pix2pix_demo.py: A (left, the input of AtoB) is the grayscale tile, B the colour
    one; read back through AlignedDataset in both directions."""
    tool = load_tool('make_pix2pix_demo')
    tile = tool.TILE
    rng = np.random.default_rng(5)
    src = rng.integers(0, 256, (2 * tile, 2 * tile + 64, 3), np.uint8)  # short side already 256
    (tmp_path / 'demo' / 'train_HR').mkdir(parents=True)
    cv2.imwrite(str(tmp_path / 'demo' / 'train_HR' / 'pic.png'), src)
    out = tmp_path / 'p2p'
    assert tool.main(['--demo', str(tmp_path / 'demo'), '--out', str(out)]) == 0
    assert sorted(p.name for p in (out / 'train').iterdir()) == ['pic_00.png', 'pic_01.png',
                                                                  'pic_10.png']
    assert [p.name for p in (out / 'val').iterdir()] == ['pic_11.png']
    expected = src[tile:, 32 + tile:32 + 2 * tile]  # the bottom-right tile of the centre
    luma = expected.astype(np.float64) @ [0.114, 0.587, 0.299]  # BGR
    for direction in DIRECTIONS:
        item = build_dataset({'type': 'AlignedDataset', 'dataroot': str(out / 'val'),
                              'direction': direction}, 'val', 1)[0]
        gray, colour = (item['lq'], item['gt']) if direction == 'AtoB' else \
            (item['gt'], item['lq'])
        np.testing.assert_array_equal(tensor2img(colour), expected)
        gray = tensor2img(gray)
        assert np.array_equal(gray[..., 0], gray[..., 1]) and \
            np.array_equal(gray[..., 0], gray[..., 2])
        assert np.abs(gray[..., 0] - luma).max() <= 1
