import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from dskd.inference import (
    anomaly_map, anomaly_score, calibrated_threshold, gaussian_blur, minmax_normalize, paper_threshold,
)
from dskd.losses import distillation_map


@pytest.mark.parametrize("shape, sigma", [((2, 64, 64), 4.0), ((1, 7, 5), 4.0), ((3, 40, 56), 2.0), ((1, 128, 128), 8.0)])
def test_gaussian_equals_scipy(shape, sigma):
    m = torch.rand(*shape, dtype=torch.float64)
    expected = np.stack([gaussian_filter(x, sigma) for x in m.numpy()])
    np.testing.assert_allclose(gaussian_blur(m, sigma).numpy(), expected, atol=1e-12)


def test_sigma_zero_is_identity_and_negative_is_an_error():
    m = torch.rand(1, 8, 8)
    assert gaussian_blur(m, 0) is m
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        gaussian_blur(m, -1)


def _pyramids(b=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(64, size // 4), (128, size // 8), (256, size // 16)]
    ref = [torch.randn(b, c, s, s, generator=g) for c, s in shapes]
    stu = [torch.randn(b, c, s, s, generator=g) for c, s in shapes]
    return ref, stu


def test_anomaly_map_is_upsampled_sum_then_blur():
    ref, stu = _pyramids()
    total = sum(torch.nn.functional.interpolate(distillation_map(r, s).unsqueeze(1), size=(64, 64),
                                                mode="bilinear", align_corners=False)[:, 0]
                for r, s in zip(ref, stu))
    expected = np.stack([gaussian_filter(x, 4.0) for x in total.numpy()])
    got = anomaly_map(ref, stu, 64)
    assert got.shape == (2, 64, 64)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


def test_layer_subsets_pick_single_maps():
    ref, stu = _pyramids()
    m2 = anomaly_map(ref, stu, 64, layers=(2,), sigma=0)
    expected = torch.nn.functional.interpolate(distillation_map(ref[1], stu[1]).unsqueeze(1), size=(64, 64),
                                               mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(m2, expected)
    with pytest.raises(ValueError, match="subset of"):
        anomaly_map(ref, stu, 64, layers=(0,))


def test_score_is_the_max():
    maps = torch.zeros(2, 4, 4)
    maps[0, 1, 2], maps[1, 3, 3] = 5.0, 2.0
    assert anomaly_score(maps).tolist() == [5.0, 2.0]


def test_thresholds():
    scores = torch.tensor([1.0, 2.0, 3.0, 5.0])
    t = paper_threshold(scores)
    assert t.threshold == pytest.approx(3.0)  # min-max normalised 0.5
    assert minmax_normalize(scores, 1.0, 5.0)[2].item() == pytest.approx(0.5)
    normal = torch.arange(100, dtype=torch.float32)
    cal = calibrated_threshold(normal, 0.05)
    assert (normal >= cal.threshold).float().mean().item() == pytest.approx(0.05, abs=0.011)
    with pytest.raises(ValueError, match="at least one"):
        calibrated_threshold(torch.tensor([]))
    with pytest.raises(ValueError, match="high > low"):
        minmax_normalize(scores, 1.0, 1.0)
