"""A same-teacher baseline: what does distillation buy over remembering the teacher's normal features?

:class:`PatchCore` is a PatchCore-style memory-bank detector (Roth et al., "Towards total recall in
industrial anomaly detection", CVPR 2022) built on DSKD's own frozen teacher T, so that it shares
DSKD's teacher, data, resolution and metrics and differs only in what is learnt from the normal images:

1. **Patch features.** T's conv3_x (128 @ H/8) and conv4_x (256 @ H/16) maps (torchvision layer2 and
   layer3), each averaged over a 3x3 neighbourhood (PatchCore's local aggregation, stride 1), conv4_x
   upsampled bilinearly to conv3_x's grid, concatenated: one 384-d feature per H/8 x W/8 patch.
2. **Memory bank.** Every patch of every training image, reduced to a coreset by greedy k-center
   selection (PatchCore's approximate greedy coreset): the distances are taken in a Gaussian random
   projection to :data:`PROJECTION_DIM` = 128 dimensions (Johnson-Lindenstrauss), starting from one
   random patch; then repeatedly the patch farthest from all patches chosen so far is added, until
   :data:`CORESET_FRACTION` = 10 % of the patches are chosen. The bank keeps their full 384-d features.
3. **Scores.** Each test patch's Euclidean distance to its nearest bank feature is its anomaly value;
   the map (H/8 x W/8) is upsampled bilinearly to the image size and smoothed by the Gaussian of
   DSKD's Eq. 9 (sigma 4); the image score is the map's maximum (Eq. 10). PatchCore's re-weighting of
   the image score by the nearest neighbour's neighbourhood is left out, so maps and scores are formed
   exactly as DSKD's are.

The seed picks the MT Defects split (as for DS), the projection and the coreset's first patch.
``dskd baseline`` records it (:func:`record_baseline`) into ``results/baselines/<data set>/``;
:func:`same_teacher_comparison` puts the records beside DS, T-E and T-D.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .ablation import load_study
from .config import TrainConfig, resolve_device
from .evaluation import EvaluationReport, Prediction, evaluate
from .inference import anomaly_score, gaussian_blur
from .models import TeacherPyramid, teacher_weights_from_name
from .provenance import grouped_commands, provenance, shown_command, write_json
from .reproduce.jobs import split_description
from .results import results_path
from .training import data_description, dataset_for

#: PatchCore's usual coreset size for MVTec AD (its paper reports 1 %, 10 % and 25 %)
CORESET_FRACTION = 0.1
#: dimension of the random projection the coreset's distances are taken in (PatchCore's default)
PROJECTION_DIM = 128
#: the teacher's levels PatchCore reads: conv3_x and conv4_x (torchvision layer2, layer3)
LEVELS = (2, 3)
#: the recorded runs: MT Defects at the paper's 128 x 128, the shipped teacher, the three DS seeds
RECORDING: dict[str, Any] = {"dataset": "mt-defects", "teacher": "offline-pretrained", "seeds": (0, 1, 2),
                             "image_size": 128}
METRICS = ("image_auroc", "pixel_auroc", "pro")

Images = Union[Dataset, DataLoader, Tensor]


def _batches(data: Images, batch_size: int) -> Iterable[dict[str, Any]]:
    if isinstance(data, Tensor):
        if data.dim() != 4 or data.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(data.shape)}")
        return ({"image": data[i:i + batch_size]} for i in range(0, len(data), batch_size))
    if isinstance(data, DataLoader):
        return data
    return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0)


def nearest_distances(queries: Tensor, bank: Tensor, chunk: int = 4096) -> Tensor:
    """Euclidean distance of each query (Q, D) to its nearest row of ``bank`` (M, D), computed
    ``chunk`` queries at a time, so at most ``chunk`` x M distances are held at once."""
    if queries.dim() != 2 or bank.dim() != 2 or queries.shape[1] != bank.shape[1]:
        raise ValueError(f"need queries (Q, D) and bank (M, D) with the same D, got {tuple(queries.shape)} and "
                         f"{tuple(bank.shape)}")
    if len(bank) == 0:
        raise ValueError("the memory bank is empty: fit PatchCore on at least one training image first")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    bank_sq = (bank ** 2).sum(1)
    out = []
    for i in range(0, len(queries), chunk):
        q = queries[i:i + chunk]
        d2 = (q ** 2).sum(1, keepdim=True) - 2 * q @ bank.T + bank_sq
        out.append(d2.amin(1).clamp_min(0).sqrt())
    return torch.cat(out) if out else queries.new_zeros(0)


def greedy_coreset(features: Tensor, n: int, *, projection_dim: int = PROJECTION_DIM,
                   generator: Optional[torch.Generator] = None) -> Tensor:
    """Indices of ``n`` rows of ``features`` (N, D) chosen by greedy k-center selection: start from one
    random row, then add the row farthest (Euclidean) from every row chosen so far. Distances are taken
    after a Gaussian random projection to ``projection_dim`` dimensions (none when D is smaller)."""
    total = len(features)
    if not 1 <= n <= total:
        raise ValueError(f"a coreset of {n} rows from {total} is impossible: need 1 <= n <= {total}")
    x = features.float()
    if projection_dim and projection_dim < x.shape[1]:
        proj = torch.randn(x.shape[1], projection_dim, generator=generator) / math.sqrt(projection_dim)
        x = x @ proj
    start = int(torch.randint(total, (1,), generator=generator))
    chosen = torch.empty(n, dtype=torch.long)
    chosen[0] = start
    sq = (x ** 2).sum(1)  # |x - c|^2 = |x|^2 - 2 x.c + |c|^2: one matrix-vector product per step

    def d2(c: int) -> Tensor:
        return sq - 2 * (x @ x[c]) + sq[c]

    min_d2 = d2(start)
    for k in range(1, n):
        nxt = int(torch.argmax(min_d2))
        chosen[k] = nxt
        min_d2 = torch.minimum(min_d2, d2(nxt))
    return chosen


class PatchCore:
    """PatchCore-style memory bank on a frozen DSKD teacher (see the module's docstring for the recipe).

    ``fit(train_set)`` fills the memory bank; ``predict(images)`` returns a
    :class:`~dskd.evaluation.Prediction` (maps (N, H, W), scores (N,), and the ground truth of a data set),
    so :func:`dskd.evaluation.evaluate` scores it: ``evaluate(pc, test_set, prediction=pc.predict(test_set))``,
    or :meth:`evaluate`. ``teacher``: a :class:`~dskd.models.TeacherPyramid` or a teacher name.
    """

    structure = "PatchCore"

    def __init__(self, teacher: Union[TeacherPyramid, str] = "offline-pretrained", *,
                 coreset_fraction: float = CORESET_FRACTION, projection_dim: int = PROJECTION_DIM,
                 sigma: float = 4.0, seed: int = 0, batch_size: int = 16, chunk: int = 4096,
                 device: Union[str, torch.device] = "cpu") -> None:
        if not 0 < coreset_fraction <= 1:
            raise ValueError(f"coreset_fraction must be in (0, 1], got {coreset_fraction}")
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.device = torch.device(device)
        self.teacher = (teacher if isinstance(teacher, TeacherPyramid)
                        else TeacherPyramid(teacher_weights_from_name(teacher))).to(self.device).eval()
        self.coreset_fraction, self.projection_dim = coreset_fraction, projection_dim
        self.sigma, self.seed, self.batch_size, self.chunk = sigma, seed, batch_size, chunk
        self.bank: Optional[Tensor] = None
        self.n_train_patches = 0
        self.fit_seconds = 0.0

    @property
    def teacher_description(self) -> str:
        return self.teacher.weights_description

    @torch.inference_mode()
    def embed(self, images: Tensor) -> Tensor:
        """Patch features (B, 384, H/8, W/8): T's conv3_x and conv4_x, each 3x3-averaged, conv4_x
        upsampled bilinearly to conv3_x's grid, concatenated."""
        pyramid = self.teacher(images.to(self.device))
        f2, f3 = (F.avg_pool2d(pyramid[k - 1], 3, stride=1, padding=1) for k in LEVELS)
        f3 = F.interpolate(f3, size=f2.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([f2, f3], dim=1)

    def fit(self, train_set: Images) -> "PatchCore":
        """Fill the memory bank with a greedy coreset of every training patch's feature."""
        started = time.perf_counter()
        feats = [self.embed(b["image"]).permute(0, 2, 3, 1).flatten(0, 2).cpu()
                 for b in _batches(train_set, self.batch_size)]
        if not feats:
            raise ValueError("PatchCore.fit needs at least one training image")
        patches = torch.cat(feats)
        self.n_train_patches = len(patches)
        n = max(1, round(self.coreset_fraction * len(patches)))
        gen = torch.Generator().manual_seed(self.seed)
        idx = greedy_coreset(patches, n, projection_dim=self.projection_dim, generator=gen)
        self.bank = patches[idx].to(self.device)
        self.fit_seconds = time.perf_counter() - started
        return self

    @torch.inference_mode()
    def predict(self, data: Images) -> Prediction:
        """Anomaly maps (nearest-neighbour distance per patch, upsampled, Gaussian of Eq. 9) and image
        scores (their maximum, Eq. 10); labels, masks and defect types when ``data`` is a data set."""
        if self.bank is None:
            raise RuntimeError("PatchCore.predict before fit: call fit(train_set) first")
        maps, labels, masks, types, paths = [], [], [], [], []
        started = time.perf_counter()
        for batch in _batches(data, self.batch_size):
            images = batch["image"]
            f = self.embed(images)
            b, _, h, w = f.shape
            d = nearest_distances(f.permute(0, 2, 3, 1).flatten(0, 2), self.bank, self.chunk).view(b, 1, h, w)
            m = F.interpolate(d, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
            maps.append(gaussian_blur(m, self.sigma).float().cpu())
            if "label" in batch:
                labels.append(torch.as_tensor(batch["label"]))
                masks.append(batch["mask"][:, 0].to(torch.uint8))
                types.extend(batch["defect_type"])
                paths.extend(batch["path"])
        if not maps:
            raise ValueError("PatchCore.predict got no images")
        all_maps = torch.cat(maps)
        return Prediction(maps=all_maps, scores=anomaly_score(all_maps), labels=torch.cat(labels) if labels else None,
                          masks=torch.cat(masks) if masks else None, defect_types=types, paths=paths,
                          seconds=time.perf_counter() - started)

    def evaluate(self, test_set: Union[Dataset, DataLoader]) -> EvaluationReport:
        """Image AUROC, pixel AUROC and PRO with DSKD's metrics (:func:`dskd.evaluation.evaluate`)."""
        return evaluate(self, test_set, prediction=self.predict(test_set))  # type: ignore[arg-type]

    def settings(self) -> dict[str, Any]:
        """What defines this detector, for records."""
        return {"method": "PatchCore-style memory bank (Roth et al. 2022) on DSKD's teacher",
                "levels": ["conv3_x", "conv4_x"], "local_aggregation": "3x3 average, stride 1",
                "feature_dim": None if self.bank is None else int(self.bank.shape[1]),
                "coreset": "greedy k-center, Gaussian random projection, one random start",
                "coreset_fraction": self.coreset_fraction, "projection_dim": self.projection_dim,
                "n_train_patches": self.n_train_patches,
                "bank_size": None if self.bank is None else int(self.bank.shape[0]),
                "score": "nearest-neighbour Euclidean distance per patch; map upsampled bilinearly, Gaussian "
                         f"sigma {self.sigma} (Eq. 9); image score = max (Eq. 10); no re-weighting",
                "sigma": self.sigma, "seed": self.seed}


# --------------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------------
def baseline_command(seeds: Sequence[int] = RECORDING["seeds"], teacher: str = RECORDING["teacher"],
                     dataset: str = RECORDING["dataset"]) -> str:
    """The shell command that records the baseline the way the book reads it."""
    return (f"DSKD_DATA=<folder> dskd baseline --dataset {dataset} --teacher {teacher} "
            f"--seeds {','.join(str(int(s)) for s in seeds)}")


def record_baseline(seed: int, *, dataset: str = RECORDING["dataset"], teacher: str = RECORDING["teacher"],
                    image_size: int = RECORDING["image_size"], data_root: Optional[str] = None,
                    out_dir: Union[str, Path] = "results/baselines", coreset_fraction: float = CORESET_FRACTION,
                    device: str = "cpu", **data_sizes: Any) -> dict[str, Any]:
    """Fit and evaluate :class:`PatchCore` on one seed's split; write ``<out_dir>/<dataset>/seed<N>.json``
    (metrics, per-defect-type metrics, settings, provenance) and return the record."""
    cfg = TrainConfig(dataset=dataset, category=None if dataset != "synthetic" else "disc", data_root=data_root,
                      image_size=image_size, teacher=teacher, seed=seed, device=device, **data_sizes)
    dev = resolve_device(device)
    train_set, test_set = dataset_for(cfg, "train"), dataset_for(cfg, "test")
    started = time.perf_counter()
    pc = PatchCore(teacher, coreset_fraction=coreset_fraction, seed=seed, sigma=cfg.sigma, device=dev).fit(train_set)
    report = pc.evaluate(test_set)
    metrics = {k: v for k, v in report.to_dict().items() if k not in ("teacher", "structure")}
    record = {
        "kind": "dskd-baseline-result", "method": "PatchCore", "dataset": dataset, "seed": seed,
        "metrics": metrics, "settings": pc.settings(), "fit_seconds": pc.fit_seconds,
        "wall_seconds": time.perf_counter() - started,
        "provenance": provenance(dev, teacher=report.teacher, data=data_description(cfg),
                                 data_root=str(getattr(train_set, "root", "synthetic")), seed=seed,
                                 split=split_description(cfg, train_set, test_set)
                                 if dataset != "synthetic" else "synthetic train/test",
                                 image_size=image_size, n_train=len(train_set), n_test=len(test_set)),  # type: ignore[arg-type]
    }
    path = Path(out_dir) / dataset / f"seed{seed}.json"
    write_json(path, record)
    record["path"] = str(path)
    return record


def load_baseline_records(folder: Optional[Union[str, Path]] = None) -> list[dict[str, Any]]:
    """The recorded PatchCore runs (``seed*.json``), by seed; empty when none is recorded."""
    import json

    folder = Path(folder) if folder is not None else results_path("baselines", RECORDING["dataset"])
    return sorted((json.loads(p.read_text()) for p in folder.glob("seed*.json")), key=lambda r: r["seed"])


# --------------------------------------------------------------------------------------------------
# Beside DS, T-E and T-D
# --------------------------------------------------------------------------------------------------
def _stats(values: Sequence[Optional[float]]) -> tuple[float, float]:
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return float("nan"), float("nan")
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def _row(method: str, what: str, values: dict[str, Sequence[Optional[float]]], records: Sequence[dict[str, Any]],
         source: str, training: str) -> dict[str, Any]:
    prov = [r.get("provenance", {}) for r in records]
    row: dict[str, Any] = {"method": method, "what": what, "seeds": [r["seed"] for r in records], "source": source,
                           "teacher": prov[0].get("teacher", "?"), "training": training, "recorded": True,
                           "commands": sorted({shown_command(p.get("command", "?")) for p in prov}),
                           "commits": sorted({str(p.get("git_commit", "?"))[:12] for p in prov})}
    for m in METRICS:
        row[m], row[f"{m}_std"] = _stats(values[m])
        row[f"{m}_per_seed"] = list(values[m])
    return row


def _missing(method: str, what: str, source: str, command: str) -> dict[str, Any]:
    return {"method": method, "what": what, "source": source, "recorded": False, "command": command,
            **{m: float("nan") for m in METRICS}, **{f"{m}_std": float("nan") for m in METRICS}}


ARCHITECTURE_40 = ("ablations-40-epochs", "mt-defects")
DS_RECORDS = ("mt-defects",)
ABLATION_COMMAND = ("DSKD_DATA=<folder> dskd ablate --study architecture --variants T-E,T-D --preset paper "
                    "--dataset mt-defects --epochs 40 --precision bf16 --teacher offline-pretrained --seeds 0,1,2 "
                    "--out-dir results/ablations-40-epochs")


def _training(records: Sequence[dict[str, Any]]) -> str:
    """"40 epochs, bf16": the epochs and the training arithmetic the records name (fp32 where none is named,
    as before the precision option existed)."""
    epochs = sorted({r["config"]["epochs"] for r in records})
    precisions = sorted({r["config"].get("precision", "fp32") for r in records})
    return f"{'/'.join(map(str, epochs))} epochs, {'/'.join(precisions)}"


def same_teacher_comparison(root: Optional[Union[str, Path]] = None) -> list[dict[str, Any]]:
    """Rows (mean, standard deviation and per-seed values of image AUROC, pixel AUROC, PRO) for PatchCore
    (``baselines/mt-defects``), DS (Table 5's 40-epoch records, ``mt-defects/seed*.json``), and T-E and
    T-D (``ablations-40-epochs/mt-defects/architecture.json``). A method with no record gets a row with
    ``recorded = False`` and the command that records it. ``root``: the results folder (default
    :func:`dskd.results.results_root`)."""
    import json

    base = Path(root) if root is not None else results_path()
    rows = []
    pc = load_baseline_records(base / "baselines" / RECORDING["dataset"])
    if pc:
        rows.append(_row("PatchCore", "memory bank of T's features, no training",
                         {m: [r["metrics"][m] for r in pc] for m in METRICS}, pc,
                         f"baselines/{RECORDING['dataset']}/seed*.json", "none (fit once)"))
    else:
        rows.append(_missing("PatchCore", "memory bank of T's features, no training",
                             f"baselines/{RECORDING['dataset']}", baseline_command()))
    ds = sorted((json.loads(p.read_text()) for p in base.joinpath(*DS_RECORDS).glob("seed*.json")),
                key=lambda r: r["seed"])
    if ds:
        rows.append(_row("DS", "T -> S_e -> DFE -> S_d, T vs S_d (DSKD)",
                         {m: [r["metrics"][m] for r in ds] for m in METRICS}, ds,
                         "/".join(DS_RECORDS) + "/seed*.json", _training(ds)))
    else:
        rows.append(_missing("DS", "T -> S_e -> DFE -> S_d, T vs S_d (DSKD)", "/".join(DS_RECORDS),
                             "DSKD_DATA=<folder> dskd reproduce mt-defects --epochs 40 --seeds 0,1,2 "
                             "--teacher offline-pretrained"))
    study = load_study(base.joinpath(*ARCHITECTURE_40), "architecture")
    what = {"T-E": "T vs S_e (STPM-like)", "T-D": "T -> DFE -> S_d, T vs S_d (RD4AD-like)"}
    for variant in ("T-E", "T-D"):
        recs = sorted((r for r in study.records if r["variant"] == variant), key=lambda r: r["seed"])
        if recs:
            rows.append(_row(variant, what[variant], {m: [r[m] for r in recs] for m in METRICS}, recs,
                             "/".join(ARCHITECTURE_40) + "/architecture.json", _training(recs)))
        else:
            rows.append(_missing(variant, what[variant], "/".join(ARCHITECTURE_40) + "/architecture.json",
                                 ABLATION_COMMAND))
    return rows


def _pct(mean: float, std: float) -> str:
    return "not recorded yet" if math.isnan(mean) else f"{100 * mean:.1f} ± {100 * std:.1f}"


def comparison_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: one line per method, metrics in % as mean ± standard deviation over seeds."""
    lines = ["| method | what is compared | training | seeds | image AUROC | pixel AUROC | PRO |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        seeds = ",".join(map(str, r.get("seeds", []))) or "-"
        lines.append(f"| {r['method']} | {r['what']} | {r.get('training', '-')} | {seeds} | "
                     + " | ".join(_pct(r[m], r[f"{m}_std"]) for m in METRICS) + " |")
    return "\n".join(lines)


def comparison_sources(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown bullets: where each method's numbers come from (file, command, commit), or how to record them."""
    lines = []
    for r in rows:
        if r["recorded"]:
            cmds = "; ".join(f"`{c}`" + (f" for `{values}`" if values else "")
                             for c, values in grouped_commands(r["commands"]))
            lines.append(f"- **{r['method']}**: `results/{r['source']}` (seeds {','.join(map(str, r['seeds']))}; "
                         f"teacher {r['teacher']}), written by {cmds} at commit {', '.join(r['commits'])}")
        else:
            lines.append(f"- **{r['method']}**: not recorded yet (no `results/{r['source']}`); record it with "
                         f"`{r['command']}`")
    return "\n".join(lines)


def comparison_setting(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """``teacher`` and ``data`` for the figure's title, from the recorded rows."""
    recorded = [r for r in rows if r["recorded"]]
    teachers = sorted({r["teacher"] for r in recorded})
    seeds = sorted({s for r in recorded for s in r["seeds"]})
    data = (f"{RECORDING['dataset']}, {RECORDING['image_size']}x{RECORDING['image_size']}, seeds "
            f"{','.join(map(str, seeds))}" if seeds else f"{RECORDING['dataset']} (nothing recorded yet)")
    return {"teacher": " / ".join(teachers) if teachers else RECORDING["teacher"], "data": data}


def comparison_prose(rows: Sequence[dict[str, Any]]) -> str:
    """A paragraph that says, from the numbers, what distillation buys over the memory bank (Markdown)."""
    by = {r["method"]: r for r in rows}
    pc, ds = by.get("PatchCore"), by.get("DS")
    parts = []
    missing = [r for r in rows if not r["recorded"]]
    if pc is None or not pc["recorded"]:
        return ("The PatchCore baseline is **not recorded yet**; record it with "
                f"`{baseline_command()}` and rerun this page.")
    names = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "pro": "PRO"}
    if ds is not None and ds["recorded"]:
        diffs = {m: 100 * (ds[m] - pc[m]) for m in METRICS}
        better = [names[m] for m in METRICS if diffs[m] > 0]
        worse = [names[m] for m in METRICS if diffs[m] < 0]
        detail = ", ".join(f"{names[m]} {diffs[m]:+.1f}" for m in METRICS)
        if len(better) == 3:
            verdict = "DS is ahead of the memory bank on all three metrics"
        elif not better:
            verdict = "the memory bank is ahead of DS on all three metrics: on this data, distillation buys nothing"
        else:
            verdict = f"DS is ahead on {' and '.join(better)} and behind on {' and '.join(worse)}"
        parts.append(f"With the same teacher ({pc['teacher']}), {verdict} (DS minus PatchCore, points: {detail}; "
                     f"DS trained {ds['training']}, seeds {','.join(map(str, ds['seeds']))}; PatchCore seeds "
                     f"{','.join(map(str, pc['seeds']))}).")
        seedwise = [(a, b) for a, b in zip(ds["image_auroc_per_seed"], pc["image_auroc_per_seed"])]
        if seedwise and ds["seeds"] == pc["seeds"]:
            wins = sum(a > b for a, b in seedwise)
            parts.append(f"Seed by seed (the same MT Defects split), DS's image AUROC is higher in {wins} of "
                         f"{len(seedwise)}.")
    for r in rows:
        if r["method"] in ("T-E", "T-D") and r["recorded"]:
            d = 100 * (r["image_auroc"] - pc["image_auroc"])
            parts.append(f"{r['method']} ({r['what']}, {r['training']}) is {abs(d):.1f} points "
                         f"{'above' if d > 0 else 'below'} PatchCore in image AUROC.")
    if missing:
        by_command: dict[str, list[str]] = {}
        for r in missing:
            by_command.setdefault(r["command"], []).append(r["method"])
        parts.append("Not recorded yet: " + "; ".join(f"{' and '.join(methods)} (`{command}`)"
                                                      for command, methods in by_command.items()) + ".")
    return " ".join(parts)
