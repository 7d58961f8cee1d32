"""A teacher worth distilling from without ImageNet: formula-driven or single-image pretraining.

DSKD uses only ResNet18's stem to conv4_x, the layers that need the least data. Two recipes (and
their sum) teach them without a download:

* ``recipe="fractal"``: classify FractalDB-style images (Kataoka et al., ACCV 2020): each category is
  an iterated function system (IFS) of 2 to 4 affine maps, sampled with the sigma-factor rule of
  Anderson & Farrell (WACV 2022) so that the attractors are neither dust nor blobs; instances of a
  category perturb one map's parameters, flip and recolour. No natural image is involved.
* ``recipe="ssl"``: self-supervision (RotNet, Gidaris et al., ICLR 2018) on heavily augmented crops of
  the few natural images that installed packages ship (scikit-learn's two sample images; optionally
  scikit-image's data folder), after Asano, Rupprecht & Vedaldi (ICLR 2020), who found that the early
  layers learned from a single image match those learned from ImageNet.
* ``recipe="mix"``: both losses summed at every step, one backbone, two heads.

``pretrain_teacher(cfg)`` returns the stem..layer3 state dict, which ``TeacherPyramid(weights=path)``
loads, and a record naming the recipe and the source images. Everything is deterministic by seed.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .data.transforms import IMAGENET_MEAN, IMAGENET_STD
from .metrics import image_auroc
from .models.pyramid import ResNet18Pyramid
from .models.teacher import file_sha256
from .provenance import git_commit, provenance


# ----------------------------------------------------------------------------- fractals
def sample_ifs(rng: np.random.Generator, n_maps: Optional[int] = None) -> np.ndarray:
    """One IFS as an array (n_maps, 6): rows (a, b, c, d, e, f) of x' = [[a, b], [c, d]] x + (e, f).

    Singular values are drawn so that the sigma factor sum(s1 + 2 s2) lies in
    [(5 + n)/2 - 1, (5 + n)/2] ... the band where Anderson & Farrell found well-formed attractors.
    """
    n = int(rng.integers(2, 5)) if n_maps is None else n_maps
    alpha = rng.uniform(0.5 * (5 + n) - 1.0, 0.5 * (5 + n))  # target sigma factor
    # split alpha over the maps, then each share into s1 + 2 s2 with s2 <= s1 < 1
    shares = rng.dirichlet(np.ones(n)) * alpha
    shares = np.clip(shares, 0.3, 2.7)
    maps = np.empty((n, 6))
    for i, share in enumerate(shares):
        lo, hi = max(share / 3.0, share - 2.0), min(1.0, share)
        s1 = rng.uniform(lo, max(lo, hi))
        s2 = np.clip((share - s1) / 2.0, 0.0, s1)
        th, ph = rng.uniform(0, 2 * np.pi, 2)
        rot = lambda t: np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])  # noqa: E731
        d = np.diag([rng.choice([-1.0, 1.0]), rng.choice([-1.0, 1.0])])
        a = rot(th) @ np.diag([s1, s2]) @ rot(ph) @ d
        maps[i] = [a[0, 0], a[0, 1], a[1, 0], a[1, 1], *rng.uniform(-1, 1, 2)]
    return maps


def render_ifs(maps: np.ndarray, size: int, rng: np.random.Generator, n_points: int = 4096,
               n_steps: int = 24) -> np.ndarray:
    """Chaos game on many points at once; returns an (size, size) float32 density image in [0, 1]."""
    a = maps[:, :4].reshape(-1, 2, 2)
    b = maps[:, 4:]
    det = np.abs(a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]) + 1e-3
    p = det / det.sum()
    x = rng.uniform(-1, 1, (n_points, 2))
    pts = []
    for step in range(n_steps):
        j = rng.choice(len(p), size=n_points, p=p)
        x = np.einsum("nij,nj->ni", a[j], x) + b[j]
        if step >= 6:  # after a few steps the points lie on the attractor
            pts.append(x)
    pts = np.concatenate(pts)
    pts = pts[np.isfinite(pts).all(1)]
    lo, hi = np.percentile(pts, 0.5, axis=0), np.percentile(pts, 99.5, axis=0)
    scale = (hi - lo).max() + 1e-9
    centre = (hi + lo) / 2
    uv = (pts - centre) / scale * 0.9 + 0.5  # fit into the image with a margin
    ij = np.clip((uv * size).astype(np.int64), 0, size - 1)
    img = np.bincount(ij[:, 1] * size + ij[:, 0], minlength=size * size).astype(np.float32)
    img = np.log1p(img.reshape(size, size))
    return img / max(img.max(), 1e-6)


def fractal_image(maps: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """One instance of a category: perturb one map, render, random flip and colours; (3, size, size)."""
    m = maps.copy()
    k = rng.integers(len(m))
    m[k, :4] *= rng.uniform(0.8, 1.2)  # FractalDB's per-instance weight perturbation
    density = render_ifs(m, size, rng)
    if rng.random() < 0.5:
        density = density[:, ::-1]
    fg, bg = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3) * 0.4
    img = bg[:, None, None] * (1 - density) + fg[:, None, None] * density
    return np.ascontiguousarray(img, dtype=np.float32)


RECIPES = ("fractal", "ssl", "mix")
SSL_SOURCES = ("sklearn", "skimage", "sklearn+skimage")


@dataclass(frozen=True)
class PretrainConfig:
    """The recipe of the offline teacher (recorded beside its weights).

    ``recipe`` is "fractal" (classify fractal categories), "ssl" (RotNet on natural crops) or "mix"
    (both losses at every step). The ``n_categories`` / ``per_category`` fields size the fractal data
    set ("fractal", "mix"); the ``ssl_*`` fields the self-supervision ("ssl", "mix"). An epoch is one
    pass over the fractal images ("fractal", "mix", where each fractal batch is paired with one SSL
    batch) or ``ssl_steps_per_epoch`` steps ("ssl"). Every crop is new, so an SSL epoch never repeats.
    """

    n_categories: int = 100
    per_category: int = 60
    image_size: int = 64
    epochs: int = 5
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 1e-4
    seed: int = 0
    recipe: str = "fractal"
    ssl_sources: str = "sklearn"     # which shipped natural images to crop (see source_images)
    ssl_steps_per_epoch: int = 100   # "ssl" only
    ssl_min_scale: float = 0.01      # smallest crop, as a fraction of the source image's area
    ssl_grey: float = 0.5            # probability that a crop is turned grey (the MT Defects tiles are)
    ssl_weight: float = 1.0          # "mix": loss = fractal CE + ssl_weight * rotation CE

    def __post_init__(self) -> None:
        for name in ("n_categories", "per_category", "image_size", "epochs", "batch_size", "ssl_steps_per_epoch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"PretrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_categories < 2:
            raise ValueError("PretrainConfig.n_categories must be >= 2 (a classifier needs two classes)")
        if self.recipe not in RECIPES:
            raise ValueError(f"PretrainConfig.recipe must be one of {', '.join(RECIPES)}; got {self.recipe!r}")
        if self.ssl_sources not in SSL_SOURCES:
            raise ValueError(f"PretrainConfig.ssl_sources must be one of {', '.join(SSL_SOURCES)}; "
                             f"got {self.ssl_sources!r}")
        if not 0.0 < self.ssl_min_scale <= 1.0:
            raise ValueError(f"PretrainConfig.ssl_min_scale must be in (0, 1] (a fraction of the image's area), "
                             f"got {self.ssl_min_scale}")
        if not 0.0 <= self.ssl_grey <= 1.0:
            raise ValueError(f"PretrainConfig.ssl_grey must be a probability in [0, 1], got {self.ssl_grey}")
        if not self.ssl_weight > 0.0:
            raise ValueError(f"PretrainConfig.ssl_weight must be > 0, got {self.ssl_weight}")
        if self.recipe != "fractal" and self.batch_size % 4:
            raise ValueError(f"PretrainConfig.batch_size must be a multiple of 4 for recipe {self.recipe!r} "
                             f"(RotNet feeds all four rotations of each crop), got {self.batch_size}")


def fractal_dataset(cfg: PretrainConfig, progress: bool = False) -> tuple[Tensor, Tensor]:
    """All images (N, 3, S, S) in [0, 1] and labels (N,), deterministic by ``cfg.seed``."""
    rng = np.random.default_rng(cfg.seed)
    systems = [sample_ifs(rng) for _ in range(cfg.n_categories)]
    images = np.empty((cfg.n_categories * cfg.per_category, 3, cfg.image_size, cfg.image_size), np.float32)
    labels = np.repeat(np.arange(cfg.n_categories), cfg.per_category)
    for c, maps in enumerate(tqdm(systems, desc="render fractals", disable=not progress, unit="category")):
        crng = np.random.default_rng([cfg.seed, c])
        for i in range(cfg.per_category):
            images[c * cfg.per_category + i] = fractal_image(maps, cfg.image_size, crng)
    return torch.from_numpy(images), torch.from_numpy(labels)


# ----------------------------------------------------------------------------- natural crops
def source_images(sources: str = "sklearn", min_side: int = 64) -> tuple[list[Tensor], list[str]]:
    """The natural images that installed packages ship: a list of (3, H, W) float tensors in [0, 1]
    and their names ("sklearn:china.jpg", ...), in a fixed order.

    "sklearn": scikit-learn's ``load_sample_images()`` (china.jpg, flower.jpg, 427 x 640), always there
    with the package's dependencies. "skimage": every image file in scikit-image's data folder whose
    shorter side is at least ``min_side`` (grey ones repeated to RGB); a ValueError if scikit-image is
    not installed, never a silent fallback. "sklearn+skimage": both.
    """
    if sources not in SSL_SOURCES:
        raise ValueError(f"sources must be one of {', '.join(SSL_SOURCES)}; got {sources!r}")
    images, names = [], []
    if "sklearn" in sources.split("+"):
        from sklearn.datasets import load_sample_images

        bunch = load_sample_images()
        for img, fname in zip(bunch.images, bunch.filenames):
            images.append(torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255.0)
            names.append(f"sklearn:{Path(fname).name}")
    if "skimage" in sources.split("+"):
        try:
            import skimage.data
        except ImportError:
            raise ValueError(f"ssl_sources={sources!r} needs scikit-image, which is not installed; "
                             "use ssl_sources='sklearn' (or pip install scikit-image)") from None
        from PIL import Image

        folder = Path(skimage.data.__file__).parent
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() not in (".png", ".jpg", ".jpeg"):
                continue
            with Image.open(f) as im:
                arr = np.asarray(im.convert("RGB"))
            if min(arr.shape[:2]) < min_side:
                continue
            images.append(torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0)
            names.append(f"skimage:{f.name}")
        if not any(n.startswith("skimage:") for n in names):
            raise ValueError(f"no image of at least {min_side} px found in scikit-image's data folder {folder}")
    return images, names


def image_pyramid(image: Tensor, min_side: int = 16) -> list[Tensor]:
    """Halvings of ``image`` (3, H, W) by area averaging, each (1, 3, h, w), down to ``min_side``: a
    mipmap, so that large crops shrunk to a small output are sampled without aliasing."""
    levels = [image[None]]
    while min(levels[-1].shape[-2:]) >= 2 * min_side:
        h, w = levels[-1].shape[-2:]
        levels.append(F.interpolate(levels[-1], size=(h // 2, w // 2), mode="area"))
    return levels


def _gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Separable Gaussian blur with one sigma per image: x (B, C, H, W), sigma (B,) in pixels."""
    b, c, h, w = x.shape
    radius = max(1, int(math.ceil(3.0 * float(sigma.max()))))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t[None] / sigma[:, None]) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, K)
    y = F.pad(x.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(y, k[:, None, None, :], groups=b * c)  # along W
    y = F.conv2d(y, k[:, None, :, None], groups=b * c)  # along H
    return y.reshape(b, c, h, w)


def natural_crops(images: Sequence[Union[Tensor, Sequence[Tensor]]], n: int, size: int,
                  generator: torch.Generator, *, min_scale: float = 0.01, rotate: bool = True,
                  p_grey: float = 0.5, p_jitter: float = 0.8, p_blur: float = 0.5) -> Tensor:
    """``n`` heavily augmented crops (n, 3, size, size) in [0, 1], deterministic by ``generator``.

    The augmentations of Asano et al. (ICLR 2020), who learn from a single image: random resized crops
    over a wide range of scales (area log-uniform in [``min_scale``, 1], aspect ratio in [3/4, 4/3]),
    horizontal flips and, with ``rotate``, rotations by multiples of 90 degrees (with vertical flips,
    all eight symmetries of the square); colour jitter (brightness, contrast, saturation, per-channel
    gains) with probability ``p_jitter``; greyscale with probability ``p_grey``; Gaussian blur with
    probability ``p_blur``. ``images`` are (3, H, W) tensors or their :func:`image_pyramid`.

    Every crop is one affine sampling grid (``affine_grid`` + ``grid_sample``), read from the pyramid
    level at which the crop is at most twice the output size; the only Python loop is over the groups
    (source image, level).
    """
    if n < 1 or size < 1:
        raise ValueError(f"natural_crops needs n >= 1 and size >= 1, got n={n}, size={size}")
    if not images:
        raise ValueError("natural_crops needs at least one source image")
    if not 0.0 < min_scale <= 1.0:
        raise ValueError(f"natural_crops needs min_scale in (0, 1] (a fraction of the image's area), got {min_scale}")
    pyramids = [image_pyramid(im) if isinstance(im, Tensor) else list(im) for im in images]
    g = generator
    uni = lambda lo, hi, *shape: torch.empty(shape or (n,)).uniform_(lo, hi, generator=g)  # noqa: E731
    src = torch.randint(0, len(pyramids), (n,), generator=g)
    hw = torch.tensor([p[0].shape[-2:] for p in pyramids], dtype=torch.float32)[src]  # (n, 2) = H, W
    area = torch.exp(uni(math.log(min_scale), 0.0)) * hw[:, 0] * hw[:, 1]
    ratio = torch.exp(uni(math.log(3 / 4), math.log(4 / 3)))
    w_px = torch.minimum(torch.sqrt(area * ratio), hw[:, 1])
    h_px = torch.minimum(torch.sqrt(area / ratio), hw[:, 0])
    sx, sy = w_px / hw[:, 1], h_px / hw[:, 0]  # half-extents in normalised coordinates
    cx, cy = (2 * uni(0, 1) - 1) * (1 - sx), (2 * uni(0, 1) - 1) * (1 - sy)
    flip_x = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    flip_y = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0) if rotate else torch.ones(n)
    k = torch.randint(0, 4, (n,), generator=g) if rotate else torch.zeros(n, dtype=torch.long)
    cos = torch.tensor([1.0, 0.0, -1.0, 0.0])[k]
    sin = torch.tensor([0.0, 1.0, 0.0, -1.0])[k]
    # theta = [[sx, 0], [0, sy]] @ diag(flips) @ R(k * 90 degrees), plus the centre
    theta = torch.stack([torch.stack([sx * flip_x * cos, -sx * flip_x * sin, cx], 1),
                         torch.stack([sy * flip_y * sin, sy * flip_y * cos, cy], 1)], 1)  # (n, 2, 3)
    level = torch.log2(torch.clamp(torch.maximum(w_px, h_px) / size, min=1.0)).floor().long()
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    out = torch.empty(n, 3, size, size)
    for s_idx, pyr in enumerate(pyramids):
        for lv in range(len(pyr)):
            sel = ((src == s_idx) & (level.clamp(max=len(pyr) - 1) == lv)).nonzero().flatten()
            if len(sel):
                out[sel] = F.grid_sample(pyr[lv].expand(len(sel), -1, -1, -1), grid[sel], mode="bilinear",
                                         padding_mode="border", align_corners=False)
    # colour jitter, per crop
    jit = (torch.rand(n, generator=g) < p_jitter).float().view(n, 1, 1, 1)
    bright, contrast, sat = (1 + jit * uni(-0.4, 0.4).view(n, 1, 1, 1) for _ in range(3))
    gains = 1 + jit * uni(-0.1, 0.1, n, 3).view(n, 3, 1, 1)
    grey = lambda t: (0.299 * t[:, :1] + 0.587 * t[:, 1:2] + 0.114 * t[:, 2:]).expand_as(t)  # noqa: E731
    out = (out * bright * gains).clamp(0, 1)
    mean = grey(out).mean((1, 2, 3), keepdim=True)
    out = (out - mean) * contrast + mean
    out = (grey(out) + (out.clamp(0, 1) - grey(out)) * sat).clamp(0, 1)
    to_grey = (torch.rand(n, generator=g) < p_grey).view(n, 1, 1, 1)
    out = torch.where(to_grey, grey(out), out)
    blur = torch.rand(n, generator=g) < p_blur
    sigma = torch.where(blur, uni(0.1, 2.0) * size / 64, torch.full((n,), 0.05))
    if bool(blur.any()):
        out = _gaussian_blur(out, sigma)
    return out.clamp(0, 1).contiguous()


def rotnet_batch(crops: Tensor) -> tuple[Tensor, Tensor]:
    """RotNet's task (Gidaris et al., ICLR 2018): all four rotations of each crop, (4n, 3, S, S), and
    their labels (4n,), label k = k * 90 degrees anticlockwise. Feeding the four rotations of a crop
    together was Gidaris et al.'s better variant; it also balances the labels in every batch."""
    x = torch.cat([torch.rot90(crops, k, dims=(2, 3)) for k in range(4)])
    y = torch.arange(4).repeat_interleave(len(crops))
    return x, y


class PyramidClassifier(nn.Module):
    """ResNet18 stem..layer3 with a temporary head (global pooling + linear), for pretraining."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.backbone = ResNet18Pyramid()
        self.head = nn.Linear(256, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x).conv4_x.mean(dim=(2, 3)))


class PretrainNet(nn.Module):
    """ResNet18 stem..layer3 shared by one temporary head per task (global pooling + linear).

    ``heads`` maps a task to its number of classes, e.g. {"fractal": 100, "rotation": 4}; with the
    single head "fractal" it is :class:`PyramidClassifier` (same parameters, same initialisation).
    The pooling is global so that the rotation of a crop cannot be read off the layout of the pooled
    map: the convolutions themselves must become orientation-aware.
    """

    def __init__(self, heads: dict[str, int]) -> None:
        super().__init__()
        self.backbone = ResNet18Pyramid()
        self.heads = nn.ModuleDict({name: nn.Linear(256, k) for name, k in heads.items()})

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x).conv4_x.mean(dim=(2, 3))  # (B, 256), for the heads


def _fractal_batch(images: Tensor, idx: Tensor, size: int, gen: torch.Generator) -> Tensor:
    """The fractal recipe's light augmentation: random crop-and-resize and flips keep the task from
    being memorised (one flip and one crop per batch)."""
    x = images[idx]
    if torch.rand((), generator=gen) < 0.5:
        x = x.flip(3)
    crop = int(size * float(torch.empty(()).uniform_(0.7, 1.0, generator=gen)))
    o = torch.randint(0, size - crop + 1, (2,), generator=gen)
    return F.interpolate(x[:, :, o[0]:o[0] + crop, o[1]:o[1] + crop], size=(size, size), mode="bilinear",
                         align_corners=False)


_METHODS = {
    "fractal": "fractal (FractalDB-style IFS, sigma-factor sampling)",
    "ssl": "ssl (RotNet on augmented crops of shipped natural images, after Asano et al. 2020)",
    "mix": "mix (fractal classification + RotNet on natural crops, summed each step)",
}


def pretrain_teacher(cfg: PretrainConfig, progress: bool = True) -> tuple[dict[str, Tensor], dict]:
    """Pretrain the backbone by ``cfg.recipe``; return (stem..layer3 state dict, training record).

    The self-supervised task is RotNet (Gidaris et al., ICLR 2018): predict which of 0/90/180/270
    degrees a crop was rotated by. Asano et al. (ICLR 2020) found RotNet, BiGAN and DeepCluster all
    teach conv1..conv3 from one image; RotNet is chosen because it is the cheapest on a CPU (one
    forward per crop, no second view, no generator, no clustering), needs no large batch of
    negatives (a contrastive loss between views does) and has a plain, testable signal: its accuracy
    on crops it has never seen, against a chance of 1/4. Its crops are flipped horizontally but
    never rotated or flipped vertically before the task rotates them, so the label stays true.
    Every SSL batch is fresh, so its accuracy, measured before each update, is a held-out accuracy.

    The record's ``history`` has per epoch "loss" (the summed loss), "accuracy" (fractal classes) and
    "rotation_accuracy" / "rotation_loss" (RotNet), as the recipe has them; ``source_images`` names
    the natural images used (none for "fractal").
    """
    torch.manual_seed(cfg.seed)
    started = time.perf_counter()
    commit_at_start = git_commit()  # the code that runs; the repository may move on before the end
    use_fractal, use_ssl = cfg.recipe in ("fractal", "mix"), cfg.recipe in ("ssl", "mix")
    images = labels = None
    if use_fractal:
        images, labels = fractal_dataset(cfg, progress)
    render_seconds = time.perf_counter() - started
    pyramids, names = [], []
    if use_ssl:
        sources, names = source_images(cfg.ssl_sources)
        pyramids = [image_pyramid(im, min_side=max(8, cfg.image_size // 2)) for im in sources]
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    heads = ({"fractal": cfg.n_categories} if use_fractal else {}) | ({"rotation": 4} if use_ssl else {})
    model = PretrainNet(heads)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
    per_epoch = math.ceil(len(images) / cfg.batch_size) if use_fractal else cfg.ssl_steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * per_epoch,
                                                pct_start=0.15)
    gen = torch.Generator().manual_seed(cfg.seed)               # fractal order and augmentation
    ssl_gen = torch.Generator().manual_seed(cfg.seed + 7919)    # natural crops: their own stream
    history = []
    for epoch in tqdm(range(cfg.epochs), desc=f"pretrain teacher ({cfg.recipe})", disable=not progress,
                      unit="epoch"):
        model.train()
        order = torch.randperm(len(images), generator=gen) if use_fractal else None
        sums = dict.fromkeys(("loss", "correct", "seen", "rot_loss", "rot_correct", "rot_seen"), 0.0)
        for step in range(per_epoch):
            xs, parts = [], []
            if use_fractal:
                idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
                xs.append(_fractal_batch(images, idx, cfg.image_size, gen))
                parts.append(("fractal", labels[idx]))
            if use_ssl:
                crops = natural_crops(pyramids, cfg.batch_size // 4, cfg.image_size, ssl_gen,
                                      min_scale=cfg.ssl_min_scale, rotate=False, p_grey=cfg.ssl_grey)
                x_rot, y_rot = rotnet_batch(crops)
                xs.append(x_rot)
                parts.append(("rotation", y_rot))
            x = torch.cat(xs) if len(xs) > 1 else xs[0]
            feats = model((x - mean) / std)  # one forward, so BatchNorm sees both tasks' images together
            loss, start = 0.0, 0
            for name, y in parts:
                logits = model.heads[name](feats[start:start + len(y)])
                start += len(y)
                part_loss = F.cross_entropy(logits, y)
                hit = float((logits.argmax(1) == y).sum())
                if name == "fractal":
                    loss = loss + part_loss
                    sums["loss"] += float(part_loss.detach()) * len(y)
                    sums["correct"] += hit
                    sums["seen"] += len(y)
                else:
                    loss = loss + (cfg.ssl_weight if use_fractal else 1.0) * part_loss
                    sums["rot_loss"] += float(part_loss.detach()) * len(y)
                    sums["rot_correct"] += hit
                    sums["rot_seen"] += len(y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        row = {"epoch": epoch + 1}
        fractal_loss = sums["loss"] / sums["seen"] if use_fractal else 0.0
        rotation_loss = sums["rot_loss"] / sums["rot_seen"] if use_ssl else 0.0
        row["loss"] = fractal_loss + (cfg.ssl_weight if use_fractal else 1.0) * rotation_loss
        if use_fractal:
            row["accuracy"] = sums["correct"] / sums["seen"]
        if use_ssl:
            row["rotation_loss"] = rotation_loss
            row["rotation_accuracy"] = sums["rot_correct"] / sums["rot_seen"]
        history.append(row)
    record = {"recipe": cfg.recipe, "method": _METHODS[cfg.recipe], "config": asdict(cfg),
              "git_commit_at_start": commit_at_start,
              "source_images": names, "history": history, "render_seconds": round(render_seconds, 1),
              "wall_seconds": round(time.perf_counter() - started, 1)}
    state = {k: v.detach().clone() for k, v in model.backbone.state_dict().items()}
    return state, record


def save_teacher(state: dict[str, Tensor], record: dict, path: Union[str, Path]) -> Path:
    """Write the weights and, beside them, ``<name>.json`` with the recipe, checksum and provenance."""

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    record["sha256"] = file_sha256(path, 64)
    meta = dict(record, file=path.name, provenance=provenance("cpu"))
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


# ----------------------------------------------------------------------------- judging a teacher
@torch.inference_mode()
def pooled_features(backbone: nn.Module, dataset, batch_size: int = 64, grid: int = 4) -> tuple[Tensor, Tensor]:
    """Image embeddings for a nearest-neighbour test: conv3_x and conv4_x average-pooled to a
    ``grid`` x ``grid`` layout and concatenated; returns (features (N, D), labels (N,))."""
    from torch.utils.data import DataLoader

    backbone.eval()
    feats, labels = [], []
    for batch in DataLoader(dataset, batch_size=batch_size):
        pyr = backbone(batch["image"])
        parts = [F.adaptive_avg_pool2d(f, grid).flatten(1) for f in (pyr.conv3_x, pyr.conv4_x)]
        feats.append(torch.cat(parts, 1))
        labels.append(torch.as_tensor(batch["label"]))
    return torch.cat(feats), torch.cat(labels)


def knn_image_auroc(backbone: nn.Module, train_set, test_set) -> float:
    """Image AUROC of a 1-nearest-neighbour detector on the backbone's pooled features: how much
    the features alone separate anomalies (0.5 = chance). A cheap proxy for a teacher's worth."""

    train_f, _ = pooled_features(backbone, train_set)
    test_f, labels = pooled_features(backbone, test_set)
    scores = torch.cdist(test_f, train_f).min(dim=1).values
    return image_auroc(labels.numpy(), scores.numpy())
