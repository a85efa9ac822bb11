import pytest
import torch

from basicsr_lite.losses import build_loss

PRED = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
TARGET = torch.tensor([[1.0, 1.0], [1.0, 1.0]])  # differences 0, 1, 2, 4


@pytest.mark.parametrize('name,mean,total', [('L1Loss', 7 / 4, 7.0), ('MSELoss', 21 / 4, 21.0)])
def test_pixel_losses_by_hand(name, mean, total):
    assert build_loss({'type': name})(PRED, TARGET).item() == pytest.approx(mean)
    assert build_loss({'type': name, 'reduction': 'sum'})(PRED, TARGET).item() == \
        pytest.approx(total)
    assert build_loss({'type': name, 'loss_weight': 0.5})(PRED, TARGET).item() == \
        pytest.approx(mean / 2)
    assert build_loss({'type': name, 'reduction': 'none'})(PRED, TARGET).shape == (2, 2)


def test_charbonnier():
    loss = build_loss({'type': 'CharbonnierLoss', 'eps': 1e-6})(PRED, TARGET).item()
    expected = sum((d * d + 1e-6)**0.5 for d in (0, 1, 2, 4)) / 4
    assert loss == pytest.approx(expected)


def test_weight_map_averages_over_weighted_elements():
    weight = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert build_loss({'type': 'L1Loss'})(PRED, TARGET, weight).item() == pytest.approx(3 / 2)


def test_bad_reduction():
    with pytest.raises(ValueError, match="reduction must be one of"):
        build_loss({'type': 'L1Loss', 'reduction': 'avg'})
