"""BatchNorm's running statistics of a recorded study run: the loss on training images in training and
eval mode, the layers whose statistics drifted, and the metrics before and after the statistics are
recomputed over the training split (``dskd.diagnostics``). No weight is changed and nothing is trained:
the run must be finished in the run store (``$DSKD_CACHE``), as ``dskd ablate`` left it::

    DSKD_DATA=<folder holding magnetic-tile/> DSKD_CACHE=<run store> python benchmarks/batchnorm_check.py \\
        --study dfe-blocks --variant "2 blocks" --seed 0 \\
        --out results/verification/batchnorm_dfe-blocks_2-blocks_seed0.json
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
from dskd.diagnostics import batchnorm_drift, mode_losses, recompute_batchnorm_statistics  # noqa: E402
from dskd.evaluation import evaluate  # noqa: E402
from dskd.provenance import provenance, write_json  # noqa: E402
from dskd.runs import RunStore  # noqa: E402
from dskd.training import dataset_for, load_finished  # noqa: E402

METRICS = ("image_auroc", "pixel_auroc", "pro")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", required=True)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", default=str(REPO / "results" / "ablations-40-epochs" / "mt-defects"))
    ap.add_argument("--images", type=int, default=32, help="training images for the two losses and the drift")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    path = Path(args.results) / f"{args.study}.json"
    if not path.is_file():
        ap.error(f"no study file {path}")
    records = [r for r in json.loads(path.read_text())["records"]
               if r["variant"] == args.variant and r["seed"] == args.seed]
    if not records:
        ap.error(f"{path} has no record of variant {args.variant!r}, seed {args.seed}")
    record = records[0]
    cfg = TrainConfig.from_dict(record["config"])
    finished = RunStore().finished(cfg)
    if finished is None:
        ap.error(f"the run store ({RunStore().root}) holds no finished run {record['run_key']}: train it with the "
                 f"record's command first")
    model = load_finished(finished, cfg).model.eval()
    train_set, test_set = dataset_for(cfg, "train"), dataset_for(cfg, "test")
    images = torch.stack([train_set[i]["image"] for i in range(min(args.images, len(train_set)))])
    infer = cfg.inference().replace(**record.get("inference", {}))

    before = {"losses": mode_losses(model, images, cfg), "drift": batchnorm_drift(model, images)}
    fixed = recompute_batchnorm_statistics(model, train_set, batch_size=cfg.batch_size)
    after = {"losses": mode_losses(fixed, images, cfg), "drift": batchnorm_drift(fixed, images)}
    for state, net in (("before", model), ("after", fixed)):
        report = evaluate(net, test_set, infer, batch_size=cfg.batch_size)
        (before if state == "before" else after).update({m: getattr(report, m) for m in METRICS})
    out = {"study": args.study, "variant": args.variant, "seed": args.seed, "run_key": record["run_key"],
           "recorded": {m: record[m] for m in METRICS}, "as_recorded": before,
           "statistics_recomputed_over_the_training_split": after,
           "provenance": provenance("cpu", data=record["provenance"].get("data"), training=record["provenance"])}
    write_json(Path(args.out), out)
    for state, d in (("as recorded", before), ("statistics recomputed", after)):
        top = next(iter(d["drift"].items()))
        print(f"{state:>22}: loss train-mode {d['losses']['train']:.4f}, eval-mode {d['losses']['eval']:.4f} "
              f"(x{d['losses']['eval_over_train']:.2f}); largest drift {top[0]} x{top[1]:.1f}; "
              + ", ".join(f"{m} {d[m]:.4f}" for m in METRICS))
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
