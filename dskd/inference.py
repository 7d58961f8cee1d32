"""Anomaly inference (Eq. 8 to 10, Algorithm 2): maps, Gaussian filter, scores and thresholds."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .losses import distillation_map

#: the paper's M_1, M_2, M_3 = conv2_x, conv3_x, conv4_x
ALL_LAYERS = (1, 2, 3)


@dataclass(frozen=True)
class InferenceSettings:
    """How Algorithm 2 turns pyramids into maps: the Gaussian's ``sigma`` (Eq. 9), the ``layers`` summed
    (Eq. 8), ``lam`` and ``normalization`` of the distillation map (Eq. 3-6). Defaults are the paper's."""

    sigma: float = 4.0
    layers: tuple[int, ...] = ALL_LAYERS
    lam: float = 0.1
    normalization: str = "unit"
    #: which two pyramids are compared: None = the structure's own (Algorithm 2: T vs S_d for DS), or a pair of
    #: "teacher" / "encoder" / "decoder" (Table 7 read as pairs inside one trained DS model)
    pair: Optional[tuple[str, str]] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", _check_layers(self.layers))
        if self.pair is not None:
            pair = tuple(self.pair)
            names = ("teacher", "encoder", "decoder")
            if len(pair) != 2 or any(p not in names for p in pair) or pair[0] == pair[1]:
                raise ValueError(f"pair must be two different names of {names}, got {self.pair!r}")
            object.__setattr__(self, "pair", pair)
        if self.sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {self.sigma}")

    @classmethod
    def of(cls, cfg: Any) -> "InferenceSettings":
        """The settings a :class:`~dskd.config.TrainConfig` (or anything with these four fields) names."""
        return cls(sigma=cfg.sigma, layers=tuple(cfg.layers), lam=cfg.lam, normalization=cfg.normalization)

    def replace(self, **changes: Any) -> "InferenceSettings":
        return dataclasses.replace(self, **changes)

    def with_overrides(self, **fields: Any) -> "InferenceSettings":
        """These settings with the fields given (not ``None``) replaced."""
        changes = {k: v for k, v in fields.items() if v is not None}
        return dataclasses.replace(self, **changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        out = {"sigma": self.sigma, "layers": list(self.layers), "lam": self.lam, "normalization": self.normalization}
        if self.pair is not None:  # only when set: records written before the field existed stay comparable
            out["pair"] = list(self.pair)
        return out


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, dtype: torch.dtype = torch.float32) -> Tensor:
    """The 1-D kernel ``scipy.ndimage.gaussian_filter`` uses: radius int(truncate * sigma + 0.5)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def _symmetric_index(n: int, radius: int, device: torch.device) -> Tensor:
    # scipy's default mode "reflect" (d c b a | a b c d | d c b a), valid for any radius.
    idx = torch.arange(-radius, n + radius, device=device) % (2 * n)
    return torch.where(idx >= n, 2 * n - 1 - idx, idx)


def gaussian_blur(maps: Tensor, sigma: float = 4.0, truncate: float = 4.0) -> Tensor:
    """Eq. (9): separable Gaussian filter on a batch of maps (B, H, W), equal to
    ``scipy.ndimage.gaussian_filter(m, sigma, mode="reflect", truncate=4)`` on each map.

    ``sigma=0`` returns the maps unchanged.
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return maps
    if maps.dim() != 3:
        raise ValueError(f"expected maps of shape (B, H, W), got {tuple(maps.shape)}")
    k = gaussian_kernel1d(sigma, truncate, maps.dtype).to(maps.device)
    r = (k.numel() - 1) // 2
    b, h, w = maps.shape
    x = maps.index_select(2, _symmetric_index(w, r, maps.device))
    x = F.conv1d(x.reshape(b * h, 1, -1), k.view(1, 1, -1)).reshape(b, h, w)
    x = x.transpose(1, 2).index_select(2, _symmetric_index(h, r, maps.device))
    x = F.conv1d(x.reshape(b * w, 1, -1), k.view(1, 1, -1)).reshape(b, w, h)
    return x.transpose(1, 2).contiguous()


def _check_layers(layers: Sequence[int]) -> tuple[int, ...]:
    layers = tuple(layers)
    if not layers or any(k not in ALL_LAYERS for k in layers) or len(set(layers)) != len(layers):
        raise ValueError(f"layers must be a non-empty subset of {ALL_LAYERS} (the paper's M_k), got {layers}")
    return layers


def anomaly_map(
    reference: Sequence[Tensor],
    student: Sequence[Tensor],
    image_size: tuple[int, int] | int,
    layers: Sequence[int] = ALL_LAYERS,
    sigma: float = 4.0,
    lam: float = 0.1,
    normalization: str = "unit",
) -> Tensor:
    """Eq. (8) and (9): sum of the per-layer maps (Eq. 6) upsampled bilinearly to the input size,
    then the Gaussian filter. Returns (B, H, W). ``layers`` picks M_k (Table 9)."""
    layers = _check_layers(layers)
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    total = None
    for k in layers:
        m = distillation_map(reference[k - 1], student[k - 1], lam, normalization).unsqueeze(1)
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)[:, 0]
        total = m if total is None else total + m
    return gaussian_blur(total, sigma)


def anomaly_score(maps: Tensor) -> Tensor:
    """Eq. (10): the image score is the maximum of its map. (B, H, W) -> (B,)."""
    return maps.flatten(1).amax(dim=1)


class Thresholds(NamedTuple):
    """A decision rule ``score >= threshold`` (Eq. 1) and how it was chosen."""

    threshold: float
    rule: str


def minmax_normalize(values: Tensor | np.ndarray, low: float, high: float) -> Tensor | np.ndarray:
    """Rescale to [0, 1] with the given min and max (the paper's normalisation before 0.5)."""
    if not high > low:
        raise ValueError(f"need high > low for min-max normalisation, got low={low}, high={high}")
    return (values - low) / (high - low)


#: how the paper's Eq. (1) threshold is marked wherever it is reported
USES_TEST_DATA = "uses the test set's scores, anomalies included"


def paper_threshold(scores: Tensor | np.ndarray) -> Thresholds:
    """The paper's rule (Sec. 1, Algorithm 2): min-max normalise the scores of the evaluated set and
    call an image anomalous at >= 0.5. Returned in raw score units: min + 0.5 (max - min).

    It needs the whole test set's scores, including anomalies, so it is not usable on a live line: the
    rule says so (``USES_TEST_DATA``). A threshold that travels with a model is :class:`Calibration`.
    """
    s = torch.as_tensor(scores, dtype=torch.float64)
    low, high = float(s.min()), float(s.max())
    return Thresholds(low + 0.5 * (high - low), f"paper: min-max normalised test scores >= 0.5 ({USES_TEST_DATA})")


def check_false_alarm_rate(rate: Any) -> float:
    """``rate`` as a float in [0, 1), or a one-line ``ValueError`` saying what is expected."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) \
            or not 0.0 <= rate < 1.0:
        raise ValueError(f"false-alarm rate must be a number in [0, 1) (0.01: 1 % of normal images flagged), "
                         f"got {rate!r}")
    return float(rate)


def calibrated_threshold(normal_scores: Tensor | np.ndarray, max_false_alarm_rate: float = 0.01) -> Thresholds:
    """A threshold from held-out *normal* images only: the (1 - rate) quantile of their scores,
    so about ``max_false_alarm_rate`` of normal images are flagged. Needs no anomalous example."""
    s = torch.as_tensor(normal_scores, dtype=torch.float64).flatten()
    if s.numel() == 0:
        raise ValueError("calibrated_threshold needs at least one held-out normal score")
    if not 0.0 <= max_false_alarm_rate < 1.0:
        raise ValueError(f"max_false_alarm_rate must be in [0, 1), got {max_false_alarm_rate}")
    q = float(torch.quantile(s, 1.0 - max_false_alarm_rate))
    return Thresholds(q, f"calibrated: {100 * (1 - max_false_alarm_rate):g}% quantile of {s.numel()} normal scores")


@dataclass(frozen=True)
class Calibration:
    """The decision rule a checkpoint carries: Eq. (1) with a threshold calibrated on normal images that
    training held out (``TrainConfig.holdout_fraction``), never on the test split.

    ``threshold`` is the (1 - ``false_alarm_rate``) quantile of ``scores`` (:func:`calibrated_threshold`),
    the image scores (Eq. 10) of the ``n_images`` held-out normal images; keeping the scores lets
    :meth:`at_rate` choose another rate without the images. With n images a rate below about 1/(n + 1)
    cannot be resolved: the threshold then sits near the largest held-out score (:attr:`note` says so).
    """

    threshold: float
    rule: str
    false_alarm_rate: float
    scores: tuple[float, ...]
    #: where the scores come from, e.g. "10 of 96 normal training images held out (seed 0)"
    source: str = ""

    @property
    def n_images(self) -> int:
        return len(self.scores)

    @classmethod
    def from_scores(cls, scores: Sequence[float] | Tensor | np.ndarray, false_alarm_rate: float = 0.01,
                    source: str = "") -> "Calibration":
        """Calibrate on held-out normal scores for ``false_alarm_rate`` (in [0, 1))."""
        rate = check_false_alarm_rate(false_alarm_rate)
        values = tuple(float(v) for v in torch.as_tensor(scores, dtype=torch.float64).flatten().tolist())
        if not values or not all(math.isfinite(v) for v in values):
            raise ValueError(f"calibration needs at least one finite held-out normal score, got {len(values)} "
                             f"score(s)")
        found = calibrated_threshold(torch.tensor(values, dtype=torch.float64), rate)
        return cls(found.threshold, found.rule + (f", {source}" if source else ""), rate, values, source)

    def at_rate(self, false_alarm_rate: float) -> "Calibration":
        """The same held-out scores calibrated for another false-alarm rate."""
        return Calibration.from_scores(self.scores, false_alarm_rate, self.source)

    @property
    def note(self) -> str:
        """Empty, or why the stated rate is finer than the held-out images can measure."""
        n = self.n_images
        if self.false_alarm_rate * (n + 1) >= 1.0:
            return ""
        return (f"{n} held-out images cannot resolve a {self.false_alarm_rate:.2%} false-alarm rate: the threshold "
                f"lies near their largest score, and about 1/(n + 1) = {1 / (n + 1):.1%} of new normal images may "
                f"still score above it; hold out more images (at least {math.ceil(1 / self.false_alarm_rate)})")

    def thresholds(self) -> Thresholds:
        return Thresholds(self.threshold, self.rule)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (a checkpoint is read with ``weights_only=True``)."""
        return {"threshold": float(self.threshold), "rule": self.rule, "false_alarm_rate": float(self.false_alarm_rate),
                "n_images": self.n_images, "scores": [float(s) for s in self.scores], "source": self.source}

    @classmethod
    def from_dict(cls, d: Any) -> "Calibration":
        """Read :meth:`to_dict`'s output back; ``ValueError`` (one line) for anything else."""
        try:
            scores = tuple(float(s) for s in d["scores"])
            made = cls(float(d["threshold"]), str(d["rule"]), check_false_alarm_rate(float(d["false_alarm_rate"])),
                       scores, str(d.get("source", "")))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a calibration record (threshold, rule, false_alarm_rate, scores): "
                             f"{type(err).__name__}: {err}") from None
        if not scores or not math.isfinite(made.threshold):
            raise ValueError("not a calibration record: no held-out scores or a non-finite threshold")
        return made

