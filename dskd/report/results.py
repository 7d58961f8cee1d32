"""Chapter 15's reading of the recorded runs: what has been run, the learning curves, the seed continued past
Table 5's budget, and the discussion of every gap between the paper's Tables 1-5 and ours.

:class:`ResultsReport` reads a results folder once (``dskd reproduce``'s files, through
:func:`dskd.reproduce.build_tables` and :func:`~dskd.reproduce.collect_results`) and returns Markdown; the
chapter shows it and draws the figures of :mod:`dskd.plotting`. Tested on the fake result trees of
``tests/test_results_figures.py``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..config import TrainConfig
from ..data.magnetic_tile import MT_TRAIN_FRACTION
from ..paper_results import MVTEC3D_PAPER_ORDER, MVTEC_PAPER_ORDER, OURS, TABLE1, TABLE3, TABLE5
from ..reproduce import (BENCHMARKS, build_tables, collect_results, paper_gaps, reproduce_command, seed_comparison,
                         seed_comparison_markdown, table_markdown)
from ..results import results_root
from .runs import build_label
from .teacher import how_it_learned

#: the paper's image size per benchmark (Sec. 4.1.1)
PAPER_SIZE = {"mt-defects": 128, "mvtec": 256, "mvtec3d": 256}
METRIC = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "pro": "PRO"}
#: the PRO codes that `dskd reproduce` records beside the exact one (chapter 9)
PRO_CODES = {"exact": "exact (ours, the tables')", "rd4ad": "RD4AD's, per image",
             "rd4ad_global": "RD4AD's, once over the set", "stpm": "STPM's, rescaled"}
#: the folder of the seed continued past Table 5's budget, inside the results folder
LONGER_FOLDER = "mt-defects-100-epochs"
#: Table 5's runs of the build before the default changed (raw DFE input, l_d through S_e), kept when Table 5
#: was re-recorded: as first trained (fp32), and the same runs in bf16 (chapter 14)
EARLIER_FOLDERS = ("mt-defects-fp32", "mt-defects-bf16")


def values(runs: Sequence[dict[str, Any]], name: str) -> list[Any]:
    """The distinct values of one field over the runs of a table, sorted."""
    return sorted({r[name] for r in runs if r.get(name) is not None}, key=str)


def joined(vals: Sequence[Any], fmt: Callable[[Any], str] = str) -> str:
    return ", ".join(fmt(v) for v in vals) if vals else "none"


def duration(seconds: float) -> str:
    """'45 s', '12 min' or '3.4 h'."""
    return f"{seconds:.0f} s" if seconds < 120 else (f"{seconds / 60:.0f} min" if seconds < 7200 else
                                                      f"{seconds / 3600:.1f} h")


def command_out_dir(root: os.PathLike) -> str:
    """The ``--out-dir`` that printed commands name: 'results' for the repository's own folder (commands run
    from the repository root), else the folder itself."""
    repo_results = Path(__file__).resolve().parents[2] / "results"
    return "results" if Path(root).resolve() == repo_results.resolve() else str(root)


def _size(v: Any) -> str:
    return f"{v}x{v}"


@dataclass
class ResultsReport:
    """Every recorded ``dskd reproduce`` run of a results folder, and the prose chapter 15 builds from it."""

    root: Path
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: dict[str, dict[Optional[str], list[dict[str, Any]]]] = field(default_factory=dict)
    #: per seed continued past Table 5's budget: its Table 5 epoch, last epoch, change, image AUROC swing
    continued: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, root: Optional[os.PathLike] = None) -> "ResultsReport":
        """Read ``root`` (default: :func:`dskd.results.results_root`) once: tables and records per benchmark."""
        root = Path(root) if root is not None else results_root()
        report = cls(root)
        for bench in BENCHMARKS:  # mt-defects -> table5, mvtec -> table1, table2, mvtec3d -> table3, table4
            report.tables.update(build_tables(root, bench, command_out_dir=command_out_dir(root)))
            report.records[bench] = collect_results(root, bench)
        report.continued = [c for r in report.longer_records() if (c := report._continued(r))]
        return report

    # ------------------------------------------------------------------ what has been run
    def files_summary(self) -> str:
        """One line per benchmark: how many result files it holds, and where."""
        return "\n".join(f"{bench:>10}: {sum(len(v) for v in self.records[bench].values())} result file(s) under "
                         f"{self.root / bench}" for bench in BENCHMARKS)

    def table(self, key: str) -> str:
        """The package's Markdown table ('table1' ... 'table5'), its heading turned into a bold caption."""
        title, body = table_markdown(self.tables[key], generated=False).split("\n", 1)
        return f"**{title.lstrip('# ')}**\n{body}"

    def overview(self) -> str:
        """The table of what has been run, one row per benchmark, and a sentence on the total."""
        rows = []
        for bench, info in BENCHMARKS.items():
            runs = self.tables[info["tables"][0]]["runs"]
            cats = [c for c in info["categories"] if c in self.records[bench]]
            n_cat = len(info["categories"]) if bench != "mt-defects" else 1
            rows.append(f"| {bench} | {', '.join(t.replace('table', 'Table ') for t in info['tables'])} | "
                        f"{len(runs)} | {len(cats)} of {n_cat} | {joined(values(runs, 'teacher'))} | "
                        f"{joined(values(runs, 'epochs'))} | {joined(values(runs, 'image_size'), _size)} | "
                        f"{joined(values(runs, 'device'))} |")
        n_all = sum(len(self.tables[BENCHMARKS[b]["tables"][0]]["runs"]) for b in BENCHMARKS)
        total = ("No result file of ours exists yet: every table below shows the paper's numbers and the command "
                 "that fills our column." if n_all == 0 else
                 f"{n_all} result file(s) in all. A benchmark without files shows the paper's numbers and the "
                 "command that fills our column; the others show our numbers, starred where the run was not at the "
                 "paper's setting.")
        return ("| benchmark | paper's tables | result files | categories run | teacher weights | epochs | image size "
                "| device |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n\n" + total)

    # ------------------------------------------------------------------ MT Defects: per type, curves
    def per_defect_type(self) -> str:
        """The caption of the per-defect-type chart and its lowest type per metric, or the command that fills it."""
        t5 = self.tables["table5"]
        if not t5["ours"]:
            return (f"No MT Defects result file yet, so there is no per-defect-type breakdown. `{t5['command']}` "
                    "writes `results/mt-defects/seed0.json`, with image AUROC, pixel AUROC and PRO for each of the "
                    "five defect types; this cell then draws them (`plot_per_defect_type`).")
        pt = t5["per_defect_type"]
        worst = {m: min(pt, key=lambda t: pt[t][m]["value"] if pt[t][m]["value"] is not None else float("inf"))
                 for m in METRIC}
        return ("*Bars: each defect type scored against all normal test images; solid lines: our value over all "
                "types; dotted: the paper's (it gives no per-type numbers).* The lowest type is "
                f"**{worst['image_auroc']}** for image AUROC ({pt[worst['image_auroc']]['image_auroc']['value']:.1f}), "
                f"**{worst['pixel_auroc']}** for pixel AUROC ({pt[worst['pixel_auroc']]['pixel_auroc']['value']:.1f}) "
                f"and **{worst['pro']}** for PRO ({pt[worst['pro']]['pro']['value']:.1f}).")

    def build_change(self) -> str:
        """What moved when Table 5 was re-recorded with today's default build (chapters 11 and 13): seed by seed
        against the earlier build's runs in the same precision, then mean against mean and the seed spread."""
        now = self.mt_records()
        if not now:
            return ""
        default = TrainConfig().build_label()
        builds = sorted({build_label(r["config"]) for r in now})
        if builds != [default]:
            return (f"Table 5 holds runs of the build *{'*, *'.join(builds)}*, and the package's default now builds "
                    f"*{default}* (chapters 11 and 13): Table 5 is due to be re-recorded with it, by "
                    f"`{self.tables['table5']['command']}`.")
        earlier = self.earlier_records()
        if not earlier:
            return f"Every run of Table 5 builds today's default, *{default}*; no run of another build is recorded."
        precisions = {TrainConfig.from_dict(r["config"]).precision for r in now}
        folder = next((f for f, recs in earlier.items()
                       if {TrainConfig.from_dict(r["config"]).precision for r in recs} == precisions), next(iter(earlier)))
        before = earlier[folder]
        old = build_label(before[0]["config"])
        text = (f"Table 5 above was re-recorded when the package's default build changed from *{old}* to *{default}* "
                "(the first word: what the DFE embeds, $S_e$'s raw features or the $\\ell_2$-normalised ones of "
                "Algorithm 2; the second: whether $\\ell_d$ also trains $S_e$, *joint*, or only the DFE and $S_d$, "
                "*separate*). Chapters 11 and 13 give the studies and the rule that chose it. Against the earlier "
                f"build's runs in the same precision (`results/{folder}/`), seed by seed (points, earlier → now):\n\n"
                "| seed | image AUROC | pixel AUROC | PRO |\n| --- | --- | --- | --- |\n")
        by_seed = {r["seed"]: r for r in before}
        for r in sorted(now, key=lambda r: r["seed"]):
            b = by_seed.get(r["seed"])
            if b is None:
                continue
            cells = [f"{100 * b['metrics'][m]:.1f} → {100 * r['metrics'][m]:.1f} "
                     f"({100 * (r['metrics'][m] - b['metrics'][m]):+.1f})" for m in METRIC]
            text += f"| {r['seed']} | " + " | ".join(cells) + " |\n"
        comparison = seed_comparison(before, now, labels=(old, default))
        text += "\n" + seed_comparison_markdown(comparison, difference="change")
        paired = [(by_seed[r["seed"]]["metrics"]["image_auroc"], r["metrics"]["image_auroc"], r["seed"])
                  for r in now if r["seed"] in by_seed]
        row = next(r for r in comparison["rows"] if r["metric"] == "image_auroc")
        if len(paired) > 1 and row[f"{old}_std"] is not None and row[f"{default}_std"] is not None:
            low = min(paired)
            text += (f" Image AUROC moved by {100 * (low[1] - low[0]):+.1f} points on the seed the earlier build "
                     f"scored lowest (seed {low[2]}), and its spread over seeds went from {row[f'{old}_std']:.1f} "
                     f"to {row[f'{default}_std']:.1f} points.")
        others = [f"`results/{f}/` ({TrainConfig.from_dict(recs[0]['config']).precision}, {len(recs)} seeds): image "
                  f"AUROC {100 * np.mean([r['metrics']['image_auroc'] for r in recs]):.1f}"
                  for f, recs in earlier.items() if f != folder]
        if others:
            text += " The earlier build's other runs: " + "; ".join(others) + "."
        return text

    def mt_records(self) -> list[dict[str, Any]]:
        return [r for recs in self.records["mt-defects"].values() for r in recs]

    def curve_records(self) -> list[dict[str, Any]]:
        """The MT Defects records that hold a learning curve (``--eval-every``)."""
        return [r for r in self.mt_records() if r.get("training", {}).get("curve")]

    def learning_curve(self) -> str:
        """The learning curves' caption, mean ± std per epoch, and the swing within a seed."""
        with_curve = self.curve_records()
        if not with_curve:
            return ("The recorded MT Defects runs hold no learning curve. `dskd reproduce mt-defects --eval-every 5 "
                    "...` (the recorded command plus that option) scores the test split every 5 epochs and stores "
                    "the points in the result file; this cell then draws them.")
        by_epoch: dict[int, dict[int, dict[str, float]]] = {}
        for r in with_curve:
            for p in r["training"]["curve"]:
                by_epoch.setdefault(p["epoch"], {})[r["seed"]] = p
        full = [e for e in sorted(by_epoch) if len(by_epoch[e]) == len(with_curve)]
        rows = "\n".join(f"| {e} | " + " | ".join(f"{np.mean([p[m] for p in by_epoch[e].values()]):.3f} ± "
                                                  f"{np.std([p[m] for p in by_epoch[e].values()]):.3f}"
                                                  for m in METRIC) + " |" for e in full)
        last = max(by_epoch)

        def swing(m: str) -> float:  # the largest range of one seed's scores over the second half of the run
            late = [[p[m] for p in r["training"]["curve"] if p["epoch"] > last / 2] for r in with_curve]
            return max((max(v) - min(v) for v in late if v), default=0.0)

        return (f"*One line per seed, the mean in black; dotted: the paper's value after 200 epochs (ImageNet "
                f"teacher). Look at where each curve flattens, and how far the seeds scatter around it.*\n\n"
                f"Mean ± standard deviation over the {len(with_curve)} seeds, at the epochs every seed was scored:\n\n"
                f"| epoch | image AUROC | pixel AUROC | PRO |\n| --- | --- | --- | --- |\n{rows}\n\n"
                f"Within one seed, over the second half of the run, image AUROC ranges over up to "
                f"{swing('image_auroc'):.3f}, pixel AUROC over {swing('pixel_auroc'):.3f} and PRO over "
                f"{swing('pro'):.3f}. The image score is one maximum per map (Eq. 10), so it follows the few "
                f"brightest pixels of each image; the pixel metrics average over all of them. The last epoch "
                f"({last}) is the one the table reports.")

    # ------------------------------------------------------------------ the seed continued past Table 5
    def longer_records(self) -> list[dict[str, Any]]:
        """The seeds continued past Table 5's budget (``results/mt-defects-100-epochs/``), with their curves."""
        return [r for recs in collect_results(self.root / LONGER_FOLDER, "mt-defects").values() for r in recs
                if r["training"].get("curve")]

    def earlier_records(self) -> dict[str, list[dict[str, Any]]]:
        """Table 5's runs of other builds than today's Table 5, by folder (:data:`EARLIER_FOLDERS`)."""
        now = {build_label(r["config"]) for r in self.mt_records()}
        found = {}
        for folder in EARLIER_FOLDERS:
            recs = [r for recs in collect_results(self.root / folder, "mt-defects").values() for r in recs
                    if build_label(r["config"]) not in now]
            if recs:
                found[folder] = recs
        return found

    def _short_run(self, record: dict[str, Any]) -> Optional[tuple[int, Optional[str]]]:
        """The shorter run a continued record resumed from: (its epochs, its folder if not Table 5's)."""
        curve = {p["epoch"] for p in record["training"]["curve"]}

        def same_job(short: dict[str, Any]) -> bool:  # the same config but for the budget
            return (short["training"]["epochs"] in curve and TrainConfig.from_dict(short["config"]).replace(epochs=1)
                    == TrainConfig.from_dict(record["config"]).replace(epochs=1))

        for folder, recs in [(None, self.mt_records())] + list(self.earlier_records().items()):
            short = [s["training"]["epochs"] for s in recs if same_job(s)]
            if short:
                return short[0], folder
        return None

    def _continued(self, record: dict[str, Any]) -> Optional[dict[str, Any]]:
        short = self._short_run(record)
        if short is None:
            return None
        e0, folder = short
        curve = {p["epoch"]: p for p in record["training"]["curve"]}
        e1 = record["training"]["epochs"]
        late = [p["image_auroc"] for e, p in curve.items() if e > e1 / 2]
        return {"seed": record["seed"], "from": e0, "to": e1, "folder": folder,
                "change": {m: curve[e1][m] - curve[e0][m] for m in METRIC}, "swing": max(late) - min(late)}

    def longer_budget(self, record: dict[str, Any]) -> str:
        """One continued seed: caption, its curve as a table (every 10th epoch when long), the change since
        its Table 5 epoch."""
        curve = {p["epoch"]: p for p in record["training"]["curve"]}
        step = 10 if len(curve) > 12 else 1
        shown = [e for e in sorted(curve) if e % step == 0 or e == max(curve)]
        rows = "\n".join(f"| {e} | " + " | ".join(f"{curve[e][m]:.3f}" for m in METRIC) + " |" for e in shown)
        start = record["training"]["resumed_from_epoch"]
        where = (f"epochs {start + 1} to {record['training']['epochs']} trained on" if start else "trained on")
        text = (f"*Seed {record['seed']} trained to {record['training']['epochs']} epochs (teacher "
                f"`{record['provenance']['teacher']}`; {where} `{record['provenance']['training']['device']}`); "
                f"dotted: the paper's values after 200 epochs with an ImageNet teacher. Look at whether the curves "
                f"still rise at the right-hand end.*\n\n| epoch | image AUROC | pixel AUROC | PRO |\n"
                f"| --- | --- | --- | --- |\n{rows}\n\n")
        c = self._continued(record)
        if c:
            run = ("this seed's Table 5 run" if c["folder"] is None else
                   f"this seed's run of the earlier build, *{build_label(record['config'])}*, in "
                   f"`results/{c['folder']}/`")
            text += (f"From epoch {c['from']} ({run}, whose checkpoint it continued) to epoch "
                     f"{c['to']}: " + ", ".join(f"{METRIC[m]} {c['change'][m]:+.3f}" for m in METRIC)
                     + ". One seed: set it against the spread between seeds above before reading a change as the "
                     "effect of the budget.")
        return text

    @staticmethod
    def no_longer_budget() -> str:
        return ("No longer run is recorded. `dskd reproduce mt-defects --epochs 100 --seeds 0 --eval-every 5 "
                "--teacher offline-pretrained --out-dir results/mt-defects-100-epochs` continues seed 0 of Table 5 "
                "from its checkpoint (when `runs/` holds it) and this cell draws it.")

    # ------------------------------------------------------------------ the discussion of every gap
    def teacher_factor(self, runs: Sequence[dict[str, Any]]) -> str:
        if not runs:
            return ("**Teacher weights.** The fill command names `--teacher imagenet`, torchvision's "
                    "`ResNet18_Weights.IMAGENET1K_V1`. The paper says only that its ResNet18 was pretrained on "
                    "ImageNet, so even that run may not hold the authors' exact weights.")
        text = []
        for t in values(runs, "teacher"):
            if t.startswith("ImageNet"):
                text.append(f"`{t}`: torchvision's ImageNet ResNet18, the kind of teacher the paper used (it does not "
                            "say which ImageNet checkpoint)")
            elif t.startswith("offline-pretrained"):
                text.append(f"`{t}`: a teacher this package pretrained offline, **not** ImageNet: the shipped one "
                            f"learned by {how_it_learned()}, as the provenance file beside the weights with this "
                            "SHA-256 records. What a teacher knows is what makes its features tell "
                            "normal from defective (chapter 16), so these numbers measure this teacher, not the "
                            "paper's method with the paper's teacher, and are not comparable with the paper's")
            elif t.startswith("random"):
                text.append(f"`{t}`: a random teacher (random network distillation), not the paper's method; on real "
                            "data it scores near chance")
            else:
                text.append(f"`{t}`: a teacher from a local file, not the ImageNet weights named by the paper unless "
                            "that file holds them")
        return "**Teacher weights.** " + "; ".join(text) + "."

    def epochs_factor(self, runs: Sequence[dict[str, Any]], bench: str) -> str:
        if not runs:
            return "**Epochs.** The fill command trains 200 epochs, as the paper does (Sec. 4.1.2)."
        eps = values(runs, "epochs")
        if eps == [200]:
            return "**Epochs.** Our runs trained 200 epochs, as the paper's: no gap from the budget."
        costs = [f"{duration(r['train_seconds'] / r['epochs'] * 200)} on `{r['device']}`" for r in runs
                 if r.get("train_seconds") and r.get("epochs")]
        return (f"**Epochs.** Our runs trained {joined(eps)} epoch{'s' if eps != [1] else ''}; the paper trains 200. "
                "Students trained for fewer epochs have learned the normal images less well, which can lower the "
                "contrast between normal and defective regions; a gap from a short budget says little about the "
                "method. At the time per epoch that the result files record, 200 epochs would take about "
                f"{costs[0] if costs else 'an unrecorded time'} (training only, at the run's image size)."
                + (self.longer_budget_sentence() if bench == "mt-defects" else ""))

    def longer_budget_sentence(self) -> str:
        """The seed continued past Table 5's budget (section 5), as the epochs factor quotes it."""
        if not self.continued:
            return ""
        c = self.continued[0]
        moved = ", ".join(f"{METRIC[m]} {100 * v:+.1f}" for m, v in c["change"].items())
        swing, gain = 100 * c["swing"], 100 * c["change"]["image_auroc"]
        return (f" Seed {c['seed']}, continued from epoch {c['from']} to {c['to']} (section 5), moved by {moved} "
                f"points. Its image AUROC ranges over {swing:.1f} points in the second half of that run, "
                + ("more than the change, so one seed does not show a gain from the budget."
                   if abs(gain) <= swing else "less than the change."))

    @staticmethod
    def size_factor(runs: Sequence[dict[str, Any]], bench: str) -> str:
        size = PAPER_SIZE[bench]
        sizes = values(runs, "image_size")
        if not runs or sizes == [size]:
            return f"**Image size.** {size}x{size}, as the paper" + (" (in every result file)." if runs else ".")
        return (f"**Image size.** Our runs used {joined(sizes, _size)}; the paper uses {size}x{size}. Smaller images "
                "shrink small defects to a few pixels of the teacher's stride-4 level and blur their edges.")

    @staticmethod
    def split_factor(runs: Sequence[dict[str, Any]], bench: str) -> str:
        if bench == "mvtec":
            return ("**Split.** MVTec AD has an official split (train/good for training, test/* with masks for "
                    "testing); ours and the paper's are the same, so the split causes no gap.")
        if bench == "mvtec3d":
            return ("**Split.** The official MVTec 3D-AD split, RGB images only, as in the paper; the validation "
                    "folder is not used. The paper does not say whether it used the validation images; if it trained "
                    "on them too, its students saw more normal data.")
        split = values(runs, "split")
        recorded = f" The result files record: \"{split[0]}\"." if split else ""
        return ("**Split.** MT Defects has no official split and the paper gives none, so **no number of ours is "
                "strictly comparable with Table 5, even at the paper's setting.** Ours "
                f"(`dskd/data/magnetic_tile.py`) trains on {MT_TRAIN_FRACTION:.0%} of the defect-free images, drawn "
                f"with the run's seed, and tests on the rest of them and on every defective image.{recorded} Four "
                "MT_Uneven masks are empty in the published data: those images count as defective for image AUROC "
                "but add no defective pixel. The paper does not say where the numbers of its baselines (AE-SSIM, "
                "RIAD, FAVAE, DSN) come from or on which split they were run, so the rows of Table 5 may not share "
                "a split with each other either.")

    def pro_factor(self, key: str) -> Optional[str]:
        if key in ("table1", "table3"):
            return None
        text = ("**PRO code.** Ours is the exact PRO over the whole test set up to FPR 0.3 (chapter 9), checked "
                "against a slow loop and against anomalib. The paper does not say which code produced its PRO; the "
                "per-image code of RD4AD and the rescaled code of STPM give other numbers from the same maps.")
        recs = [r for rs in self.records[self.tables[key]["benchmark"]].values() for r in rs if r.get("pro_codes")]
        if not recs:
            return text + (" `dskd reproduce` records each code's number beside the exact one (`pro_codes` in the "
                           "result file).")
        mean = {c: 100 * np.nanmean([np.nan if r["pro_codes"][c] is None else r["pro_codes"][c] for r in recs])
                for c in PRO_CODES}
        moved = max(mean.values()) - min(mean.values())
        return (text + f" Scored by each code, the same maps of ours give (mean over {len(recs)} result file"
                f"{'s' if len(recs) > 1 else ''}): " + ", ".join(f"{PRO_CODES[c]} **{v:.1f}**" for c, v in mean.items())
                + f". The choice of code alone moves our number by {moved:.1f} points, so a PRO gap of that size or "
                "less says nothing about the method until the paper's code is known.")

    @staticmethod
    def seeds_factor(runs: Sequence[dict[str, Any]], gaps: Sequence[dict[str, Any]]) -> str:
        if not runs:
            return ("**Seeds.** The paper reports one number per cell, with no seed count or spread. `--seeds 0,1,2` "
                    "runs three seeds; the tables then show mean ± standard deviation.")
        seeds = values(runs, "seed")
        spread = [g for g in gaps if g["std"] is not None]
        if spread:
            top = max(spread, key=lambda g: g["std"])
            return (f"**Seeds.** Our cells average seeds {joined(seeds)}. The largest spread is ± {top['std']:.1f} "
                    f"({top['name']}, {METRIC[top['metric']]}); a gap smaller than the spread is not evidence of a "
                    "difference. The paper gives one number per cell and no spread.")
        return (f"**Seeds.** One seed ({joined(seeds)}) per cell, so the spread of our numbers is unknown; the paper "
                "gives no spread either. `--seeds 0,1,2` measures it.")

    def gaps_summary(self, key: str) -> str:
        t, gaps = self.tables[key], paper_gaps(self.tables[key])
        if not gaps:
            cmd = t["fill_missing"] or t.get("command")
            return (f"No run of ours for {t['table']} yet, so there is no gap to measure. `{cmd}` fills our column at "
                    "the paper's setting. What could still differ then:")
        lines = []
        for m in dict.fromkeys(g["metric"] for g in gaps):
            gm = [g for g in gaps if g["metric"] == m and g["diff"] is not None]
            if not gm:
                continue
            worst, best = min(gm, key=lambda g: g["diff"]), max(gm, key=lambda g: g["diff"])
            mean = sum(g["diff"] for g in gm) / len(gm)
            star = "" if all(g["paper_setting"] for g in gm) else ", not at the paper's setting"
            lines.append(
                f"{METRIC[m]}: ours minus the paper's is {gm[0]['diff']:+.1f} points ({gm[0]['ours']:.1f} against "
                f"{gm[0]['paper']:.1f}){star}" if len(gm) == 1 else
                f"{METRIC[m]} over {len(gm)} categories: ours minus the paper's is {mean:+.1f} points on average"
                f"{star}, from {worst['diff']:+.1f} ({worst['name']}) to {best['diff']:+.1f} ({best['name']})")
        n_cat = len({g["category"] for g in gaps})
        where = "" if key == "table5" else f" ({n_cat} categor{'y' if n_cat == 1 else 'ies'} with a run)"
        return f"Our runs{where}: " + "; ".join(lines) + ". What explains it:"

    def specific_factor(self, key: str) -> str:
        """What only this table adds to the six common causes."""
        if key == "table1":
            n_sat = sum(TABLE1[OURS][c] >= 99.5 for c in MVTEC_PAPER_ORDER)
            partial = self.tables["table1"]["mean"]["image_auroc"]
            so_far = (f"; the {partial['n_categories']} run so far average {partial['partial_mean']:.1f}, which does "
                      "not compare with the paper's mean over all 15." if partial["partial_mean"] is not None else ".")
            return (f"**Saturation and the mean.** The paper's DSKD is at 99.5 or more in {n_sat} of the 15 "
                    "categories; there is no room above, so any difference of ours there is a loss, decided by a few "
                    "misranked images. The mean row is filled only when all 15 categories have a run" + so_far)
        if key == "table2":
            return ("**Two metrics, two weightings.** Pixel AUROC weighs a large defect by its area, PRO weighs every "
                    "region the same; a gap in PRO but not in pixel AUROC points at small regions (thin scratches, "
                    "small holes) that our maps miss or blur.")
        if key == "table3":
            low = sorted(MVTEC3D_PAPER_ORDER, key=lambda c: TABLE3[OURS][c])[:2]
            return (f"**The hard categories.** The paper's own detection is weakest on {low[0]} "
                    f"({TABLE3[OURS][low[0]]}) and {low[1]} ({TABLE3[OURS][low[1]]}); with about 120 test images per "
                    "category on average, a few images decide a point there, in the paper's runs as in ours.")
        if key == "table4":
            return ("**The background.** The paper itself notes (Sec. 4.2.2) that the uniform dark background of the "
                    "RGB scans is easy to call normal and raises every pixel-level score; a gap in pixel AUROC here is "
                    "mostly a gap on the object's own pixels.")
        if key != "table5":
            raise KeyError(f"unknown table {key!r}: expected table1 ... table5")
        pt = self.tables["table5"]["per_defect_type"]
        if pt and all(pt[t]["pro"]["value"] is not None for t in pt):
            order = sorted(pt, key=lambda t: pt[t]["pro"]["value"])
            per_type = (f"**Per defect type.** Our PRO ranks the types {', '.join(order)} (lowest first). The paper "
                        "remarks (Sec. 4.2.3) that in fray the edges of a region light up but its uniform interior does "
                        "not; the gallery above shows whether our maps do the same.")
        else:
            per_type = ("**Per defect type.** The paper remarks (Sec. 4.2.3) that in fray the edges of a region light "
                        "up but its uniform interior does not, which lowers pixel AUROC and PRO; our per-type numbers "
                        "will show whether the rebuild has the same weakness.")
        dsn = TABLE5["DSN"]
        return (per_type + f" The paper's own pixel AUROC ({TABLE5[OURS][1]}) is far below DSN's ({dsn[1]}) although "
                f"its image AUROC is higher ({TABLE5[OURS][0]} against {dsn[0]}): ranking images and outlining "
                "defects are different skills.")

    def gap_section(self, key: str) -> str:
        """A table's subsection of the discussion: the measured gaps, then every cause checked against the files."""
        t = self.tables[key]
        runs = t["runs"]
        factors = [self.teacher_factor(runs), self.epochs_factor(runs, t["benchmark"]),
                   self.size_factor(runs, t["benchmark"]), self.split_factor(runs, t["benchmark"]),
                   self.pro_factor(key), self.seeds_factor(runs, paper_gaps(t)), self.specific_factor(key)]
        return f"### {t['table']}\n\n{self.gaps_summary(key)}\n\n" + "\n".join(f"- {f}" for f in factors if f)

    # ------------------------------------------------------------------ what is left to run
    def fill_commands(self) -> str:
        """The commands that fill what is empty, and those that rerun off-setting runs at the paper's setting."""
        todo = []
        for bench, info in BENCHMARKS.items():
            t = self.tables[info["tables"][0]]
            if t["benchmark"] == "mt-defects" and not t["ours"]:
                todo.append(t["command"])
            elif t.get("fill_missing") and t["benchmark"] != "mt-defects":
                todo.append(t["fill_missing"])
        text = ("```bash\n" + "\n".join(todo) + "\n```" if todo else "Every table has a run of ours.")
        off = {b: [r for r in self.tables[BENCHMARKS[b]["tables"][0]]["runs"] if not r["paper_setting"]]
               for b in BENCHMARKS}
        if any(off.values()):
            text += "\n\nThese recorded runs are not at the paper's setting (each with the command it recorded):\n\n"
            text += "\n".join(f"- `{r['command']}`" for b in BENCHMARKS for r in off[b])
            paper = [reproduce_command(b, [r["category"] for r in off[b]], out_dir="results-paper")
                     for b in BENCHMARKS if off[b]]
            text += ("\n\nTo run the paper's setting beside them, give it a folder of its own (or replace them with "
                     "`--overwrite`; into the same folder the command stops, since a result of another configuration "
                     "exists):\n\n```bash\n" + "\n".join(dict.fromkeys(paper)) + "\n```")
        return text

    def missing_figures(self, bench: str, fig_name: str) -> Optional[str]:
        """The sentence for categories of ``bench`` without a Fig. 5/6 gallery yet (None when none is missing)."""
        missing = [c for c in BENCHMARKS[bench]["categories"] if c not in self.records[bench]]
        if not missing:
            return None
        cmd = reproduce_command(bench, missing, out_dir=command_out_dir(self.root))
        return (f"{fig_name} layout for {bench}: no figure yet for {len(missing)} of "
                f"{len(BENCHMARKS[bench]['categories'])} categories. `{cmd}` writes "
                f"`results/{bench}/<category>/fig{fig_name[-1]}_seed0.png` for each.")

    def figure_files(self, bench: str) -> list[tuple[Optional[str], int, Path]]:
        """(category, seed, path) of every figure a run of ``bench`` wrote that is on disk."""
        found = []
        for cat, recs in self.records[bench].items():
            for rec in recs:
                folder = self.root / bench / (cat or "")
                found += [(cat, rec["seed"], folder / f) for f in rec.get("figures", []) if (folder / f).is_file()]
        return found
