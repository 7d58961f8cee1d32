"""A teacher worth distilling from without ImageNet: formula-driven pretraining on fractals.

DSKD uses only ResNet18's stem to conv4_x, the layers that need the least data. Here they learn
to classify FractalDB-style images (Kataoka et al., ACCV 2020): each category is an iterated
function system (IFS) of 2 to 4 affine maps, sampled with the sigma-factor rule of Anderson &
Farrell (WACV 2022) so that the attractors are neither dust nor blobs; instances of a category
perturb one map's parameters, flip and recolour. No natural image and no download is involved.

``pretrain_teacher(cfg)`` returns the stem..layer3 state dict, which ``TeacherPyramid(weights=path)``
loads. Everything is deterministic by seed.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .data.transforms import IMAGENET_MEAN, IMAGENET_STD
from .models.pyramid import ResNet18Pyramid


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


@dataclass(frozen=True)
class PretrainConfig:
    """The recipe of the offline teacher (recorded beside its weights)."""

    n_categories: int = 100
    per_category: int = 60
    image_size: int = 64
    epochs: int = 5
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_categories", "per_category", "image_size", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"PretrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_categories < 2:
            raise ValueError("PretrainConfig.n_categories must be >= 2 (a classifier needs two classes)")


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


class PyramidClassifier(nn.Module):
    """ResNet18 stem..layer3 with a temporary head (global pooling + linear), for pretraining."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.backbone = ResNet18Pyramid()
        self.head = nn.Linear(256, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x).conv4_x.mean(dim=(2, 3)))


def pretrain_teacher(cfg: PretrainConfig, progress: bool = True) -> tuple[dict[str, Tensor], dict]:
    """Train the backbone on fractal categories; return (stem..layer3 state dict, training record)."""
    torch.manual_seed(cfg.seed)
    started = time.perf_counter()
    images, labels = fractal_dataset(cfg, progress)
    render_seconds = time.perf_counter() - started
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    model = PyramidClassifier(cfg.n_categories)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
    steps = cfg.epochs * math.ceil(len(images) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)
    gen = torch.Generator().manual_seed(cfg.seed)
    history = []
    for epoch in tqdm(range(cfg.epochs), desc="pretrain teacher", disable=not progress, unit="epoch"):
        model.train()
        order = torch.randperm(len(images), generator=gen)
        total = correct = 0.0
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            x = images[idx]
            # light augmentation: random crop-and-resize and flips keep the task from being memorised
            if torch.rand((), generator=gen) < 0.5:
                x = x.flip(3)
            s = cfg.image_size
            crop = int(s * float(torch.empty(()).uniform_(0.7, 1.0, generator=gen)))
            o = torch.randint(0, s - crop + 1, (2,), generator=gen)
            x = F.interpolate(x[:, :, o[0]:o[0] + crop, o[1]:o[1] + crop], size=(s, s), mode="bilinear",
                              align_corners=False)
            logits = model((x - mean) / std)
            loss = F.cross_entropy(logits, labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            correct += float((logits.argmax(1) == labels[idx]).sum())
        history.append({"epoch": epoch + 1, "loss": total / len(images), "accuracy": correct / len(images)})
    record = {"recipe": "fractal (FractalDB-style IFS, sigma-factor sampling)", "config": asdict(cfg),
              "history": history, "render_seconds": round(render_seconds, 1),
              "wall_seconds": round(time.perf_counter() - started, 1)}
    state = {k: v.detach().clone() for k, v in model.backbone.state_dict().items()}
    return state, record


def save_teacher(state: dict[str, Tensor], record: dict, path: Union[str, Path]) -> Path:
    """Write the weights and, beside them, ``<name>.json`` with the recipe, checksum and provenance."""
    from .models.teacher import file_sha256
    from .provenance import provenance

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
    from .metrics import image_auroc

    train_f, _ = pooled_features(backbone, train_set)
    test_f, labels = pooled_features(backbone, test_set)
    scores = torch.cdist(test_f, train_f).min(dim=1).values
    return image_auroc(labels.numpy(), scores.numpy())
