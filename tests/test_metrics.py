"""Tests of dskd.metrics: AUROC, ROC curve, PRO (exact) and the legacy PRO variants."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dskd.metrics import (
    image_auroc,
    legacy_pro_rd4ad,
    legacy_pro_stpm,
    pixel_auroc,
    pro_curve,
    pro_score,
    pro_variants,
    roc_curve,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")


# --------------------------------------------------------------------------------------
# Slow references written straight from the definitions
# --------------------------------------------------------------------------------------
def ref_regions(masks: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(image index, boolean region) for every 8-connected region of every mask."""
    out = []
    for i, m in enumerate(masks):
        lab, n = ndimage.label(m, structure=np.ones((3, 3), dtype=int))
        out.extend((i, lab == r) for r in range(1, n + 1))
    return out


def ref_pro_curve(masks, maps):
    """Loop over every distinct threshold t (descending); a pixel is positive if >= t."""
    masks = np.asarray(masks, dtype=bool)
    maps = np.asarray(maps, dtype=np.float32)
    regions = ref_regions(masks)
    normal = ~masks
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        pred = maps >= t
        fprs.append(np.count_nonzero(pred & normal) / np.count_nonzero(normal))
        pros.append(np.mean([pred[i][r].mean() for i, r in regions]))
    return np.array(fprs), np.array(pros)


def ref_pro_score(masks, maps, max_fpr=0.3):
    """Trapezoid under the reference curve up to max_fpr, interpolated there, / max_fpr."""
    fprs, pros = ref_pro_curve(masks, maps)
    area = 0.0
    for k in range(1, len(fprs)):
        x0, y0, x1, y1 = fprs[k - 1], pros[k - 1], fprs[k], pros[k]
        if x0 >= max_fpr:
            break
        if x1 <= max_fpr:
            area += (x1 - x0) * (y0 + y1) / 2
        else:
            ye = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0)
            area += (max_fpr - x0) * (y0 + ye) / 2
            break
    return area / max_fpr


def ref_grid_curve(masks, maps, thresholds):
    """FPR / PRO with 'anomalous if score > threshold', one threshold at a time."""
    masks = np.asarray(masks, dtype=bool)
    regions = ref_regions(masks)
    fprs, pros = [], []
    for t in thresholds:
        pred = maps > t
        fprs.append(np.count_nonzero(pred & ~masks) / np.count_nonzero(~masks))
        pros.append(np.mean([pred[i][r].mean() for i, r in regions]))
    return np.array(fprs), np.array(pros)


def ref_rd4ad_one(masks, maps, max_fpr=0.3, num_th=200):
    lo, hi = float(maps.min()), float(maps.max())
    fprs, pros = ref_grid_curve(masks, maps, np.arange(lo, hi, (hi - lo) / num_th))
    keep = fprs < max_fpr
    x = fprs[keep] / fprs[keep].max()
    return abs(np.trapezoid(pros[keep], x))


def ref_stpm(masks, maps, max_fpr=0.3, num_th=4000):
    lo, hi = float(maps.min()), float(maps.max())
    ths = [hi - k * (hi - lo) / num_th for k in range(num_th)]
    fprs, pros = ref_grid_curve(masks, maps, ths)
    keep = fprs <= max_fpr
    x, y = fprs[keep], pros[keep]
    x = (x - x.min()) / (x.max() - x.min())
    y = (y - y.min()) / (y.max() - y.min())
    return abs(np.trapezoid(y, x))


def random_case(seed: int):
    """Small random masks (blobs, single pixels, good images) and maps (often with ties)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 6))
    h, w = (int(v) for v in rng.integers(8, 17, size=2))
    masks = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        kind = rng.integers(0, 4)
        if kind == 0:
            continue  # good image
        if kind == 1:  # single pixels, some touching only diagonally
            for _ in range(int(rng.integers(1, 4))):
                r, c = rng.integers(0, h - 1), rng.integers(0, w - 1)
                masks[i, r, c] = True
                if rng.random() < 0.5:
                    masks[i, r + 1, c + 1] = True
        else:  # thresholded smooth noise: blobs of many sizes
            noise = ndimage.gaussian_filter(rng.random((h, w)), 1.5)
            masks[i] = noise > np.quantile(noise, rng.uniform(0.7, 0.95))
    if not masks.any():
        masks[0, h // 2, w // 2] = True
    maps = rng.random((n, h, w)) + masks * rng.uniform(0, 1)
    if seed % 3 == 0:
        maps = np.round(maps * 4) / 4  # heavy ties
    elif seed % 3 == 1:
        maps = np.round(maps, 2)
    return masks, maps.astype(np.float32)


# --------------------------------------------------------------------------------------
# PRO against the slow reference
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(30))
def test_pro_score_matches_reference(seed):
    masks, maps = random_case(seed)
    for max_fpr in (0.3, 0.05, 0.5, 1.0, 0.123):
        assert pro_score(masks, maps, max_fpr=max_fpr) == pytest.approx(
            ref_pro_score(masks, maps, max_fpr), rel=1e-9, abs=1e-12
        )


@pytest.mark.parametrize("seed", range(0, 30, 3))
def test_pro_curve_matches_reference(seed):
    masks, maps = random_case(seed)
    fprs, pros = pro_curve(masks, maps)
    rf, rp = ref_pro_curve(masks, maps)
    np.testing.assert_allclose(fprs, rf, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pros, rp, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_pro_curve_starts_at_origin_and_is_monotone(seed):
    masks, maps = random_case(seed)
    fprs, pros = pro_curve(masks, maps)
    assert (fprs[0], pros[0]) == (0.0, 0.0)
    assert np.all(np.diff(fprs) >= 0) and np.all(np.diff(pros) >= -1e-12)
    assert fprs[-1] == 1.0 and pros[-1] == pytest.approx(1.0)
    assert len(fprs) == len(np.unique(maps)) + 1  # one point per distinct score


def test_pro_edge_cases_match_reference():
    rng = np.random.default_rng(7)
    masks = np.zeros((3, 9, 11), dtype=bool)
    masks[0, 4, 4] = True  # one-pixel region
    masks[1, 0:3, 0:2] = True
    masks[1, 3, 2] = True  # touches the block only diagonally -> same region
    # image 2 has no defect
    constant = np.full(masks.shape, 0.25, dtype=np.float32)
    assert pro_score(masks, constant) == pytest.approx(0.15)  # curve (0,0)-(1,1): max_fpr / 2
    assert pro_score(masks, constant) == pytest.approx(ref_pro_score(masks, constant))
    maps = rng.integers(0, 3, masks.shape).astype(np.float32)
    for max_fpr in (0.01, 0.3, 1.0):
        assert pro_score(masks, maps, max_fpr) == pytest.approx(ref_pro_score(masks, maps, max_fpr))
    # max_fpr exactly on an FPR step: 96 normal pixels... use 10 normal pixels instead
    m = np.zeros((1, 2, 6), dtype=bool)
    m[0, 0, :2] = True  # 2 anomalous, 10 normal pixels: FPR steps of 0.1
    s = np.arange(12, dtype=np.float32).reshape(1, 2, 6)
    for max_fpr in (0.1, 0.2, 0.3, 0.7, 1.0):
        assert pro_score(m, s, max_fpr) == pytest.approx(ref_pro_score(m, s, max_fpr))


# --------------------------------------------------------------------------------------
# Hand-computed PRO cases
# --------------------------------------------------------------------------------------
def test_pro_stripe_with_interpolation():
    # One image 2x5: the top row is one region (5 pixels), the bottom row is normal.
    # region scores .9 .7 .5 .3 .1, normal scores .8 .6 .4 .2 .0 (all distinct).
    # Descending thresholds give the points
    #   t=.9 (0, .2)  t=.8 (.2, .2)  t=.7 (.2, .4)  t=.6 (.4, .4) ...
    # Area to FPR .3: [0, .2] at height .2 = .04, [.2, .3] at .4 (segment (.2,.4)-(.4,.4)
    # interpolated at .3) = .04; total .08 / .3 = 4/15.
    # To FPR 1 the area is .2 * (.2 + .4 + .6 + .8 + 1) = .6 = P(region > normal) = 15/25.
    masks = np.array([[[1] * 5, [0] * 5]])
    maps = np.array([[[0.9, 0.7, 0.5, 0.3, 0.1], [0.8, 0.6, 0.4, 0.2, 0.0]]], dtype=np.float32)
    assert pro_score(masks, maps) == pytest.approx(4 / 15)
    assert pro_score(masks, maps, max_fpr=1.0) == pytest.approx(0.6)
    assert pixel_auroc(masks, maps) == pytest.approx(0.6)
    fprs, pros = pro_curve(masks, maps)
    np.testing.assert_allclose(fprs, [0, 0, 0.2, 0.2, 0.4, 0.4, 0.6, 0.6, 0.8, 0.8, 1.0])
    np.testing.assert_allclose(pros, [0, 0.2, 0.2, 0.4, 0.4, 0.6, 0.6, 0.8, 0.8, 1.0, 1.0])


def test_pro_weights_regions_equally_and_across_images():
    # Image 0: an 8-pixel region fully at score 1. Image 1: a 1-pixel region at score 0
    # at the same position as image 0's region (a 3-D labelling would merge them).
    # Normal pixels all 0.5. Points: t=1 (0, mean(1, 0) = .5), t=.5 (1, .5), t=0 (1, 1).
    # PRO = .5 for every max_fpr (pixel-wise it would be 8/9).
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, 0:2, :] = True
    masks[1, 0, 0] = True
    maps = np.full(masks.shape, 0.5, dtype=np.float32)
    maps[0][masks[0]] = 1.0
    maps[1][masks[1]] = 0.0
    assert pro_score(masks, maps) == pytest.approx(0.5)
    assert pro_score(masks, maps, max_fpr=0.9) == pytest.approx(0.5)


def test_pro_diagonal_neighbours_are_one_region():
    # Pixels (0,0), (0,1) and (1,2): (1,2) touches (0,1) only diagonally, so with
    # 8-connectivity this is ONE region of 3 pixels. Only (1,2) is detected (score 1,
    # normal 0.5, others 0): PRO at FPR 0 is 1/3 (4-connectivity would give
    # mean(0/2, 1/1) = 1/2); the curve stays at 1/3 up to FPR 1, so PRO = 1/3.
    masks = np.zeros((1, 4, 4), dtype=bool)
    masks[0, 0, 0] = masks[0, 0, 1] = masks[0, 1, 2] = True
    maps = np.full(masks.shape, 0.5, dtype=np.float32)
    maps[0, 0, 0] = maps[0, 0, 1] = 0.0
    maps[0, 1, 2] = 1.0
    assert pro_score(masks, maps) == pytest.approx(1 / 3)


def test_pro_perfect_and_inverted_maps():
    masks = np.zeros((2, 8, 8), dtype=bool)
    masks[0, 2:5, 2:6] = True
    maps = np.where(masks, 1.0, 0.0).astype(np.float32)
    assert pro_score(masks, maps) == pytest.approx(1.0)
    assert pro_score(masks, 1 - maps) == pytest.approx(0.0)


def test_pro_accepts_channel_axis_torch_and_dtypes():
    torch = pytest.importorskip("torch")
    masks, maps = random_case(4)
    expected = pro_score(masks, maps)
    assert pro_score(masks[:, None].astype(np.uint8), maps[:, None]) == pytest.approx(expected)
    assert pro_score(masks.astype(np.float64), maps.astype(np.float64)) == pytest.approx(expected)
    assert pro_score(torch.from_numpy(masks[:, None]), torch.from_numpy(maps)) == pytest.approx(expected)
    assert pixel_auroc(torch.from_numpy(masks).int(), torch.from_numpy(maps)) == pytest.approx(
        pixel_auroc(masks, maps)
    )


def test_inputs_are_not_modified():
    masks, maps = random_case(5)
    m0, s0 = masks.copy(), maps.copy()
    for fn in (pro_score, pro_curve, pixel_auroc, pro_variants):
        fn(masks, maps)
    np.testing.assert_array_equal(masks, m0)
    np.testing.assert_array_equal(maps, s0)


def test_pro_chunking_gives_the_same_value(monkeypatch):
    import dskd.metrics as metrics

    masks, maps = random_case(9)
    expected = pro_score(masks, maps)
    monkeypatch.setattr(metrics, "_CHUNK_PIXELS", 1)  # one image per chunk
    assert pro_score(masks, maps) == pytest.approx(expected, rel=1e-12)
    fprs, _ = pro_curve(masks, maps)
    np.testing.assert_allclose(fprs, ref_pro_curve(masks, maps)[0])


# --------------------------------------------------------------------------------------
# AUROC and ROC curve against scikit-learn
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(10))
def test_image_auroc_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = rng.integers(0, 6, n) + labels * rng.uniform(0, 2)  # many ties
    assert image_auroc(labels, scores) == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12)
    assert image_auroc(labels.astype(bool), scores.tolist()) == pytest.approx(
        sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12
    )


@pytest.mark.parametrize("seed", range(10))
def test_pixel_auroc_matches_sklearn(seed):
    masks, maps = random_case(seed)
    assert pixel_auroc(masks, maps) == pytest.approx(
        sklearn_metrics.roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12
    )


def test_pixel_auroc_with_more_anomalous_than_normal_pixels():
    rng = np.random.default_rng(3)
    masks = rng.random((2, 10, 10)) < 0.8
    maps = np.round(rng.random(masks.shape) + masks * 0.3, 1).astype(np.float32)
    assert pixel_auroc(masks, maps) == pytest.approx(
        sklearn_metrics.roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12
    )


@pytest.mark.parametrize("seed", range(6))
def test_roc_curve_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    labels[:2] = [0, 1]
    scores = np.round(rng.normal(size=300) + labels, 1 if seed % 2 else 6)
    if seed == 5:
        scores = scores.astype(np.float32)
    fpr, tpr, thr = roc_curve(labels, scores)
    sf, st, sth = sklearn_metrics.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sf, atol=1e-15)
    np.testing.assert_allclose(tpr, st, atol=1e-15)
    np.testing.assert_array_equal(thr, sth)


def test_roc_curve_of_masks_and_maps():
    masks, maps = random_case(2)
    fpr, tpr, thr = roc_curve(masks, maps)
    sf, st, sth = sklearn_metrics.roc_curve(masks.ravel(), maps.ravel(), drop_intermediate=False)
    np.testing.assert_allclose(fpr, sf)
    np.testing.assert_allclose(tpr, st)
    np.testing.assert_array_equal(thr, sth)


# --------------------------------------------------------------------------------------
# Input validation: every message
# --------------------------------------------------------------------------------------
def _ok():
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, 1, 1] = True
    return masks, np.random.default_rng(0).random((2, 4, 4)).astype(np.float32)


@pytest.mark.parametrize("fn", [pro_score, pro_curve, pixel_auroc, legacy_pro_rd4ad, legacy_pro_stpm, pro_variants])
def test_pixel_input_validation(fn):
    masks, maps = _ok()
    with pytest.raises(ValueError, match=r"same shape.*masks \(2, 4, 4\) and maps \(2, 4, 5\)"):
        fn(masks, np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match=r"masks must have shape \(N, H, W\) or \(N, 1, H, W\); got shape \(4, 4\)"):
        fn(masks[0], maps[0])
    with pytest.raises(ValueError, match=r"maps must have shape .*got shape \(2, 3, 4, 4\)"):
        fn(masks, np.zeros((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"masks is empty"):
        fn(np.zeros((0, 4, 4)), np.zeros((0, 4, 4)))
    with pytest.raises(ValueError, match=r"maps is empty \(shape \(2, 0, 4\)\)"):
        fn(masks, np.zeros((2, 0, 4)))
    with pytest.raises(ValueError, match=r"masks must be bool, integer or float .*got dtype complex"):
        fn(masks.astype(complex), maps)
    bad = masks.astype(float)
    bad[1, 0, 0] = 0.5
    with pytest.raises(ValueError, match=r"masks must be binary .*such as 0\.5"):
        fn(bad, maps)
    with pytest.raises(ValueError, match=r"masks must be binary .*such as 2"):
        fn(masks.astype(int) * 2, maps)
    nan = maps.copy()
    nan[0, 0, 0] = np.nan
    nan[0, 0, 1] = np.inf
    with pytest.raises(ValueError, match=r"maps must be finite; got 1 NaN and 1 inf"):
        fn(masks, nan)
    with pytest.raises(ValueError, match=r"maps must be finite.*after conversion to float32"):
        fn(masks, maps.astype(np.float64) * 1e300)
    with pytest.raises(ValueError, match=r"maps must be real numbers; got dtype complex"):
        fn(masks, maps.astype(complex))
    with pytest.raises(ValueError, match=r"no anomalous pixel .*undefined"):
        fn(np.zeros_like(masks), maps)
    if fn is not legacy_pro_rd4ad:  # per image it has normal-free images on purpose
        with pytest.raises(ValueError, match=r"no normal pixel .*undefined"):
            fn(np.ones_like(masks), maps)


@pytest.mark.parametrize("fn", [pro_score, legacy_pro_rd4ad, legacy_pro_stpm, pro_variants])
@pytest.mark.parametrize("max_fpr", [0, -0.1, 1.5, float("nan"), "a"])
def test_max_fpr_validation(fn, max_fpr):
    masks, maps = _ok()
    with pytest.raises(ValueError, match=r"max_fpr must be (a number )?in \(0, 1\]; got"):
        fn(masks, maps, max_fpr=max_fpr)


def test_num_thresholds_validation():
    masks, maps = _ok()
    with pytest.raises(ValueError, match=r"num_thresholds must be a positive integer; got 0"):
        legacy_pro_rd4ad(masks, maps, num_thresholds=0)
    with pytest.raises(ValueError, match=r"num_thresholds must be a positive integer; got -3"):
        legacy_pro_stpm(masks, maps, num_thresholds=-3)


@pytest.mark.parametrize("fn", [image_auroc, roc_curve])
def test_label_input_validation(fn):
    with pytest.raises(ValueError, match=r"single class \(all 3 are 1\)"):
        fn([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"single class \(all 2 are 0\)"):
        fn(np.zeros(2), [0.1, 0.2])
    with pytest.raises(ValueError, match=r"same shape; got labels \(3,\) and scores \(2,\)"):
        fn([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"labels must be binary .*such as 2"):
        fn([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"scores must be finite; got 1 NaN and 0 inf"):
        fn([0, 1, 1], [0.1, np.nan, 0.3])
    with pytest.raises(ValueError, match=r"empty"):
        fn([], [])


# --------------------------------------------------------------------------------------
# Legacy variants
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 4, 5])
def test_legacy_variants_match_their_loop_definitions(seed):
    masks, maps = random_case(seed)
    assert legacy_pro_stpm(masks, maps, num_thresholds=300) == pytest.approx(
        ref_stpm(masks, maps, num_th=300), rel=1e-9
    )
    assert legacy_pro_rd4ad(masks, maps, per_image=False) == pytest.approx(ref_rd4ad_one(masks, maps), rel=1e-9)
    per_image = [ref_rd4ad_one(m[None], s[None]) for m, s in zip(masks, maps) if m.any()]
    assert legacy_pro_rd4ad(masks, maps) == pytest.approx(np.mean(per_image), rel=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_legacy_variants_run_in_plausible_range(seed):
    masks, maps = random_case(seed + 100)
    values = pro_variants(masks, maps)
    assert set(values) == {"exact", "rd4ad", "rd4ad_global", "stpm"}
    assert values["exact"] == pytest.approx(pro_score(masks, maps))
    for v in values.values():
        assert np.isnan(v) or 0.0 <= v <= 1.0 + 1e-9


def test_legacy_variants_differ_from_exact_pro():
    # Image 0: the defect scores U[0.5, 1), its normal pixels U[0, 0.5): separated
    # perfectly *within the image*. Image 1 (good): normal pixels U[0.5, 1.5), i.e.
    # most of them score above the defect. The exact PRO (global FPR) is therefore
    # tiny; RD4AD's per-image evaluation never sees image 1 and reports ~1.
    rng = np.random.default_rng(0)
    masks = np.zeros((2, 32, 32), dtype=bool)
    masks[0, 8:24, 8:24] = True
    maps = np.empty(masks.shape, dtype=np.float32)
    maps[0] = np.where(masks[0], rng.uniform(0.5, 1.0, (32, 32)), rng.uniform(0.0, 0.5, (32, 32)))
    maps[1] = rng.uniform(0.5, 1.5, (32, 32))
    v = pro_variants(masks, maps)
    assert v["exact"] < 0.1
    assert v["rd4ad"] > 0.9
    assert v["rd4ad"] - v["exact"] > 0.8


def test_stpm_rescaling_inflates_half_detected_regions():
    # Half of each region scores above every normal pixel, the other half below all
    # of them: the exact PRO curve sits at 0.5 up to FPR 1, so PRO = 0.5. STPM's
    # min-max rescaling of PRO maps 0.5 to 1 and reports ~1.
    rng = np.random.default_rng(1)
    masks = np.zeros((4, 16, 16), dtype=bool)
    masks[:2, 4:12, 4:8] = True
    maps = rng.uniform(0, 1, masks.shape).astype(np.float32)
    maps[:2, 4:8, 4:8] = 2.0
    maps[:2, 8:12, 4:8] = -1.0
    assert pro_score(masks, maps) == pytest.approx(0.5)
    assert legacy_pro_stpm(masks, maps) - pro_score(masks, maps) > 0.4
