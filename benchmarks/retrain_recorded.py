"""Retrain a recorded study run with today's code and compare its metrics with the record (issue "One
training loop": proof that the redesign changed nothing).

The recorded 5-epoch MT Defects runs were trained by ``train_or_load`` with fp32, the teacher-feature cache
and fused Adam in NCHW, one torch thread per process; this script trains the same config with the same
options and evaluates it as ``dskd ablate`` did::

    DSKD_DATA=<folder holding magnetic-tile/> python benchmarks/retrain_recorded.py \\
        --study architecture --variant DS --seed 0 --out results/verification/retrain_architecture_DS_seed0.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
try:
    import dskd  # noqa: F401
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))
from dskd.config import TrainConfig  # noqa: E402
from dskd.evaluation import evaluate  # noqa: E402
from dskd.provenance import provenance, write_json  # noqa: E402
from dskd.training import TrainOptions, dataset_for, fit  # noqa: E402

METRICS = ("image_auroc", "pixel_auroc", "pro")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", default="architecture")
    ap.add_argument("--variant", default="DS")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", default=str(REPO / "results" / "ablations" / "mt-defects"))
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # as the recorded runs
    records = json.loads((Path(args.results) / f"{args.study}.json").read_text())["records"]
    rec = next(r for r in records if r["variant"] == args.variant and r["seed"] == args.seed)  # the record
    cfg = TrainConfig.from_dict(rec["config"])
    result = fit(cfg, progress=False, options=TrainOptions(cache_teacher=True, channels_last=False, fused_adam=True,
                                                            keep_optimizer_state=False))
    report = evaluate(result.model, dataset_for(cfg, "test"), cfg.inference(), batch_size=cfg.batch_size)
    recorded = {m: rec[m] for m in METRICS}
    retrained = {m: getattr(report, m) for m in METRICS}
    payload = {
        "what": f"{args.study} study, variant {args.variant}, seed {args.seed}: the recorded run trained again",
        "recorded": recorded, "retrained": retrained,
        "difference": {m: retrained[m] - recorded[m] for m in METRICS},
        "identical": recorded == retrained, "history": result.history, "run_key": rec["run_key"],
        "recorded_commit": rec["provenance"]["git_commit"], "config": cfg.to_dict(),
        "provenance": provenance("cpu", teacher=report.teacher, seed=args.seed, epochs=cfg.epochs,
                                 training=result.provenance),
    }
    write_json(Path(args.out), payload)
    for m in METRICS:
        print(f"{m}: recorded {recorded[m]!r}, retrained {retrained[m]!r}")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
