"""Judge candidate teachers on MT Defects (issue "A teacher worth distilling from without ImageNet").

For each candidate (``random``, ``imagenet`` where its weights are at hand, or a weights file written by
``dskd pretrain-teacher``) this measures

1. the teacher alone: image AUROC of a 1-nearest-neighbour detector on its pooled conv3_x/conv4_x
   features (:func:`dskd.pretrain.knn_image_auroc`), seconds;
2. optionally DS trained with that teacher at a fixed short budget (``--ds-epochs``), evaluated with the
   paper's three metrics (minutes per epoch on a CPU).

Each candidate's record (metrics, the weights' SHA-256 and pretraining recipe, provenance) is added to
``results/teacher/candidates.json``; records of other candidates are kept, so candidates can be judged
in pieces. Usage::

    python benchmarks/teacher_candidates.py random runs/teacher/fractal.pt --ds-epochs 3
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

REPO = Path(__file__).resolve().parents[1]
try:
    import dskd  # noqa: F401  (only to test that the package is installed)
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

from dskd.config import TrainConfig  # noqa: E402
from dskd.evaluation import evaluate  # noqa: E402
from dskd.models import TeacherPyramid, teacher_weights_from_name  # noqa: E402
from dskd.pretrain import knn_image_auroc  # noqa: E402
from dskd.provenance import provenance, write_json  # noqa: E402
from dskd.training import data_description, dataset_for, train  # noqa: E402


def _pretrain_record(candidate: str) -> Optional[dict[str, Any]]:
    """The provenance JSON written beside a pretrained teacher, if there is one."""
    from dskd.models.teacher import OFFLINE_TEACHER_PATH

    path = OFFLINE_TEACHER_PATH if candidate == "offline-pretrained" else Path(candidate)
    meta = path.with_suffix(".json")
    if candidate in ("random", "imagenet") or not meta.is_file():
        return None
    record = json.loads(meta.read_text())
    return {k: record.get(k) for k in ("recipe", "config", "sha256", "wall_seconds", "history", "provenance")}


def judge(candidate: str, base: TrainConfig, ds_epochs: int = 0, seed: int = 0,
          progress: bool = True) -> dict[str, Any]:
    """kNN proxy (and DS at ``ds_epochs`` when > 0) for one candidate teacher."""
    train_set, test_set = dataset_for(base, "train"), dataset_for(base, "test")
    started = time.perf_counter()
    torch.manual_seed(seed)  # the random teacher's weights (and DS's students) come from this seed
    teacher = TeacherPyramid(teacher_weights_from_name(candidate))
    record: dict[str, Any] = {"candidate": candidate, "seed": seed, "teacher": teacher.weights_description,
                              "pretraining": _pretrain_record(candidate),
                              "knn_image_auroc": knn_image_auroc(teacher, train_set, test_set),
                              "knn_seconds": round(time.perf_counter() - started, 1)}
    if ds_epochs > 0:
        cfg = base.replace(teacher=candidate, epochs=ds_epochs, seed=seed)
        result = train(cfg, progress=progress, train_set=train_set, cache_teacher=True)
        report = evaluate(result.model, test_set, batch_size=cfg.batch_size)
        record["ds"] = {"epochs": ds_epochs, "seed": seed, "image_auroc": report.image_auroc,
                        "pixel_auroc": report.pixel_auroc, "pro": report.pro,
                        "per_defect_type": report.per_defect_type, "train_seconds": round(result.seconds, 1),
                        "final_loss": result.history[-1]}
    record["provenance"] = provenance("cpu", data=data_description(base), image_size=base.image_size,
                                      wall_seconds=round(time.perf_counter() - started, 1))
    return record


def add_records(path: Path, new: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Merge ``new`` into the results file (a candidate judged again replaces its earlier record)."""
    data = json.loads(path.read_text()) if path.is_file() else {"records": []}
    names = {(r["candidate"], (r.get("ds") or {}).get("epochs", 0)) for r in new}
    data["records"] = [r for r in data["records"]
                       if (r["candidate"], (r.get("ds") or {}).get("epochs", 0)) not in names] + list(new)
    write_json(path, data)
    return data


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("candidates", nargs="+", help="'random', 'imagenet', 'offline-pretrained' or weights files")
    ap.add_argument("--data-root", help="MT Defects folder (default $DSKD_DATA/magnetic-tile)")
    ap.add_argument("--dataset", default="mt-defects", help="data set (default mt-defects; 'synthetic' for tests)")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--ds-epochs", type=int, default=0, help="also train DS for this many epochs (0: kNN only)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "results" / "teacher" / "candidates.json"))
    args = ap.parse_args(argv)
    extra = {"category": None} if args.dataset != "synthetic" else {"category": "disc", "n_train": 32, "n_test": 24}
    base = TrainConfig(dataset=args.dataset, data_root=args.data_root, image_size=args.image_size,
                       teacher="random", **extra)
    records = []
    for c in args.candidates:
        r = judge(c, base, args.ds_epochs, args.seed)
        ds = r.get("ds")
        print(f"{c}: kNN image AUROC {r['knn_image_auroc']:.3f}" + (
            f"; DS {ds['epochs']} epochs: image AUROC {ds['image_auroc']:.3f}, pixel AUROC {ds['pixel_auroc']:.3f}, "
            f"PRO {ds['pro']:.3f}" if ds else ""), flush=True)
        records.append(r)
        add_records(Path(args.out), [r])
    return 0


if __name__ == "__main__":
    sys.exit(main())
