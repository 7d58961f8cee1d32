"""Evaluation metrics of the paper (Sec. 4.1.3): image AUROC, pixel AUROC and PRO.

Plain functions in the style of scikit-learn. Every function accepts numpy arrays,
torch tensors (converted with ``.detach().cpu().numpy()``) or nested lists, and
returns Python floats or numpy arrays. Nothing here needs scikit-learn or torch.

Exact metrics
-------------
* :func:`image_auroc` / :func:`pixel_auroc`: area under the ROC curve, equal to
  ``sklearn.metrics.roc_auc_score`` (ties count one half).
* :func:`roc_curve`: the ROC curve, equal to ``sklearn.metrics.roc_curve`` with
  ``drop_intermediate=False``.
* :func:`pro_curve` / :func:`pro_score`: the per-region-overlap curve and its
  normalised area up to a false-positive rate of 0.3, exactly as the MVTec AD
  authors define it (8-connected ground-truth regions; global FPR over every normal
  pixel of every test image, good images included; PRO = mean over all regions of
  the covered fraction; tied scores form one point; the curve starts at (0, 0);
  linear interpolation at ``max_fpr``; area divided by ``max_fpr``).

Pixel-level functions work on float32 scores (a full MVTec AD category at full
resolution is ~157M pixels), so two float64 scores that round to the same float32
value count as tied. Image-level functions keep float64.

Legacy variants (teaching only)
-------------------------------
:func:`legacy_pro_rd4ad` and :func:`legacy_pro_stpm` re-implement the PRO code that
two popular repositories published and that many later papers copied. They do
*not* compute the metric defined above; they exist to show how far such code moves
the number (see :func:`pro_variants` and ``benchmarks/metrics.py``).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = [
    "image_auroc",
    "pixel_auroc",
    "roc_curve",
    "pro_curve",
    "pro_score",
    "legacy_pro_rd4ad",
    "legacy_pro_stpm",
    "pro_variants",
    "decision_metrics",
]

# Images are processed in chunks of at most this many pixels, which bounds the size
# of temporaries (boolean masks, region labels) for full-resolution test sets.
_CHUNK_PIXELS = 1 << 23
# 8-connectivity (MVTec AD's ground-truth regions).
_EIGHT = np.ones((3, 3), dtype=bool)


# --------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------
def _to_numpy(x: Any) -> np.ndarray:
    """Convert a torch tensor / array-like to a numpy array without importing torch."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        try:
            return x.numpy()
        except TypeError:  # e.g. bfloat16 has no numpy dtype
            return x.float().numpy()
    return np.asarray(x)


def _as_stack(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as an (N, H, W) array; accepts (N, H, W) and (N, 1, H, W)."""
    a = _to_numpy(x)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3:
        raise ValueError(
            f"{name} must have shape (N, H, W) or (N, 1, H, W); got shape {tuple(a.shape)}"
        )
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {tuple(a.shape)}); expected at least one pixel")
    return a


def _check_binary(a: np.ndarray, name: str) -> np.ndarray:
    """Return ``a`` as a bool array, raising unless every value is 0 or 1."""
    if a.dtype == np.bool_:
        return a
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"{name} must be bool, integer or float with values in {{0, 1}}; got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.integer):
        ok = a.size == 0 or (a.min() >= 0 and a.max() <= 1)
    else:
        ok = np.count_nonzero(a == 0) + np.count_nonzero(a == 1) == a.size
    if not ok:
        bad = np.unique(a[(a != 0) & (a != 1)])
        shown = ", ".join(repr(v.item()) for v in bad[:5])
        raise ValueError(
            f"{name} must be binary (values in {{0, 1}}); got {bad.size} other distinct "
            f"value(s) such as {shown} (dtype {a.dtype})"
        )
    return a != 0


def _check_scores(a: np.ndarray, name: str, dtype: type) -> np.ndarray:
    """Return ``a`` as a finite float array of the given dtype."""
    if a.dtype == np.bool_ or np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating):
        with np.errstate(over="ignore"):
            b = a.astype(dtype, copy=False)
    else:
        raise ValueError(f"{name} must be real numbers; got dtype {a.dtype}")
    if b.size and not (np.isfinite(b.min()) and np.isfinite(b.max())):
        n_nan = int(np.count_nonzero(np.isnan(b)))
        n_inf = int(np.count_nonzero(np.isinf(b)))
        extra = ""
        if b is not a and np.isfinite(a).all():
            extra = f" after conversion to {np.dtype(dtype).name} (values beyond its range)"
        raise ValueError(f"{name} must be finite; got {n_nan} NaN and {n_inf} inf value(s){extra}")
    return b


def _check_pixels(masks: Any, maps: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (masks, maps) pair; return bool (N, H, W) masks and float32 maps."""
    m = _as_stack(masks, "masks")
    s = _as_stack(maps, "maps")
    if m.shape != s.shape:
        raise ValueError(
            f"masks and maps must have the same shape (after dropping a channel axis of size 1); "
            f"got masks {tuple(m.shape)} and maps {tuple(s.shape)}"
        )
    return _check_binary(m, "masks"), _check_scores(s, "maps", np.float32)


def _check_labels_scores(labels: Any, scores: Any, dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels/scores of any equal shape; return flat bool labels and float scores."""
    y = _to_numpy(labels)
    s = _to_numpy(scores)
    if y.shape != s.shape:
        raise ValueError(
            f"labels and scores must have the same shape; got labels {tuple(y.shape)} and scores {tuple(s.shape)}"
        )
    if y.size == 0:
        raise ValueError("labels and scores are empty; expected at least one sample of each class")
    y = _check_binary(y.ravel(), "labels")
    s = _check_scores(s.ravel(), "scores", dtype)
    n_pos = int(np.count_nonzero(y))
    if n_pos == 0 or n_pos == y.size:
        only = 1 if n_pos else 0
        raise ValueError(
            f"labels contain a single class (all {y.size} are {only}); AUROC needs both "
            f"normal (0) and anomalous (1) samples"
        )
    return y, s


def _check_max_fpr(max_fpr: float) -> float:
    try:
        f = float(max_fpr)
    except (TypeError, ValueError):
        raise ValueError(f"max_fpr must be a number in (0, 1]; got {max_fpr!r}") from None
    if not (0.0 < f <= 1.0):
        raise ValueError(f"max_fpr must be in (0, 1]; got {max_fpr!r}")
    return f


def _chunks(n_images: int, pixels_per_image: int):
    step = max(1, _CHUNK_PIXELS // max(1, pixels_per_image))
    for start in range(0, n_images, step):
        yield start, min(n_images, start + step)


def _split_pixels(
    masks: np.ndarray, maps: np.ndarray, regions: bool, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """Split scores into normal (negative) and anomalous (positive) pixels.

    Returns ``(neg, pos, region_id, n_regions)``: two fresh float32 arrays, and when
    ``regions`` is true the 0-based id of the 8-connected region of every positive
    pixel (regions never connect across images) and the number of regions.
    """
    n_img, h, w = masks.shape
    n_pos = int(np.count_nonzero(masks))
    n_neg = masks.size - n_pos
    if n_pos == 0:
        raise ValueError(
            f"masks contain no anomalous pixel (all {masks.size} pixels of {n_img} image(s) are 0); "
            f"{what} is undefined without at least one defect"
        )
    if n_neg == 0:
        raise ValueError(
            f"masks contain no normal pixel (all {masks.size} pixels are 1); "
            f"{what} is undefined without normal pixels"
        )
    neg = np.empty(n_neg, dtype=np.float32)
    pos = np.empty(n_pos, dtype=np.float32)
    rid = np.empty(n_pos, dtype=np.int64) if regions else None
    i_neg = i_pos = 0
    n_regions = 0
    for a, b in _chunks(n_img, h * w):
        m = masks[a:b]
        s = maps[a:b]
        p = s[m]
        k = p.size
        pos[i_pos:i_pos + k] = p
        if k == 0:
            neg[i_neg:i_neg + s.size] = s.reshape(-1)
            i_neg += s.size
            continue
        q = s[~m]
        neg[i_neg:i_neg + q.size] = q
        i_neg += q.size
        if regions:
            # Label each defective image inside the bounding box of its mask: labelling
            # whole images (or the stack with a structure that does not connect images)
            # costs time proportional to all pixels, the boxes are usually small.
            j = i_pos
            for mi in m[m.reshape(m.shape[0], -1).any(axis=1)]:
                rows = np.flatnonzero(mi.any(axis=1))
                cols = np.flatnonzero(mi.any(axis=0))
                box = mi[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
                lab, n = ndimage.label(box, structure=_EIGHT)
                ids = lab[box]
                ids += n_regions - 1
                rid[j:j + ids.size] = ids
                j += ids.size
                n_regions += n
        i_pos += k
    return neg, pos, rid, n_regions


def _region_weights(rid: np.ndarray, n_regions: int) -> np.ndarray:
    """Weight 1 / (|region| * n_regions) of each anomalous pixel (weights sum to 1)."""
    sizes = np.bincount(rid, minlength=n_regions).astype(np.float64)
    return 1.0 / (sizes[rid] * n_regions)


def _rank_sum(sorted_ref: np.ndarray, queries: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Sum over queries q (weighted) of #{ref < q} + 0.5 * #{ref == q}."""
    n = sorted_ref.size
    lt = np.searchsorted(sorted_ref, queries, side="left")
    # Only queries equal to some reference value need the right-side search.
    hit = lt < n
    hit[hit] = sorted_ref[lt[hit]] == queries[hit]
    le_minus_lt = np.zeros(queries.size, dtype=np.int64)
    if hit.any():
        le_minus_lt[hit] = np.searchsorted(sorted_ref, queries[hit], side="right") - lt[hit]
    if weights is None:
        return float(lt.sum(dtype=np.float64) + 0.5 * le_minus_lt.sum(dtype=np.float64))
    return float(np.dot(weights, lt) + 0.5 * np.dot(weights, le_minus_lt))


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(pos > neg) + 0.5 P(pos == neg) by sorting both sets (arrays are consumed).

    The smaller set is located in the larger by binary search; sorting the queries
    too keeps the searches cache friendly.
    """
    pos.sort()
    neg.sort()
    if neg.size >= pos.size:
        below = _rank_sum(neg, pos)  # pairs with neg < pos, ties halved
        return below / (float(pos.size) * float(neg.size))
    below = _rank_sum(pos, neg)  # pairs with pos < neg, ties halved
    return 1.0 - below / (float(pos.size) * float(neg.size))


def _group_starts(sorted_a: np.ndarray) -> np.ndarray:
    """First index of every run of equal values in an ascending array."""
    starts = np.empty(1, dtype=np.int64)
    starts[0] = 0
    return np.concatenate([starts, np.flatnonzero(sorted_a[1:] != sorted_a[:-1]) + 1])


def _curve_counts(neg_sorted: np.ndarray, pos_sorted: np.ndarray, pos_cum: np.ndarray):
    """Points of a threshold curve, one per distinct score, thresholds descending.

    ``pos_cum[k]`` is the total weight of the first ``k`` sorted positives (length
    ``len(pos_sorted) + 1``). Returns ``(thresholds, n_neg_ge, pos_ge)``: the number of
    negatives with score >= threshold and the weight of positives with score >=
    threshold. The distinct positive scores are merged into the distinct negative
    scores by one binary search of the (usually far fewer) positives and ``np.insert``;
    no search or sort over the merged set is needed.
    """
    n_neg = neg_sorted.size
    start_n = _group_starts(neg_sorted)  # number of negatives below each distinct value
    dn = neg_sorted[start_n]
    start_p = _group_starts(pos_sorted)
    dp = pos_sorted[start_p]
    pos_lt_dp = pos_cum[start_p]  # positive weight below each distinct positive value
    k = np.searchsorted(dn, dp, side="left")  # distinct negatives below each dp
    eq = np.zeros(dp.size, dtype=bool)
    inside = k < dn.size
    eq[inside] = dn[k[inside]] == dp[inside]
    # Positive weight below each distinct negative value dn[i]: groups j with
    # dp[j] < dn[i], i.e. k[j] + eq[j] <= i.
    group_w = np.diff(np.append(pos_lt_dp, pos_cum[-1]))
    pos_lt_dn = np.cumsum(np.bincount(k + eq, weights=group_w, minlength=dn.size + 1))[: dn.size]
    new = ~eq
    at = k[new]
    thr = np.insert(dn, at, dp[new])
    neg_lt = np.insert(start_n, at, np.append(start_n, n_neg)[at])
    pos_lt = np.insert(pos_lt_dn, at, pos_lt_dp[new])
    return thr[::-1], (n_neg - neg_lt)[::-1], (pos_cum[-1] - pos_lt)[::-1]


# --------------------------------------------------------------------------------------
# A decision at one threshold (Eq. 1)
# --------------------------------------------------------------------------------------
def decision_metrics(labels: Any, scores: Any, threshold: float) -> dict[str, Any]:
    """Eq. (1), ``score >= threshold``, against the ground truth (1 anomalous, 0 normal).

    Returns the counts ``tp``, ``fp``, ``fn``, ``tn`` and three rates: ``precision`` = tp / (tp + fp)
    (of the flagged images, the anomalous share), ``recall`` = tp / (tp + fn) (of the anomalous images,
    the flagged share) and ``false_alarm_rate`` = fp / (fp + tn) (of the normal images, the flagged share).
    A rate whose denominator is 0 is ``nan``. Unlike AUROC, one class alone is allowed.
    """
    y = _check_binary(_to_numpy(labels).ravel(), "labels")
    s = _check_scores(_to_numpy(scores).ravel(), "scores", np.float64)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores must have the same length; got {y.size} and {s.size}")
    t = float(threshold)
    if not math.isfinite(t):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    flagged = s >= t
    tp, fp = int(np.sum(flagged & y)), int(np.sum(flagged & ~y))
    fn, tn = int(np.sum(~flagged & y)), int(np.sum(~flagged & ~y))

    def rate(num: int, den: int) -> float:
        return num / den if den else float("nan")

    return {"threshold": t, "tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": rate(tp, tp + fp),
            "recall": rate(tp, tp + fn), "false_alarm_rate": rate(fp, fp + tn)}


# --------------------------------------------------------------------------------------
# AUROC
# --------------------------------------------------------------------------------------
def image_auroc(labels: Any, scores: Any) -> float:
    """Image-level AUROC (paper Sec. 4.1.3): anomaly detection per image.

    Parameters
    ----------
    labels : array-like of shape (N,)
        1 for an anomalous image, 0 for a good one (bool, int or float).
    scores : array-like of shape (N,)
        Anomaly score per image; higher means more anomalous.

    Returns
    -------
    float
        The probability that a random anomalous image scores higher than a random
        good one, ties counting one half; equal to
        ``sklearn.metrics.roc_auc_score(labels, scores)``.
    """
    y, s = _check_labels_scores(labels, scores)
    return _auc(s[y], s[~y])


def pixel_auroc(masks: Any, maps: Any) -> float:
    """Pixel-level AUROC (paper Sec. 4.1.3): every pixel of every test image is a sample.

    Parameters
    ----------
    masks : array-like of shape (N, H, W) or (N, 1, H, W)
        Ground-truth masks, values in {0, 1}.
    maps : array-like of the same shape
        Anomaly maps; compared as float32.

    Returns
    -------
    float
        Equal to ``roc_auc_score(masks.ravel(), maps.astype(float32).ravel())``.
        Both pixel classes are sorted (float32 ``np.sort``) and the smaller one is
        located in the larger by binary search (memory: one float32 copy of the
        scores plus index arrays the size of the smaller class).
    """
    m, s = _check_pixels(masks, maps)
    neg, pos, _, _ = _split_pixels(m, s, regions=False, what="pixel AUROC")
    return _auc(pos, neg)


def roc_curve(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve (for plots; paper Sec. 4.1.3).

    ``labels`` and ``scores`` may have any (equal) shape; they are flattened, so
    masks and maps give the pixel-level curve.

    Returns
    -------
    fpr, tpr, thresholds : np.ndarray
        One point per distinct score (descending thresholds) after a first point
        (0, 0) with threshold ``inf``; identical to
        ``sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)``
        (float32 scores stay float32 in the comparison, as in scikit-learn;
        ``thresholds`` is float64).
    """
    s_arr = _to_numpy(scores)
    dtype = np.float32 if s_arr.dtype == np.float32 else np.float64
    y, s = _check_labels_scores(labels, s_arr, dtype)
    pos = np.sort(s[y])
    neg = np.sort(s[~y])
    thr, fps, tps = _curve_counts(neg, pos, np.arange(pos.size + 1, dtype=np.float64))
    fpr = np.concatenate([[0.0], fps / neg.size])
    tpr = np.concatenate([[0.0], tps / pos.size])
    thresholds = np.concatenate([[np.inf], thr.astype(np.float64)])
    return fpr, tpr, thresholds


# --------------------------------------------------------------------------------------
# PRO
# --------------------------------------------------------------------------------------
def pro_curve(masks: Any, maps: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-region-overlap curve of the MVTec AD evaluation (paper Sec. 4.1.3).

    Ground-truth regions are the 8-connected components of each mask. At a threshold
    ``t`` a pixel is predicted anomalous when its score is ``>= t``;
    ``FPR(t)`` = predicted-anomalous normal pixels / all normal pixels of all images
    (good images included) and ``PRO(t)`` = mean over all regions of all images of
    the fraction of the region predicted anomalous.

    Returns
    -------
    fprs, pros : np.ndarray (float64)
        One point per distinct score in the test set, thresholds descending, after a
        first point (0, 0); FPR is non-decreasing and ends at 1, PRO is
        non-decreasing and ends at 1 (up to float rounding). Computed with one sort of
        the normal scores, one of the anomalous scores and cumulative sums, no loop
        over thresholds.

    Notes
    -----
    The curve has as many points as there are distinct scores, so for a full-size
    test set it is large (two float64 arrays, plus about 40 bytes per distinct score
    while it is built); :func:`pro_score` does not build it.
    """
    m, s = _check_pixels(masks, maps)
    neg, pos, rid, n_regions = _split_pixels(m, s, regions=True, what="PRO")
    w = _region_weights(rid, n_regions)
    neg.sort()
    order = np.argsort(pos, kind="stable")
    pos = pos[order]
    cum = np.empty(pos.size + 1, dtype=np.float64)
    cum[0] = 0.0
    np.cumsum(w[order], out=cum[1:])
    _, n_neg_ge, pro = _curve_counts(neg, pos, cum)
    fprs = np.concatenate([[0.0], n_neg_ge / float(neg.size)])
    pros = np.concatenate([[0.0], pro])
    return fprs, pros


def pro_score(masks: Any, maps: Any, max_fpr: float = 0.3) -> float:
    """Normalised area under the PRO curve up to ``max_fpr`` (paper Sec. 4.1.3).

    Exactly the MVTec AD definition (see :func:`pro_curve` for the curve): the
    trapezoidal area under the curve from FPR 0 to ``max_fpr``, the curve linearly
    interpolated at ``max_fpr``, divided by ``max_fpr``. 1 is perfect; a random map
    gives about ``max_fpr / 2``.

    Parameters
    ----------
    masks : array-like of shape (N, H, W) or (N, 1, H, W)
        Ground-truth masks of all test images (good ones included), values in {0, 1}.
    maps : array-like of the same shape
        Anomaly maps; compared as float32.
    max_fpr : float in (0, 1]
        Upper FPR limit of the integral (0.3 in the paper and in MVTec AD).

    Notes
    -----
    The area is a weighted Mann-Whitney sum: each normal pixel below the FPR limit
    adds ``(PRO(>score) + PRO(>=score)) / 2 / n_normal``. Only the normal pixels in the
    top ``max_fpr`` fraction are needed: they are found with one partition, sorted
    once, and every anomalous pixel (weight ``1 / (|region| * n_regions)``) is located
    in them by binary search; the tie group that straddles ``max_fpr`` is added as
    the interpolated part of its segment. Memory: one float32 copy of the scores plus
    arrays the size of the anomalous pixels.
    """
    f = _check_max_fpr(max_fpr)
    m, s = _check_pixels(masks, maps)
    neg, pos, rid, n_regions = _split_pixels(m, s, regions=True, what="PRO")
    w = _region_weights(rid, n_regions)
    order = np.argsort(pos)  # sorted queries make the binary searches cache friendly
    pos, w = pos[order], w[order]
    n = neg.size
    r_star = math.floor(f * n) + 1  # first rank (descending) whose FPR exceeds max_fpr
    if r_star > n:
        neg.sort()
        return _rank_sum(neg, pos, w) / n / f
    k = n - r_star
    neg.partition(k)
    t = neg[k]  # score of the normal pixel whose inclusion crosses max_fpr
    upper = neg[k + 1:]  # all >= t (a view: sorted in place)
    upper.sort()
    top = upper[np.searchsorted(upper, t, side="right"):]  # all > t
    n_gt = top.size
    n_ge = upper.size + 1 + int(np.count_nonzero(neg[:k] == t))
    area = _rank_sum(top, pos, w) / n  # segments of the tie groups above t
    # Segment of the tie group at t: from (n_gt/n, PRO(>t)) to (n_ge/n, PRO(>=t)).
    x0, x1 = n_gt / n, n_ge / n
    y0 = float(w[pos > t].sum())
    y1 = y0 + float(w[pos == t].sum())
    xe = max(x0, min(f, x1))
    ye = y0 + (y1 - y0) * (xe - x0) / (x1 - x0)
    area += (xe - x0) * (y0 + ye) / 2.0
    return float(area / f)


# --------------------------------------------------------------------------------------
# Legacy PRO variants (teaching only)
# --------------------------------------------------------------------------------------
def _f32_floor(t: np.ndarray) -> np.ndarray:
    """Largest float32 <= t, so that ``s > t`` equals ``s > _f32_floor(t)`` for float32 s."""
    t32 = t.astype(np.float32)
    up = t32.astype(np.float64) > t
    t32[up] = np.nextafter(t32[up], np.float32(-np.inf))
    return t32


def _grid_curve(masks: np.ndarray, maps: np.ndarray, thresholds: np.ndarray):
    """FPR and PRO at each threshold with the rule "anomalous if score > threshold"."""
    neg, pos, rid, n_regions = _split_pixels(masks, maps, regions=True, what="PRO")
    w = _region_weights(rid, n_regions)
    neg.sort()
    order = np.argsort(pos, kind="stable")
    pos = pos[order]
    cum = np.concatenate([[0.0], np.cumsum(w[order])])
    t32 = _f32_floor(np.asarray(thresholds, dtype=np.float64))
    fpr = (neg.size - np.searchsorted(neg, t32, side="right")) / neg.size
    pro = cum[-1] - cum[np.searchsorted(pos, t32, side="right")]
    return fpr, pro


def _trapezoid_abs(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoid area of a curve whose x is monotone in either direction."""
    if x.size < 2:
        return float("nan")
    return abs(float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0)))


def _rd4ad_one(masks: np.ndarray, maps: np.ndarray, max_fpr: float, num_thresholds: int) -> float:
    lo, hi = float(maps.min()), float(maps.max())
    if hi == lo:
        return float("nan")  # the original grid np.arange(lo, hi, 0) fails
    thresholds = np.arange(lo, hi, (hi - lo) / num_thresholds)
    fpr, pro = _grid_curve(masks, maps, thresholds)
    keep = fpr < max_fpr
    fpr, pro = fpr[keep], pro[keep]
    if fpr.size < 2 or fpr.max() == 0:
        return float("nan")
    return _trapezoid_abs(pro, fpr / fpr.max())


def legacy_pro_rd4ad(
    masks: Any, maps: Any, max_fpr: float = 0.3, num_thresholds: int = 200, per_image: bool = True
) -> float:
    """LEGACY, for teaching only: the PRO of RD4AD's evaluation code. Not the paper's metric.

    Re-implements ``compute_pro`` and its use in ``evaluation`` of
    ``hq-deng/RD4AD``, file ``test.py`` (code derived from it is in many later
    repositories). What it does, and how that differs from :func:`pro_score`:

    * ``per_image=True`` (what RD4AD's ``evaluation`` does): the curve and its area
      are computed for each anomalous image on its own, and the areas are averaged
      over anomalous images. FPR therefore counts only the normal pixels of that one
      image, and good images never contribute false positives (exact: one global
      curve, FPR over the normal pixels of *all* test images). ``per_image=False``
      applies the same function once to the whole test set, as derived code does.
    * ``num_thresholds`` thresholds ``np.arange(min, max, (max - min) / num_thresholds)``
      evenly spaced in score space between the minimum and maximum of the maps (of
      the image, when per image); a pixel is anomalous when its score is strictly
      ``> threshold`` (exact: every distinct score is a threshold, ``>=``).
    * Regions: 8-connected components per image (``skimage.measure.label``), PRO at a
      threshold = mean overlap over the regions (same as exact).
    * Only points with FPR ``< max_fpr`` are kept, no point is interpolated at
      ``max_fpr`` and the curve does not start at (0, 0) (it starts at the largest
      threshold below the maximum score); the kept FPRs are divided by their own
      maximum (so they span [., 1] whatever the true upper FPR was) and the
      trapezoid area is not divided by ``max_fpr``.

    Returns NaN where the original code fails or gives NaN: a constant map, fewer
    than two kept points, all kept FPRs zero, or (per image) an image without
    normal pixels.
    """
    f = _check_max_fpr(max_fpr)
    if int(num_thresholds) < 1:
        raise ValueError(f"num_thresholds must be a positive integer; got {num_thresholds!r}")
    m, s = _check_pixels(masks, maps)
    if not per_image:
        return _rd4ad_one(m, s, f, int(num_thresholds))
    has_defect = m.reshape(m.shape[0], -1).any(axis=1)
    if not has_defect.any():
        raise ValueError(
            f"masks contain no anomalous pixel (all {m.size} pixels of {m.shape[0]} image(s) are 0); "
            f"PRO is undefined without at least one defect"
        )
    areas = []
    for i in np.flatnonzero(has_defect):
        mi, si = m[i:i + 1], s[i:i + 1]
        if mi.all():
            areas.append(float("nan"))  # FPR = 0 / 0 in the original code
            continue
        areas.append(_rd4ad_one(mi, si, f, int(num_thresholds)))
    return float(np.mean(areas))


def legacy_pro_stpm(masks: Any, maps: Any, max_fpr: float = 0.3, num_thresholds: int = 4000) -> float:
    """LEGACY, for teaching only: the PRO of STPM's evaluation code. Not the paper's metric.

    Re-implements ``pro`` with ``rescale`` in ``gdwang08/STFPM`` (the official STPM
    code), file ``evaluate.py``, which took it from DFR (``YoungGod/DFR``,
    ``anoseg_dfr.py``); many later repositories copy the same pair as
    ``cal_pro_metric``/``rescale`` with 200 or 2000 steps (pass ``num_thresholds``).
    What it does, and how that differs from :func:`pro_score`:

    * ``num_thresholds`` thresholds ``max - k * (max - min) / num_thresholds`` for
      ``k = 0 .. num_thresholds - 1``, evenly spaced in score space, from the maximum
      score of all maps down to one step above the minimum; anomalous when score
      ``> threshold`` (exact: every distinct score, ``>=``).
    * FPR over all normal pixels of all images and PRO = mean over all 8-connected
      regions of all images, as in the exact metric.
    * Only points with FPR ``<= max_fpr`` are kept and nothing is interpolated at
      ``max_fpr``; then **both** FPR and PRO are min-max rescaled to [0, 1] over the
      kept points, and the trapezoid area is taken. Rescaling PRO divides it by its
      value at the last kept point, so the number rises towards 1 for any map whose
      PRO keeps growing below ``max_fpr`` (exact: FPR divided by ``max_fpr`` only,
      PRO untouched).

    Returns NaN where the original code gives NaN (a constant FPR or PRO over the
    kept points, e.g. a constant map).
    """
    f = _check_max_fpr(max_fpr)
    if int(num_thresholds) < 1:
        raise ValueError(f"num_thresholds must be a positive integer; got {num_thresholds!r}")
    m, s = _check_pixels(masks, maps)
    lo, hi = float(s.min()), float(s.max())
    delta = (hi - lo) / int(num_thresholds)
    thresholds = hi - np.arange(int(num_thresholds)) * delta
    fpr, pro = _grid_curve(m, s, thresholds)
    keep = fpr <= f
    fpr, pro = fpr[keep], pro[keep]
    if fpr.size < 2 or fpr.max() == fpr.min() or pro.max() == pro.min():
        return float("nan")
    fpr = (fpr - fpr.min()) / (fpr.max() - fpr.min())
    pro = (pro - pro.min()) / (pro.max() - pro.min())
    return _trapezoid_abs(pro, fpr)


def pro_variants(masks: Any, maps: Any, max_fpr: float = 0.3) -> dict[str, float]:
    """The exact PRO and the legacy variants on the same data (teaching/benchmarks).

    Returns ``{"exact": pro_score, "rd4ad": legacy_pro_rd4ad (per image),
    "rd4ad_global": legacy_pro_rd4ad(per_image=False), "stpm": legacy_pro_stpm}``.
    """
    m, s = _check_pixels(masks, maps)
    return {
        "exact": pro_score(m, s, max_fpr=max_fpr),
        "rd4ad": legacy_pro_rd4ad(m, s, max_fpr=max_fpr),
        "rd4ad_global": legacy_pro_rd4ad(m, s, max_fpr=max_fpr, per_image=False),
        "stpm": legacy_pro_stpm(m, s, max_fpr=max_fpr),
    }
