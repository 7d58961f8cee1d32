"""The ablation chapters' studies at Table 5's budget: 40 epochs on MT Defects, bf16 training
(``results/ablations-40-epochs``, written by ``dskd ablate ... --epochs 40 --precision bf16``).

The chapters' main sections read the 5-epoch studies (``results/ablations``, three seeds each, cheap
to rerun); these functions put the same studies at 40 epochs beside them, and say plainly how many
seeds the longer records hold so far and whether the order of the variants moved.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..ablation import StudyResults, ablate_command, load_study, order_by
from ..build_choices import BUILD_CHOICES, VERDICT_SEEDS, BuildVerdict, build_verdict, default_variant
from ..config import LEGACY_VALUES, TrainConfig
from ..results import results_path, shown_path

#: where the 40-epoch studies live (under results/), and how they are trained
LONGER_FOLDER = ("ablations-40-epochs", "mt-defects")
LONGER_EPOCHS = 40
LONGER_PRECISION = "bf16"
#: the studies each ablation chapter shows at 40 epochs (notebook stem -> studies)
CHAPTER_STUDIES: dict[str, tuple[str, ...]] = {
    "10_ablation_architecture": ("architecture", "pairs"),
    "11_ablation_dfe": ("dfe", "dfe-blocks", "dfe-input"),
    "12_ablation_layers": ("layers",),
    "13_ablation_extras": ("decoder-gradient",),
}


def longer_budget_command(study: str) -> str:
    """The command that records ``study`` at 40 epochs (three seeds, bf16)."""
    return (f"{ablate_command(study, epochs=LONGER_EPOCHS)} --precision {LONGER_PRECISION} "
            f"--out-dir results/{LONGER_FOLDER[0]}")


def longer_budget_study(study: str, folder: Optional[Path] = None) -> StudyResults:
    """``study`` as recorded at 40 epochs (``present`` False when it is not recorded yet)."""
    return load_study(folder if folder is not None else results_path(*LONGER_FOLDER), study)


def longer_budget_markdown(longer: StudyResults, shorter: Optional[StudyResults] = None) -> str:
    """What the 40-epoch records hold (table, commands, commit) and, where the 5-epoch study is there too,
    whether the order of the variants by image AUROC held; or, when nothing is recorded, the command."""
    heading = f"**{longer.study}** at {LONGER_EPOCHS} epochs. "
    if not longer.present:
        return (heading + f"No record yet: there is no `{shown_path(longer.path)}`. It is recorded with\n\n```bash\n"
                f"{longer_budget_command(longer.study)}\n```\n\nand this section fills in from the file when the "
                "chapter runs again.")
    n_seeds = len(longer.seeds)
    parts = [heading + longer.markdown()]
    if n_seeds < 3:
        spread = ("there is no spread over seeds yet to measure a difference against" if n_seeds == 1 else
                  "the ± is the spread of two runs, a rough yardstick for a difference")
        parts.append(f"So far {n_seeds} seed{'s' if n_seeds != 1 else ''} ({', '.join(map(str, longer.seeds))}) "
                     f"of the three: {spread}, so read the order of the variants, not small gaps. The remaining "
                     f"seeds are recorded by the same command with `--seeds` naming them.")
    if shorter is not None and shorter.present:
        at_5, at_40 = order_by(shorter.rows), order_by(longer.rows)
        common = [v for v in at_40 if v in at_5]
        same = [v for v in at_5 if v in common] == common
        epochs = "/".join(map(str, shorter.epochs))
        parts.append(f"By image AUROC, best first: {' > '.join(common)} at {LONGER_EPOCHS} epochs; "
                     + ("the same order as " if same else f"{' > '.join(v for v in at_5 if v in common)} ")
                     + f"at {epochs} epochs (above)"
                     + ("." if same else ": the longer training changed the order."))
    return "\n\n".join(parts)


def longer_budget_caption(longer: StudyResults) -> str:
    """The caption under a 40-epoch study's figure: what is drawn and what to compare."""
    return (f"*{longer.study} ({longer.description}; teacher {longer.teacher}): one "
            f"group per metric, one bar per variant, each seed a dot. Compare the order of the bars with the "
            f"5-epoch figure above: a variant that only pays off with longer training moves up here.*")


def build_verdict_markdown(verdict: BuildVerdict, *, with_rule: bool = True) -> str:
    """Which variant of a build-choice study the package's default builds, what the paper's text reads,
    and what the 40-epoch records say so far under the rule that decides (stated when ``with_rule``; a
    chapter with several build choices states it once)."""
    reading = BUILD_CHOICES[verdict.study]
    head = (f"**Which build is the default.** `TrainConfig()` builds *{verdict.package_variant}* "
            f"(`{reading.option}`); the paper's text reads *{reading.text_variant}*: {reading.source}.")
    if with_rule:
        head += (f" The rule, set before the three-seed records came in: with {VERDICT_SEEDS} seeds of each variant, "
                 f"one ahead in image AUROC by more than the spread over seeds (the larger standard deviation) "
                 f"wins; where neither is, the paper's text decides.")
    lead = " Under that rule, " if with_rule else " Under the rule above, "
    if not verdict.decided:
        held = ("there is no record of both variants yet" if verdict.n_seeds == 0 else
                f"the records hold {verdict.n_seeds} seed{'s' if verdict.n_seeds != 1 else ''} of each so far")
        return head + f"{lead}{held}: nothing is decided, and the default stays as it is."
    gap = abs(max(verdict.means.values()) - min(verdict.means.values()))
    if verdict.by == "the records":
        why = (f"{lead}with {verdict.n_seeds} seeds, *{verdict.variant}* is ahead by {gap:.3f}, more than the "
               f"spread ({verdict.spread:.3f}): the records decide.")
    else:
        why = (f"{lead}with {verdict.n_seeds} seeds, the gap ({gap:.3f}) is within the spread ({verdict.spread:.3f}): "
               f"the records cannot choose, so the paper's text does: *{verdict.variant}*.")
    if verdict.agrees:
        earlier = default_variant(verdict.study, TrainConfig(**{reading.option: LEGACY_VALUES[reading.option]}))
        if earlier != verdict.variant:
            return head + why + (f" The default builds it; runs recorded before it changed built *{earlier}*, and "
                                 f"Table 5 was recorded again with the new build (chapter 15).")
        return head + why + " The default builds it."
    return head + why + (f" The default still builds *{verdict.package_variant}*: it changes together with Table 5, "
                         f"re-recorded with the new build (chapter 15).")


#: where benchmarks/batchnorm_check.py's records of the 40-epoch study runs live (under results/)
BATCHNORM_CHECKS = ("verification",)


def batchnorm_checks(study: str, folder: Optional[Path] = None) -> list[dict]:
    """The BatchNorm checks recorded for ``study``'s runs (``batchnorm_<study>_*.json``), by variant and seed."""
    folder = folder if folder is not None else results_path(*BATCHNORM_CHECKS)
    checks = [json.loads(p.read_text()) for p in sorted(Path(folder).glob(f"batchnorm_{study}_*.json"))]
    return sorted((c for c in checks if c.get("study") == study), key=lambda c: (c["seed"], c["variant"]))


def batchnorm_check_markdown(study: str, folder: Optional[Path] = None) -> str:
    """What the BatchNorm checks of ``study``'s runs found (``""`` when there are none): per checked run,
    the eval-mode loss against the training-mode one, the layer whose running statistics drifted most,
    and the metrics before and after the statistics were recomputed over the training split."""
    checks = batchnorm_checks(study, folder)
    if not checks:
        return ""
    lines = []
    for c in checks:
        before, after = c["as_recorded"], c["statistics_recomputed_over_the_training_split"]
        layer, drift = next(iter(before["drift"].items()))
        drifted = (f"the largest drift is in `{layer}`, whose input varies {drift:,.0f} times as much as its "
                   f"running variance says" if drift >= 10 else
                   f"no student layer's input varies more than {drift:.2f} times its running variance")
        lines.append(
            f"- *{c['variant']}*, seed {c['seed']}: on training images the eval-mode loss is "
            f"{before['losses']['eval_over_train']:.2f} times the training-mode one; {drifted}. With the "
            f"statistics recomputed (no weight changed): eval-mode loss "
            f"{after['losses']['eval_over_train']:.2f} times the training-mode one, image AUROC "
            f"{before['image_auroc']:.3f} -> {after['image_auroc']:.3f}, pixel AUROC {before['pixel_auroc']:.3f} -> "
            f"{after['pixel_auroc']:.3f}."
            + (" No drift, so this is not a network that differs from the one trained; yet the recomputed statistics "
               "lift it, so BatchNorm's running averages still carry part of the failure." if drift < 10 and
               after["image_auroc"] - before["image_auroc"] > 0.05 else ""))
    return ("**Is the eval-mode network the one that was trained?** BatchNorm normalises with batch statistics "
            "in training and with running averages at test time; where the activations outgrew those averages, "
            "the maps come from a different network than the loss trained (`dskd.diagnostics`, recorded by "
            "`benchmarks/batchnorm_check.py` in `results/verification/`):\n\n" + "\n".join(lines))
