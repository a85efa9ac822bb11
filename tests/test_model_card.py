"""tools/model_card.py (issue 28) on a tiny run: each field is what the run recorded, and what
it cannot know is listed in ``missing``, not invented."""
from __future__ import annotations

import hashlib
import json

import pytest

from basicsr_lite.errors import UserError
from basicsr_lite.tools import model_card
from tests.runs import train_in_process


def test_model_card_of_a_tiny_run(tmp_path, tiny_opt):
    tiny_opt['network_g'] = {'type': 'SRVGGNetCompact', 'num_in_ch': 3, 'num_out_ch': 3,
                             'num_feat': 8, 'num_conv': 2, 'upscale': 2}
    tiny_opt['train']['total_iter'] = 3
    assert train_in_process(tmp_path, tiny_opt) == 0
    root = tmp_path / 'experiments' / 'tiny'
    assert model_card.main([str(root), '-o', str(tmp_path / 'card.json')]) == 0
    card = json.loads((tmp_path / 'card.json').read_text())
    weights = root / 'models' / 'net_g_latest.pth'
    assert card['name'] == 'tiny' and card['architecture'] == 'compact'
    assert (card['scale'], card['inputChannels'], card['outputChannels']) == (2, 3, 3)
    assert card['resources'] == [{'platform': 'pytorch', 'type': 'pth',
                                  'size': weights.stat().st_size,
                                  'sha256': hashlib.sha256(weights.read_bytes()).hexdigest()}]
    assert card['trainingIterations'] == 3
    assert card['trainingBatchSize'] == 2          # batch_size_per_gpu 2, one process
    assert card['trainingHRSize'] == 16 and card['trainingOTF'] is False
    assert card['dataset'] == 'tiny_train' and card['datasetSize'] == 4
    assert 'pretrainedModelG' not in card
    psnr = card['basicsrLite']['validation']['tiny_val']['psnr']
    assert psnr['iter'] == 3 and 0 < psnr['last'] < 100
    for never in ('author', 'license', 'date', 'images', 'resources[].urls'):
        assert never in card['missing'] and never not in card


def test_model_card_refuses_a_folder_without_a_run(tmp_path):
    (tmp_path / 'models').mkdir()
    with pytest.raises(UserError, match='no models/net_g'):
        model_card.model_card(tmp_path)
