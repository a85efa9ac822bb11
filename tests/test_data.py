import random

import cv2
import numpy as np
import pytest
import torch

from basicsr_lite.data import build_dataloader, build_dataset, seed_worker
from basicsr_lite.data.io.listing import paired_paths_from_folder
from basicsr_lite.data.loading.prefetcher import CPUPrefetcher, CUDAPrefetcher, build_prefetcher
from basicsr_lite.data.loading.sampler import EnlargedSampler, ShardSampler
from basicsr_lite.data.transforms import augment, mod_crop, paired_random_crop
from basicsr_lite.errors import DataError, ImageReadError
from basicsr_lite.utils.img_util import imfrombytes, img2tensor, imread, imwrite, tensor2img


def train_opt(tiny_data, **extra):
    opt = {'type': 'PairedImageDataset', 'dataroot_gt': tiny_data['train_gt'],
           'dataroot_lq': tiny_data['train_lq'], 'filename_tmpl': '{}x2', 'gt_size': 16,
           'use_hflip': True, 'use_rot': True, 'batch_size_per_gpu': 2}
    opt.update(extra)
    return opt


def test_paired_dataset_train_crops(tiny_data):
    dataset = build_dataset(train_opt(tiny_data), 'train', 2)
    assert len(dataset) == 4
    item = dataset[0]
    assert item['gt'].shape == (3, 16, 16) and item['lq'].shape == (3, 8, 8)
    assert item['gt'].dtype == torch.float32 and 0 <= item['gt'].min() <= item['gt'].max() <= 1
    assert item['gt_path'].endswith('img0.png') and item['lq_path'].endswith('img0x2.png')


def test_paired_dataset_val_keeps_whole_image(tiny_data):
    opt = {'type': 'PairedImageDataset', 'dataroot_gt': tiny_data['val_gt'],
           'dataroot_lq': tiny_data['val_lq'], 'filename_tmpl': '{}x2'}
    item = build_dataset(opt, 'val', 2)[1]
    assert item['gt'].shape == (3, 32, 40) and item['lq'].shape == (3, 16, 20)
    assert item['gt_path'].endswith('b.png')


def test_crop_and_augment_keep_pairs_aligned():
    rng = np.random.default_rng(0)
    lq = rng.random((12, 10, 3)).astype(np.float32)
    gt = np.repeat(np.repeat(lq, 3, axis=0), 3, axis=1)  # nearest-neighbour x3
    for seed in range(20):
        random.seed(seed)
        gt_patch, lq_patch = paired_random_crop(gt, lq, 9, 3)
        gt_patch, lq_patch = augment([gt_patch, lq_patch], hflip=True, rotation=True)
        assert gt_patch.shape == (9, 9, 3) and lq_patch.shape == (3, 3, 3)
        np.testing.assert_array_equal(gt_patch[1::3, 1::3], lq_patch)


def test_augment_covers_all_eight_transforms():
    img = np.arange(6, dtype=np.float32).reshape(2, 3)
    seen = set()
    for seed in range(200):
        random.seed(seed)
        seen.add(augment(img).tobytes())
    assert len(seen) == 8


def test_crop_errors_name_the_file():
    gt, lq = np.zeros((20, 20, 3)), np.zeros((10, 11, 3))
    with pytest.raises(DataError, match=r'GT size \(20, 20\) is not 2x the LQ size.*a\.png'):
        paired_random_crop(gt, lq, 8, 2, 'a.png')
    with pytest.raises(DataError, match='smaller than the patch'):
        paired_random_crop(np.zeros((8, 8, 3)), np.zeros((4, 4, 3)), 16, 2, 'b.png')


def test_mod_crop():
    assert mod_crop(np.zeros((10, 13, 3)), 4).shape == (8, 12, 3)
    assert mod_crop(np.zeros((10, 13)), 3).shape == (9, 12)


def test_meta_info_mode(tiny_data, tmp_path):
    meta = tmp_path / 'meta.txt'
    meta.write_text('img1.png (48,48,3) 1\nimg3.png (48,48,3) 1\n')
    dataset = build_dataset(train_opt(tiny_data, meta_info_file=str(meta)), 'train', 2)
    assert [p['gt_path'][-8:] for p in dataset.paths] == ['img1.png', 'img3.png']
    meta.write_text('missing.png (48,48,3) 1\n')
    with pytest.raises(DataError, match='do not exist'):
        build_dataset(train_opt(tiny_data, meta_info_file=str(meta)), 'train', 2)


def test_pairing_errors(tiny_data, tmp_path):
    with pytest.raises(DataError, match=r"4 GT image\(s\).*no LQ partner.*'{}_lr'.*img0_lr.png"):
        paired_paths_from_folder((tiny_data['train_lq'], tiny_data['train_gt']), ('lq', 'gt'),
                                 '{}_lr')
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(DataError, match='has no images'):
        paired_paths_from_folder((str(empty), tiny_data['train_gt']), ('lq', 'gt'))


def test_single_image_dataset(tiny_data):
    dataset = build_dataset({'type': 'SingleImageDataset', 'dataroot_lq': tiny_data['val_lq']},
                            'test', 2)
    item = dataset[0]
    assert set(item) == {'lq', 'lq_path'} and item['lq'].shape == (3, 16, 20)


def test_y_channel_and_normalisation(tiny_data):
    opt = train_opt(tiny_data, color='y', mean=[0.5], std=[0.5])
    item = build_dataset(opt, 'train', 2)[0]
    assert item['gt'].shape == (1, 16, 16) and item['gt'].min() < 0


def test_img2tensor_tensor2img_round_trip():
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    tensor = img2tensor(img.astype(np.float32) / 255)
    assert tensor.shape == (3, 5, 7)
    np.testing.assert_array_equal(tensor[0].numpy() * 255, img[:, :, 2].astype(np.float32))
    np.testing.assert_array_equal(tensor2img(tensor), img)
    np.testing.assert_array_equal(tensor2img(tensor[None]), img)
    assert tensor2img(torch.full((1, 2, 2), 2.0)).tolist() == [[255, 255], [255, 255]]


def test_corrupt_image_error_names_file(tmp_path):
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\nnot really')
    with pytest.raises(ImageReadError, match='bad.png'):
        imread(bad)
    with pytest.raises(ImageReadError, match='Cannot read image'):
        imread(tmp_path / 'absent.png')
    good = tmp_path / 'good.png'
    imwrite(np.full((3, 3, 3), 7, np.uint8), good)
    assert imfrombytes(good.read_bytes()).max() == 7
    assert imfrombytes(good.read_bytes(), float32=True).dtype == np.float32


def test_enlarged_sampler_partitions_and_resumes():
    full = [list(EnlargedSampler(10, 2, r, ratio=3, seed=5)) for r in range(2)]
    assert len(full[0]) == len(full[1]) == 15
    assert sorted(full[0] + full[1]) == sorted(list(range(10)) * 3)
    sampler = EnlargedSampler(10, 2, 1, ratio=3, seed=5)
    sampler.set_epoch(0, start=4)
    assert list(sampler) == full[1][4:] and len(sampler) == 11
    sampler.set_epoch(1)
    assert list(sampler) != full[1] and len(sampler) == 15
    assert list(EnlargedSampler(4, shuffle=False)) == [0, 1, 2, 3]


def test_shard_sampler_covers_each_index_once():
    shards = [list(ShardSampler(7, 3, r)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(7))


def test_prefetchers_share_interface():
    loader = [{'x': torch.tensor([i])} for i in range(3)]
    for prefetcher in (CPUPrefetcher(loader), CUDAPrefetcher(loader, torch.device('cpu')),
                       build_prefetcher(loader, 'cuda', torch.device('cpu'))):
        got = []
        while (batch := prefetcher.next()) is not None:
            got.append(int(batch['x']))
        assert got == [0, 1, 2]
        prefetcher.reset()
        assert int(prefetcher.next()['x']) == 0


@pytest.mark.parametrize('num_workers', [0, 2])
def test_loader_is_reproducible(tiny_data, num_workers):
    def first_batches():
        torch.manual_seed(3)
        random.seed(3)
        opt = train_opt(tiny_data, num_worker_per_gpu=num_workers)
        dataset = build_dataset(opt, 'train', 2)
        sampler = EnlargedSampler(len(dataset), seed=3, ratio=2)
        loader = build_dataloader(dataset, opt, 'train', sampler, seed=3)
        return [b['gt'] for b, _ in zip(loader, range(3))]

    for a, b in zip(first_batches(), first_batches()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_seed_worker_differs_per_worker_and_rank():
    values = set()
    for rank in range(2):
        for worker in range(2):
            seed_worker(worker, num_workers=2, rank=rank, seed=1)
            values.add(random.random())
    assert len(values) == 4


def test_grayscale_file_is_replicated(tmp_path):
    from basicsr_lite.data.io.file_client import FileClient
    from basicsr_lite.data.io.pixels import load_image, to_float
    path = tmp_path / 'g.png'
    cv2.imwrite(str(path), np.full((4, 4), 100, np.uint8))
    img = load_image(FileClient('disk'), str(path))
    assert img.shape == (4, 4, 3) and img.dtype == np.uint8 and img[0, 0, 0] == 100
    assert abs(to_float(img)[0, 0, 0] - 100 / 255) < 1e-6


def test_basicsr_style_module_paths_still_import():
    """data/ is organised by topic; the module paths users know from BasicSR keep working."""
    from basicsr_lite.data import degradations, imresize, transforms
    from basicsr_lite.data.degrade import degradations as degrade_module
    from basicsr_lite.data.degrade import imresize as imresize_module
    assert imresize.imresize is imresize_module.imresize
    assert imresize.imresize_pt is imresize_module.imresize_pt
    assert degradations.degrade is degrade_module.degrade
    assert degradations.gaussian_blur is degrade_module.gaussian_blur
    assert callable(transforms.paired_random_crop) and callable(transforms.augment)
