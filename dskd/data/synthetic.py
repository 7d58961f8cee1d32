"""Procedurally generated anomaly-detection data: the embedded default data set.

:class:`SyntheticDefects` needs no files and no network. It draws images of one
*category* -- four textures and two objects -- and, for the test split, paints one
of five defect types with its exact pixel mask:

========== ===================================================================
defect     what is painted (mask = the pixels that were changed)
========== ===================================================================
scratch    a thin, slightly curved line, bright on dark surfaces, dark on light
hole       a small dark disc
stain      a blurry, irregular blob of a foreign colour (soft edge)
missing    objects: a chunk of the object replaced by the background;
           textures: a patch where the pattern is absent (flat mean colour;
           fabric: the darker backing shows through)
color      an irregular region whose hue is shifted to a saturated foreign colour
========== ===================================================================

Normal images vary (pattern phase, a few degrees of orientation, period, object
position/size, colour, illumination gradient, sensor noise), so a model has to learn
the distribution of normal images, not one image.

Every item is drawn from its own random streams seeded by
``(seed, category, split, index)``: item ``i`` is the same whatever the access order,
in every process and DataLoader worker. Random parameters are drawn in image-size
independent units, so changing ``image_size`` keeps the geometry; only the per-pixel
noise differs. Everything is vectorised numpy: 200 images of 64 x 64 take well
under a second.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch.utils.data import Dataset

from .transforms import to_normalized_tensor, to_tensor01

__all__ = [
    "SYNTHETIC_CATEGORIES",
    "SYNTHETIC_TEXTURES",
    "SYNTHETIC_OBJECTS",
    "SYNTHETIC_DEFECT_TYPES",
    "SyntheticDefects",
]

SYNTHETIC_TEXTURES: tuple[str, ...] = ("stripes", "grid", "dots", "fabric")
SYNTHETIC_OBJECTS: tuple[str, ...] = ("disc", "ring")
#: Valid ``category`` values of :class:`SyntheticDefects` (textures, then objects).
SYNTHETIC_CATEGORIES: tuple[str, ...] = SYNTHETIC_TEXTURES + SYNTHETIC_OBJECTS
#: Defect types, sorted (the same for every category).
SYNTHETIC_DEFECT_TYPES: tuple[str, ...] = ("color", "hole", "missing", "scratch", "stain")

_SPLITS = ("train", "test")
_SALT = 0xD5CD  # keeps these streams apart from any other use of the same seed

# Foreign colours for stains (dirt, rust, oil, ink, mould, chalk) and colour defects.
_STAIN_COLOURS = np.array(
    [
        [0.32, 0.19, 0.08],
        [0.66, 0.32, 0.10],
        [0.10, 0.10, 0.09],
        [0.16, 0.22, 0.60],
        [0.35, 0.52, 0.18],
        [0.95, 0.93, 0.84],
    ],
    dtype=np.float32,
)
_HUE_COLOURS = np.array(
    [
        [0.95, 0.14, 0.14],
        [0.95, 0.90, 0.14],
        [0.14, 0.90, 0.14],
        [0.14, 0.90, 0.95],
        [0.14, 0.20, 0.95],
        [0.95, 0.14, 0.90],
    ],
    dtype=np.float32,
)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


# --------------------------------------------------------------------------- helpers
def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _coverage(signed_dist: np.ndarray, S: int) -> np.ndarray:
    """Antialiased coverage (1 inside, 0 outside) of a shape given its signed distance
    (negative inside) in image units: a linear ramp one pixel wide."""
    return np.clip(0.5 - signed_dist * S, 0.0, 1.0)


def _rotate(x: np.ndarray, y: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates rotated about the image centre."""
    c, s = math.cos(angle), math.sin(angle)
    xc, yc = x - 0.5, y - 0.5
    return xc * c + yc * s, -xc * s + yc * c


def _jitter_colour(rng: np.random.Generator, rgb, sd: float = 0.012) -> np.ndarray:
    """Small colour jitter: a shared brightness change plus a smaller per-channel tint."""
    shift = rng.normal(0.0, sd) + rng.normal(0.0, sd / 2, 3)
    return np.clip(np.asarray(rgb, np.float32) + shift.astype(np.float32), 0.0, 1.0)


def _pick_far(rng: np.random.Generator, palette: np.ndarray, region: np.ndarray, min_dist: float) -> np.ndarray:
    """A palette colour far from (nearly) every pixel of ``region`` (N, 3): its 10th
    percentile RGB distance to the region is at least ``min_dist``; else the farthest."""
    region = region.reshape(-1, 3)
    if region.shape[0] > 512:
        region = region[:: region.shape[0] // 512 + 1]
    d = np.linalg.norm(palette[:, None, :] - region[None, :, :], axis=2)  # (P, N)
    d = np.quantile(d, 0.1, axis=1)
    ok = np.flatnonzero(d >= min_dist)
    if ok.size == 0:
        return palette[int(np.argmax(d))]
    return palette[int(ok[rng.integers(ok.size)])]


def _blob(x, y, cx, cy, rx, ry, angle, phases, amps):
    """Normalised radius of an irregular ellipse: < 1 inside. ``phases``/``amps`` modulate
    the outline with 3- and 5-fold wobbles."""
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = x - cx, y - cy
    u = (dx * c + dy * s) / rx
    v = (-dx * s + dy * c) / ry
    theta = np.arctan2(v, u)
    wobble = 1.0 + amps[0] * np.sin(3 * theta + phases[0]) + amps[1] * np.sin(5 * theta + phases[1])
    return np.sqrt(u * u + v * v) / wobble


@dataclass
class _Scene:
    img: np.ndarray  # (S, S, 3) noiseless normal image
    plain: np.ndarray  # (S, S, 3) what a "missing" defect reveals
    obj: Optional[np.ndarray]  # (S, S) object coverage, None for textures
    centre: tuple[float, float] = (0.5, 0.5)
    r_out: float = 0.0
    r_in: float = 0.0
    kind: str = "texture"


# --------------------------------------------------------------------- normal images
def _illumination(rng, x, y) -> np.ndarray:
    a = rng.uniform(0.0, 0.08)
    b = rng.uniform(0.0, 2 * math.pi)
    gain = rng.uniform(0.95, 1.05)
    return (gain * (1.0 + a * ((x - 0.5) * math.cos(b) + (y - 0.5) * math.sin(b))))[..., None]


def _texture(category: str, rng: np.random.Generator, x, y, S: int) -> _Scene:
    px = 1.0 / S
    if category == "stripes":
        theta = math.radians(20.0 + rng.uniform(-4.0, 4.0))
        f = 6.5 * (1.0 + rng.uniform(-0.04, 0.04))
        u, _ = _rotate(x, y, theta)
        t = _smoothstep(-0.35, 0.35, np.sin(2 * math.pi * f * u + rng.uniform(0, 2 * math.pi)))
        c0 = _jitter_colour(rng, (0.86, 0.80, 0.64))
        c1 = _jitter_colour(rng, (0.22, 0.32, 0.58))
        img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    elif category == "grid":
        theta = math.radians(rng.uniform(-3.0, 3.0))
        f = 7.0 * (1.0 + rng.uniform(-0.03, 0.03))
        u, v = _rotate(x, y, theta)
        hw = max(0.13 / f, 0.6 * px)

        def line(w, phase):
            fr = np.mod(w * f + phase, 1.0)
            return _coverage(np.minimum(fr, 1.0 - fr) / f - hw, S)

        t = np.maximum(line(u, rng.uniform()), line(v, rng.uniform()))
        bg = _jitter_colour(rng, (0.62, 0.66, 0.60))
        fg = _jitter_colour(rng, (0.20, 0.23, 0.21))
        img = bg * (1 - t[..., None]) + fg * t[..., None]
    elif category == "dots":
        theta = math.radians(rng.uniform(-4.0, 4.0))
        f = 6.0 * (1.0 + rng.uniform(-0.03, 0.03))
        r = 0.27 / f * (1.0 + rng.uniform(-0.05, 0.05))
        u, v = _rotate(x, y, theta)
        du = np.mod(u * f + rng.uniform(), 1.0) - 0.5
        dv = np.mod(v * f + rng.uniform(), 1.0) - 0.5
        t = _coverage(np.hypot(du, dv) / f - r, S)
        bg = _jitter_colour(rng, (0.90, 0.86, 0.78))
        fg = _jitter_colour(rng, (0.72, 0.24, 0.20))
        img = bg * (1 - t[..., None]) + fg * t[..., None]
    elif category == "fabric":
        theta = math.radians(rng.uniform(-3.0, 3.0))
        f = 10.0 * (1.0 + rng.uniform(-0.03, 0.03))
        u, v = _rotate(x, y, theta)
        gu, gv = u * f + rng.uniform(), v * f + rng.uniform()
        over = (np.floor(gu) + np.floor(gv)) % 2 == 0  # warp on top (plain weave)
        pu, pv = np.sin(math.pi * np.mod(gu, 1.0)), np.sin(math.pi * np.mod(gv, 1.0))
        prof = np.where(over, pu, pv) ** 0.7
        # fibres: noise smeared along the thread on top
        fib_u = gaussian_filter(rng.normal(size=(S, S)).astype(np.float32), sigma=(2.0, 0.6))
        fib_v = gaussian_filter(rng.normal(size=(S, S)).astype(np.float32), sigma=(0.6, 2.0))
        fib = np.where(over, fib_u, fib_v)
        shade = 0.45 + 0.55 * prof + 0.12 * fib
        warp = _jitter_colour(rng, (0.62, 0.46, 0.30))
        weft = _jitter_colour(rng, (0.70, 0.58, 0.40))
        img = np.where(over[..., None], warp, weft) * shade[..., None]
    else:  # pragma: no cover - guarded by the Dataset
        raise ValueError(category)
    img = img.astype(np.float32) * _illumination(rng, x, y)
    # what shows where the pattern is missing: its mean colour; for fabric the darker
    # backing seen through a worn-through patch
    mean = img.reshape(-1, 3).mean(axis=0) * (0.55 if category == "fabric" else 1.0)
    plain = np.broadcast_to(mean, img.shape).astype(np.float32)
    return _Scene(img=img, plain=plain, obj=None)


def _object(category: str, rng: np.random.Generator, x, y, S: int) -> _Scene:
    cx, cy = 0.5 + rng.uniform(-0.03, 0.03, 2)
    dx, dy = x - cx, y - cy
    r = np.hypot(dx, dy)
    ang = np.arctan2(dy, dx)
    light = math.radians(225.0) + rng.uniform(-0.3, 0.3)  # from the top left
    illum = _illumination(rng, x, y)
    if category == "disc":
        R = 0.30 * (1.0 + rng.uniform(-0.03, 0.03))
        cov = _coverage(r - R, S)
        col = _jitter_colour(rng, (0.84, 0.62, 0.20))
        shade = 1.0 + 0.22 * (dx * math.cos(light) + dy * math.sin(light)) / R
        groove_w = max(0.012, 0.8 / S)
        shade = shade * (1.0 - 0.35 * np.exp(-(((r - 0.62 * R) / groove_w) ** 2)))
        shade = shade * (1.0 + 0.06 * (1.0 - (r / R) ** 2))  # slight dome
        fg = col * shade[..., None]
        bg = _jitter_colour(rng, (0.16, 0.16, 0.18), 0.01)
        r_in, r_out = 0.0, R
    elif category == "ring":
        Ro = 0.36 * (1.0 + rng.uniform(-0.03, 0.03))
        Ri = 0.19 * (1.0 + rng.uniform(-0.03, 0.03))
        cov = _coverage(r - Ro, S) * _coverage(Ri - r, S)
        col = _jitter_colour(rng, (0.52, 0.55, 0.60))
        shade = 1.0 + 0.22 * np.cos(ang - light)
        shade = shade * (1.0 + 0.05 * np.sin(48 * ang + rng.uniform(0, 2 * math.pi)))  # machining marks
        fg = col * shade[..., None]
        bg = _jitter_colour(rng, (0.82, 0.80, 0.75), 0.01)
        r_in, r_out = Ri, Ro
    else:  # pragma: no cover - guarded by the Dataset
        raise ValueError(category)
    plain = (np.broadcast_to(bg, fg.shape) * illum).astype(np.float32)
    fg = (fg * illum).astype(np.float32)
    img = plain * (1 - cov[..., None]) + fg * cov[..., None]
    return _Scene(
        img=img.astype(np.float32),
        plain=plain,
        obj=cov.astype(np.float32),
        centre=(float(cx), float(cy)),
        r_out=float(r_out),
        r_in=float(r_in),
        kind="object",
    )


# --------------------------------------------------------------------------- defects
def _defect_centre(scene: _Scene, rng: np.random.Generator) -> tuple[float, float]:
    if scene.kind == "texture":
        cx, cy = rng.uniform(0.22, 0.78, 2)
        return float(cx), float(cy)
    a = rng.uniform(0, 2 * math.pi)
    if scene.r_in > 0:  # ring: on the band
        rad = 0.5 * (scene.r_in + scene.r_out) + rng.uniform(-0.02, 0.02)
    else:
        rad = scene.r_out * 0.55 * math.sqrt(rng.uniform())
    return scene.centre[0] + rad * math.cos(a), scene.centre[1] + rad * math.sin(a)


def _apply_defect(defect: str, scene: _Scene, rng: np.random.Generator, x, y, S: int):
    """Return (defective image, bool mask). Pixels outside ``mask`` are unchanged, except
    for the antialiased one-pixel rim of an object where a chunk is removed/recoloured."""
    img = scene.img.copy()
    on_obj = scene.obj if scene.obj is not None else np.ones((S, S), np.float32)
    solid = on_obj > 0.5
    if defect == "hole":
        cx, cy = _defect_centre(scene, rng)
        rh = rng.uniform(0.055, 0.08)
        d = np.hypot(x - cx, y - cy)
        mask = (d < rh) & solid
        fill = np.array([0.045, 0.038, 0.032], np.float32) * (1.0 + 1.2 * (d / rh) ** 2)[..., None]
        img[mask] = fill[mask]
    elif defect == "scratch":
        n = 64
        t = np.linspace(0.0, 1.0, n, dtype=np.float32)
        if scene.kind == "object" and scene.r_in > 0:  # ring: an arc along the band
            a0 = rng.uniform(0, 2 * math.pi)
            span = rng.uniform(0.9, 1.3) * rng.choice([-1.0, 1.0])
            rad = 0.5 * (scene.r_in + scene.r_out) + rng.uniform(-0.03, 0.03) + rng.uniform(-0.03, 0.03) * (t - 0.5)
            px_ = scene.centre[0] + rad * np.cos(a0 + span * t)
            py_ = scene.centre[1] + rad * np.sin(a0 + span * t)
        else:
            cx, cy = _defect_centre(scene, rng)
            L = rng.uniform(0.35, 0.5) if scene.kind == "texture" else rng.uniform(0.8, 1.1) * scene.r_out
            a = rng.uniform(0, math.pi)
            ux, uy = math.cos(a), math.sin(a)
            bend = rng.uniform(-0.08, 0.08)
            s = (t - 0.5) * L
            px_ = cx + s * ux - 4 * bend * t * (1 - t) * uy
            py_ = cy + s * uy + 4 * bend * t * (1 - t) * ux
        w = max(2.0 / S, 0.025)
        pts = np.stack([px_, py_], 1).astype(np.float32)  # (n, 2)
        d2 = (x.reshape(1, -1) - pts[:, :1]) ** 2 + (y.reshape(1, -1) - pts[:, 1:]) ** 2
        d = np.sqrt(d2.min(axis=0)).reshape(S, S)
        mask = (d < w / 2) & solid
        region = scene.img[mask] if mask.any() else scene.img.reshape(-1, 3)
        lum = float(region.mean(axis=0) @ _LUMA)
        col = np.array([0.97, 0.96, 0.92] if lum < 0.5 else [0.06, 0.05, 0.05], np.float32)
        img[mask] = col
    elif defect in ("stain", "color"):
        cx, cy = _defect_centre(scene, rng)
        lo, hi = (0.08, 0.12) if defect == "stain" else (0.085, 0.12)
        if scene.r_in > 0:
            lo, hi = lo * 0.9, hi * 0.9
        rx, ry = rng.uniform(lo, hi, 2)
        dn = _blob(x, y, cx, cy, rx, ry, rng.uniform(0, math.pi), rng.uniform(0, 2 * math.pi, 2), rng.uniform(0.05, 0.15, 2))
        inside = dn < 1.0
        mask = inside & solid
        region = scene.img[mask] if mask.any() else scene.img.reshape(-1, 3)
        ref = region.mean(axis=0)
        if defect == "stain":
            col = _pick_far(rng, _STAIN_COLOURS, region, 0.4)
            alpha = 0.85 * _smoothstep(0.0, 0.45, 1.0 - dn) * inside * on_obj
            img = img * (1 - alpha[..., None]) + col * alpha[..., None]
        else:
            target = _pick_far(rng, _HUE_COLOURS, region, 0.5)
            lum = scene.img @ _LUMA
            lum_ref = float(ref @ _LUMA)
            recol = np.clip(0.15 * scene.img + 0.85 * target * (0.75 + 1.2 * (lum - lum_ref))[..., None], 0, 1)
            wgt = (inside * on_obj)[..., None]
            img = img * (1 - wgt) + recol * wgt
    elif defect == "missing":
        if scene.kind == "texture":
            cx, cy = _defect_centre(scene, rng)
            hx, hy = rng.uniform(0.08, 0.11, 2)
            u, v = _rotate(x - cx + 0.5, y - cy + 0.5, rng.uniform(0, math.pi / 2))
            mask = (np.abs(u) < hx) & (np.abs(v) < hy)
            img[mask] = scene.plain[mask]
        else:
            cx0, cy0 = scene.centre
            a0 = rng.uniform(0, 2 * math.pi)
            if scene.r_in > 0:  # ring: a sector of the band
                half = math.radians(rng.uniform(17.0, 25.0))
                ang = np.arctan2(y - cy0, x - cx0)
                cut = np.abs(np.angle(np.exp(1j * (ang - a0)))) < half
            else:  # disc: a bite out of the rim
                rc = rng.uniform(0.12, 0.16)
                bx, by = cx0 + scene.r_out * math.cos(a0), cy0 + scene.r_out * math.sin(a0)
                cut = np.hypot(x - bx, y - by) < rc
            mask = cut & solid
            removed = cut & (on_obj > 0)
            img[removed] = scene.plain[removed]
    else:  # pragma: no cover
        raise ValueError(defect)
    return img.astype(np.float32), mask


# --------------------------------------------------------------------------- dataset
class SyntheticDefects(Dataset):
    """Procedural textures/objects with painted defects and exact masks (no files).

    Args:
        category: one of :data:`SYNTHETIC_CATEGORIES`.
        split: ``"train"`` (normal images only) or ``"test"`` (every third item normal,
            the others cycle through :data:`SYNTHETIC_DEFECT_TYPES`).
        image_size: side of the square images.
        n_train, n_test: number of items in each split.
        seed: data set seed; the same seed gives identical tensors.
        cache: keep generated items in memory (per process).

    Items are dicts ``{"image", "mask", "label", "defect_type", "path"}`` as for
    every data set in :mod:`dskd.data`; ``path`` is ``"synthetic://<category>/<split>/<index>"``.
    """

    def __init__(
        self,
        category: str = "stripes",
        split: str = "train",
        image_size: int = 64,
        n_train: int = 120,
        n_test: int = 60,
        seed: int = 0,
        cache: bool = True,
    ) -> None:
        if category not in SYNTHETIC_CATEGORIES:
            raise ValueError(
                f"unknown synthetic category {category!r}; valid categories: {', '.join(SYNTHETIC_CATEGORIES)}"
            )
        if split not in _SPLITS:
            raise ValueError(f"unknown split {split!r} for SyntheticDefects; valid splits: {', '.join(_SPLITS)}")
        if not isinstance(image_size, (int, np.integer)) or image_size < 8:
            raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        n = n_train if split == "train" else n_test
        if n < 1:
            raise ValueError(f"n_{split} must be >= 1, got {n}")
        self.category = category
        self.split = split
        self.image_size = int(image_size)
        self.n_train = int(n_train)
        self.n_test = int(n_test)
        self.seed = int(seed)
        self.name = f"synthetic/{category}"
        self.defect_types: list[str] = list(SYNTHETIC_DEFECT_TYPES)
        self._n = int(n)
        self._cache_on = cache
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        S = self.image_size
        g = (np.arange(S, dtype=np.float32) + 0.5) / S
        self._y, self._x = np.meshgrid(g, g, indexing="ij")

    # -- bookkeeping that never renders
    def __len__(self) -> int:
        return self._n

    def defect_type_of(self, index: int) -> str:
        index = self._check_index(index)
        if self.split == "train" or index % 3 == 0:
            return "good"
        k = index - index // 3 - 1  # 0, 1, 2, ... over the defective items
        return SYNTHETIC_DEFECT_TYPES[k % len(SYNTHETIC_DEFECT_TYPES)]

    def labels(self) -> list[int]:
        return [0 if self.defect_type_of(i) == "good" else 1 for i in range(self._n)]

    def defect_types_list(self) -> list[str]:
        """``defect_type`` of every item, in order (no rendering)."""
        return [self.defect_type_of(i) for i in range(self._n)]

    def _check_index(self, index: int) -> int:
        index = int(index)
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(f"index {index} out of range for {self.name} {self.split} of length {self._n}")
        return index

    # -- rendering
    def _streams(self, index: int) -> tuple[np.random.Generator, ...]:
        ss = np.random.SeedSequence(
            [_SALT, self.seed, SYNTHETIC_CATEGORIES.index(self.category), _SPLITS.index(self.split), index]
        )
        return tuple(np.random.default_rng(s) for s in ss.spawn(3))

    def render(self, index: int, with_defect: bool = True) -> tuple[np.ndarray, np.ndarray, str]:
        """Draw item ``index`` as numpy: ``(image (S,S,3) float32 in [0,1], mask (S,S) bool,
        defect_type)``. ``with_defect=False`` gives the same image without its defect."""
        index = self._check_index(index)
        S = self.image_size
        rng_scene, rng_defect, rng_noise = self._streams(index)
        x, y = self._x, self._y
        if self.category in SYNTHETIC_TEXTURES:
            scene = _texture(self.category, rng_scene, x, y, S)
        else:
            scene = _object(self.category, rng_scene, x, y, S)
        dtype = self.defect_type_of(index)
        mask = np.zeros((S, S), bool)
        img = scene.img
        if dtype != "good":
            for _ in range(8):  # a defect clipped to nothing (tiny images) is redrawn
                dimg, mask = _apply_defect(dtype, scene, rng_defect, x, y, S)
                if mask.any():
                    break
            else:  # pragma: no cover - needs absurdly small images
                raise RuntimeError(f"could not place a {dtype} defect in {S}x{S} image")
            if with_defect:
                img = dimg
        noise = rng_noise.normal(0.0, 0.012, size=(S, S, 3)).astype(np.float32)
        img = np.clip(img + noise, 0.0, 1.0)
        if not with_defect:
            mask = np.zeros((S, S), bool)
        return img, mask, dtype

    def clean_image(self, index: int) -> torch.Tensor:
        """Item ``index`` without its defect, ``(3, S, S)`` in [0, 1] (not normalised)."""
        img, _, _ = self.render(index, with_defect=False)
        return to_tensor01(img)

    def image01(self, index: int) -> torch.Tensor:
        """Item ``index`` as displayed, ``(3, S, S)`` in [0, 1] (not normalised)."""
        return to_tensor01(self._get(self._check_index(index))[0])

    def _get(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        hit = self._cache.get(index)
        if hit is not None:
            return hit
        img, mask, _ = self.render(index)
        if self._cache_on:
            self._cache[index] = (img, mask)
        return img, mask

    def __getitem__(self, index: int) -> dict:
        index = self._check_index(index)
        img, mask = self._get(index)  # fresh tensors every call: the cache cannot be edited
        dtype = self.defect_type_of(index)
        return {
            "image": to_normalized_tensor(img),
            "mask": torch.from_numpy(mask.astype(np.float32)[None]),
            "label": 0 if dtype == "good" else 1,
            "defect_type": dtype,
            "path": f"synthetic://{self.category}/{self.split}/{index}",
        }

    def __repr__(self) -> str:
        return (
            f"SyntheticDefects(category={self.category!r}, split={self.split!r}, "
            f"image_size={self.image_size}, n={self._n}, seed={self.seed})"
        )
