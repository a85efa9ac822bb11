import re

import cv2
import lmdb
import numpy as np
import pytest
import torch

from basicsr_lite.data import build_dataloader, build_dataset
from basicsr_lite.data.io.listing import lmdb_keys
from basicsr_lite.errors import DataError, ImageReadError
from basicsr_lite.prep import lmdb_util
from basicsr_lite.prep.lmdb_util import make_lmdb_from_folder, verify_lmdb
from basicsr_lite.prep.synthetic import make_paired_folder


@pytest.fixture
def pair(tmp_path):
    gt, lq = make_paired_folder(tmp_path, ['a', 'b.v2', 'ünï', 'd'], (24, 32), 2, seed=4,
                                lq_suffix='')
    make_lmdb_from_folder(gt, tmp_path / 'gt.lmdb')
    make_lmdb_from_folder(lq, tmp_path / 'lq.lmdb')  # (a process pool costs ~1.5 s per test)
    return tmp_path


def test_parallel_encoding_writes_the_same_records(pair):
    make_lmdb_from_folder(pair / 'LR_X2', pair / 'lq2.lmdb', workers=2)
    for name in ('lq.lmdb', 'lq2.lmdb'):
        assert (pair / name / 'meta_info.txt').read_text() == \
            (pair / 'lq.lmdb' / 'meta_info.txt').read_text()
    records = []
    for name in ('lq.lmdb', 'lq2.lmdb'):
        env = lmdb.open(str(pair / name), readonly=True, lock=False)
        with env.begin() as txn:
            records.append(dict(txn.cursor()))
        env.close()
    assert records[0] == records[1] and len(records[0]) == 4


def test_basicsr_layout_and_meta_info(pair):
    db = pair / 'gt.lmdb'
    assert sorted(p.name for p in db.iterdir()) == ['data.mdb', 'lock.mdb', 'meta_info.txt']
    lines = (db / 'meta_info.txt').read_text(encoding='utf-8').splitlines()
    assert lines == ['a.png (24,32,3) 1', 'b.v2.png (24,32,3) 1', 'd.png (24,32,3) 1',
                     'ünï.png (24,32,3) 1']
    assert all(re.fullmatch(r'.+\.png \(\d+,\d+,\d+\) \d', line) for line in lines)
    env = lmdb.open(str(db), readonly=True, lock=False)
    with env.begin() as txn:
        value = txn.get('b.v2'.encode('utf-8'))
    assert value[:8] == b'\x89PNG\r\n\x1a\n'
    original = cv2.imread(str(pair / 'HR' / 'b.v2.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(value, np.uint8), -1), original)


def test_lmdb_dataset_equals_folder_dataset(pair):
    common = {'type': 'PairedImageDataset', 'filename_tmpl': '{}'}
    folder = build_dataset({**common, 'dataroot_gt': str(pair / 'HR'),
                            'dataroot_lq': str(pair / 'LR_X2')}, 'val', 2)
    db = build_dataset({**common, 'dataroot_gt': str(pair / 'gt.lmdb'),
                        'dataroot_lq': str(pair / 'lq.lmdb'), 'io_backend': {'type': 'lmdb'}},
                       'val', 2)
    assert len(db) == len(folder) == 4
    assert [p['gt_path'] for p in db.paths] == ['a', 'b.v2', 'd', 'ünï']
    for i in range(4):
        assert torch.equal(db[i]['gt'], folder[i]['gt']) and torch.equal(db[i]['lq'],
                                                                          folder[i]['lq'])


def test_lmdb_in_loader_workers(pair):
    opt = {'type': 'PairedImageDataset', 'dataroot_gt': str(pair / 'gt.lmdb'),
           'dataroot_lq': str(pair / 'lq.lmdb'), 'io_backend': {'type': 'lmdb'},
           'gt_size': 8, 'batch_size_per_gpu': 2, 'num_worker_per_gpu': 2}
    dataset = build_dataset(opt, 'train', 2)
    dataset[0]  # opened in this process first: workers must reopen their own
    loader = build_dataloader(dataset, opt, 'train', torch.utils.data.RandomSampler(dataset))
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == 2 and batches[0]['gt'].shape == (2, 3, 8, 8)


def test_single_image_dataset_from_lmdb(pair):
    dataset = build_dataset({'type': 'SingleImageDataset', 'dataroot_lq': str(pair / 'lq.lmdb'),
                             'io_backend': {'type': 'lmdb'}}, 'test', 2)
    assert dataset[3]['lq'].shape == (3, 12, 16) and dataset.paths[3] == 'ünï'


def test_refuses_overwrite_and_replaces_when_asked(pair):
    with pytest.raises(DataError, match='already exists; use --overwrite'):
        make_lmdb_from_folder(pair / 'HR', pair / 'gt.lmdb')
    (pair / 'HR' / 'extra.png').write_bytes((pair / 'HR' / 'a.png').read_bytes())
    make_lmdb_from_folder(pair / 'HR', pair / 'gt.lmdb', overwrite=True)
    assert len(lmdb_keys(str(pair / 'gt.lmdb'))) == 5
    assert sorted(p.name for p in pair.iterdir() if 'gt.lmdb' in p.name) == ['gt.lmdb']


def test_bad_image_is_named_and_nothing_looks_complete(pair):
    (pair / 'HR' / 'zz_bad.png').write_bytes(b'\x89PNG garbage')
    with pytest.raises(DataError, match='zz_bad.png'):
        make_lmdb_from_folder(pair / 'HR', pair / 'new.lmdb', workers=2)
    assert not (pair / 'new.lmdb').exists() and not (pair / 'new.lmdb.partial').exists()


def test_interrupted_conversion_leaves_no_complete_lmdb(pair, monkeypatch):
    calls = {'n': 0}
    real = lmdb_util._encode_task

    def interrupting(task):
        calls['n'] += 1
        if calls['n'] == 3:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(lmdb_util, '_encode_task', interrupting)
    with pytest.raises(KeyboardInterrupt):
        make_lmdb_from_folder(pair / 'HR', pair / 'new.lmdb', batch=1)
    assert not (pair / 'new.lmdb').exists() and not (pair / 'new.lmdb.partial').exists()
    with pytest.raises(DataError, match='is not an LMDB folder'):
        lmdb_keys(str(pair / 'new.lmdb'))


def test_map_size_grows_with_mixed_sizes(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / 'mixed'
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f'small{i}.png'), rng.integers(0, 256, (8, 8, 3), np.uint8))
    cv2.imwrite(str(folder / 'big.png'), rng.integers(0, 256, (3000, 3000, 3), np.uint8))
    report = make_lmdb_from_folder(folder, tmp_path / 'mixed.lmdb', compress_level=0, batch=2)
    assert report.count == 7 and report.map_size > 27_000_000
    assert verify_lmdb(tmp_path / 'mixed.lmdb') == 7


def test_verify_detects_wrong_shape(pair):
    meta = pair / 'gt.lmdb' / 'meta_info.txt'
    meta.write_text(meta.read_text(encoding='utf-8').replace('a.png (24,32,3)', 'a.png (9,9,3)'),
                    encoding='utf-8')
    with pytest.raises(DataError, match=r"key 'a' has shape \(24, 32, 3\), meta_info says"):
        verify_lmdb(pair / 'gt.lmdb')


def test_missing_key_is_named(pair):
    dataset = build_dataset({'type': 'SingleImageDataset', 'dataroot_lq': str(pair / 'lq.lmdb'),
                             'io_backend': {'type': 'lmdb'}}, 'test', 2)
    dataset.paths[0] = 'nope'
    with pytest.raises(ImageReadError, match="Key 'nope' is not in LMDB .*lq.lmdb"):
        dataset[0]


def test_create_lmdb_cli(pair, capsys):
    from tests.conftest import load_tool
    module = load_tool('create_lmdb')
    assert module.main(['--input', str(pair / 'HR'), '--output', str(pair / 'cli.lmdb'),
                        '--workers', '1', '--verify']) == 0
    assert 'cli.lmdb: 4 images' in capsys.readouterr().out
    assert module.main(['--input', str(pair / 'HR'), '--output', str(pair / 'cli.lmdb')]) == 2
    capsys.readouterr()
    # Every output is checked before the first conversion (and its progress bar) starts.
    assert module.main(['--input', str(pair / 'HR'), str(pair / 'HR'), '--output',
                        str(pair / 'first.lmdb'), str(pair / 'cli.lmdb')]) == 2
    captured = capsys.readouterr()
    assert 'cli.lmdb already exists; use --overwrite' in captured.err
    assert 'img/s' not in captured.err and '%|' not in captured.err
    assert not (pair / 'first.lmdb').exists() and not (pair / 'first.lmdb.partial').exists()
