"""Chapter 16's text: where the offline teacher's pretraining settings come from, which teachers are at hand,
what each teacher alone sees (1-NN image AUROC), the recorded candidates and teacher study, and the goal.

Every function takes what the chapter has already computed or loaded (the teachers' statuses, AUROCs, the
rows of :func:`dskd.teacher_study.candidate_rows` and :func:`dskd.ablation.summarize`) and returns Markdown,
or plain text where the chapter prints a command; the chapter draws the figures.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ..pretrain import PretrainConfig
from ..teacher_study import GOAL_IMAGE_AUROC, TEACHER_ORDER, TeacherStatus, goal_status
from .teacher import provenance_path

# ----------------------------------------------------------------------------- 16.2 the pretraining data


def offline_teacher_settings(path: Optional[os.PathLike] = None) -> tuple[Optional[dict[str, Any]], PretrainConfig]:
    """The shipped offline teacher's provenance (None where this installation lacks the file) and its
    :class:`PretrainConfig` (the default one without the file)."""
    path = Path(path) if path is not None else provenance_path()
    shipped = json.loads(path.read_text()) if path.is_file() else None
    return shipped, PretrainConfig(**shipped["config"]) if shipped else PretrainConfig()


def settings_source(shipped: Optional[dict[str, Any]], path: Optional[os.PathLike] = None) -> str:
    """'pretraining settings: ...': whether the settings shown are the shipped teacher's (from ``path``, the
    provenance file) or the default ones."""
    file_name = Path(path).name if path is not None else provenance_path().name
    where = (f"the shipped offline teacher's settings ({file_name}: recipe {shipped['recipe']!r})" if shipped
             else f"the default PretrainConfig ({file_name} is not in this installation)")
    return f"pretraining settings: {where}"


def settings_summary(pcfg: PretrainConfig) -> str:
    """One indented line: the recipe, the fractal data set's size, epochs, seed and the ssl settings."""
    return (f"  recipe {pcfg.recipe}, {pcfg.n_categories} categories x {pcfg.per_category} images at "
            f"{pcfg.image_size} px, {pcfg.epochs} epochs, seed {pcfg.seed}; ssl: sources {pcfg.ssl_sources}, "
            f"crops of at least {pcfg.ssl_min_scale:.0%} of the photo's area, grey with probability "
            f"{pcfg.ssl_grey}")


# ----------------------------------------------------------------------------- 16.3-16.4 the teachers alone


def missing_teachers_markdown(statuses: Mapping[str, TeacherStatus]) -> str:
    """One bullet per teacher that is not at hand (with how to get it), or that all three are."""
    missing = [s for s in statuses.values() if not s.available]
    if not missing:
        return "All three teachers are at hand."
    return "\n".join(f"- **{s.name} teacher: not available on this machine.** {s.message}" for s in missing)


def nearest_normal_markdown(aurocs: Mapping[str, float], pooled: Mapping[str, float], n_images: int) -> str:
    """What each teacher alone separates: patch 1-NN image AUROC (``aurocs``) and pooled 1-NN (``pooled``),
    per teacher name, on a subset of ``n_images`` test images; the random teacher is the reference."""
    got = {n: aurocs[n] for n in TEACHER_ORDER if n in aurocs}
    lines = [f"On this subset of {n_images} images the random teacher's features separate defective from "
             f"normal images with an image AUROC of {got['random']:.2f} (patch 1-NN; pooled: "
             f"{pooled['random']:.2f})."]
    for n in ("offline-pretrained", "imagenet"):
        if n in got:
            diff = got[n] - got["random"]
            lines.append(f"The {n} teacher reaches {got[n]:.2f} ({'+' if diff >= 0 else ''}{diff:.2f} against "
                         f"random; pooled: {pooled[n]:.2f}).")
        else:
            lines.append(f"The {n} teacher is not at hand here, so its panel is empty.")
    if len(got) > 1:
        lines.append(f"The largest value here is the {max(got, key=got.get)} teacher's.")
    if min(got.values()) < 0.5:
        lines.append("A value below 0.5 means that the normal test images score *higher* than the defective ones: "
                     "what such a teacher finds unusual is not the defects.")
    lines.append(f"With only {n_images} test images, a difference of a few hundredths is within the noise of the "
                 f"subset; the recorded runs of section 16.5 use the whole test split.")
    return " ".join(lines)


# ----------------------------------------------------------------------------- 16.5 the recorded comparisons


def _fmt(v: Optional[float], spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


def _took(seconds: Optional[float]) -> str:
    return "—" if seconds is None else f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def candidate_data(cands: Sequence[dict[str, Any]]) -> str:
    """The data sets the candidates were judged on, comma-separated."""
    return ", ".join(sorted({r["data"] for r in cands}))


def _candidate_cells(candidate: str, teacher: str) -> tuple[str, str]:
    """(candidate, weights) as the table shows them: a weights file by its name (not its folder), and the
    teacher description without that name again (``file x.pt (sha256 abc)`` -> ``sha256 abc``)."""
    name = candidate.replace("\\", "/").rsplit("/", 1)[-1]
    prefix = f"file {name} ("
    if teacher.startswith(prefix) and teacher.endswith(")"):
        teacher = teacher[len(prefix):-1]
    return name, teacher


def candidates_table(cands: Sequence[dict[str, Any]], file_name: str = "candidates.json") -> str:
    """The candidate teachers (rows of :func:`dskd.teacher_study.candidate_rows`): recipe, pretraining time,
    the 1-NN proxy and DS trained with each; '—' where not measured. The DS columns are left out, and the
    caption says so, when no candidate was trained with DS."""
    with_ds = any(r["ds_epochs"] for r in cands)
    lines = []
    for r in cands:
        name, weights = _candidate_cells(r["candidate"], r["teacher"])
        ds = (f"{r['ds_epochs'] or '—'} | {_fmt(r['ds_image_auroc'])} | {_fmt(r['ds_pixel_auroc'])} | "
              f"{_fmt(r['ds_pro'])} | " if with_ds else "")
        lines.append(f"| `{name}` | {r['recipe']} | {_took(r['pretrain_seconds'])} | {_fmt(r['knn_image_auroc'])} | "
                     f"{ds}{weights} |")
    head = ["candidate", "pretraining recipe", "pretraining time", "1-NN image AUROC"]
    head += ["DS epochs", "DS image AUROC", "DS pixel AUROC", "DS PRO"] if with_ds else []
    head += ["teacher weights"]
    no_ds = "" if with_ds else " No candidate has been trained with DS yet, so there are no DS columns."
    return ("| " + " | ".join(head) + " |\n|" + " --- |" * len(head) + "\n" + "\n".join(lines)
            + f"\n\n*From `{file_name}` (weights files by their name; the file holds their paths); data: "
              f"{candidate_data(cands)}. — = not measured.{no_ds}*")


def candidates_missing(path: os.PathLike) -> str:
    """What to print where the candidates file is missing: the command that writes it."""
    return (f"No candidates file ({path}). It is written by, for example:\n  python benchmarks/teacher_candidates.py "
            f"random offline-pretrained runs/teacher/offline_ssl.pt --ds-epochs 3\n(each candidate: 'random', "
            f"'imagenet', 'offline-pretrained' or a weights file of `dskd pretrain-teacher`)")


def teacher_study_table(rows: Sequence[dict[str, Any]], path: os.PathLike, study: Mapping[str, Any],
                        title: str = "") -> str:
    """The teacher study (rows of :func:`dskd.ablation.summarize`): mean ± std over seeds (no spread for one
    seed) and the teacher weights of each variant, after ``title`` (a bold line) where given."""
    body = "\n".join(
        f"| {r['variant']} | {r['n_seeds']} | {'/'.join(map(str, r['epochs']))} | "
        + " | ".join(f"{r[m]:.3f}" + (f" ± {r[m + '_std']:.3f}" if r["n_seeds"] > 1 else "")
                     for m in ("image_auroc", "pixel_auroc", "pro"))
        + f" | {'; '.join(r['teacher'])} |" for r in rows)
    path = Path(path)
    table = ("| variant | seeds | epochs | image AUROC | pixel AUROC | PRO | teacher weights |\n"
             "| --- | --- | --- | --- | --- | --- | --- |\n" + body
             + f"\n\n*Mean ± standard deviation over seeds, from "
               f"`{path.parent.parent.name}/{path.parent.name}/{path.name}` ({study.get('dataset', '?')}).*")
    return f"**{title}**\n\n{table}" if title else table


def teacher_study_missing(path: os.PathLike, longer: bool = False) -> str:
    """What to print where the teacher study (``longer``: its 40-epoch version) is missing: the command."""
    if longer:
        return (f"No 40-epoch teacher study ({path}). It is written by:\n  dskd ablate --study teacher --preset "
                f"paper --dataset mt-defects --epochs 40 --variants offline-pretrained,random --seeds 0,1,2 "
                f"--out-dir results/ablations-40-epochs")
    return (f"No teacher study ({path}). It is written by, for example:\n  dskd ablate --study teacher --preset "
            f"paper --dataset mt-defects --epochs <E> --variants offline-pretrained,random --seeds 0,1,2\n(add "
            f"'imagenet' to --variants where its weights are at hand)")


def defect_type_labels(rows: Sequence[dict[str, Any]], study: Mapping[str, Any]) -> dict[str, str]:
    """The ``teacher`` and ``data`` labels of the per-defect-type figure of a study."""
    return {"teacher": ", ".join(sorted({t for r in rows for t in r["teacher"]})),
            "data": f"{study.get('dataset', '?')}, "
                    f"{'/'.join(sorted({str(e) for r in rows for e in r['epochs']}))} epochs"}


def _random_row(rows: Sequence[dict[str, Any]]) -> Optional[dict[str, Any]]:
    return next((r for r in rows if r["variant"] == "random"), None)


def goal_markdown(rows: Sequence[dict[str, Any]], study: Optional[Mapping[str, Any]],
                  longer_rows: Sequence[dict[str, Any]] = (), longer: Optional[Mapping[str, Any]] = None,
                  study_path: Optional[os.PathLike] = None) -> str:
    """The goal (DS image AUROC >= :data:`GOAL_IMAGE_AUROC` with the offline-pretrained teacher), judged at
    the largest recorded budget: the 40-epoch study (``longer_rows``) where it has the offline teacher, else
    the 5-epoch one (``rows``); with the random teacher beside it and, when judged at 40 epochs, how both
    moved from 5 epochs. ``study_path`` is named where the 5-epoch study is missing."""
    judged_longer = bool(longer_rows) and goal_status(longer_rows) is not None
    goal_rows, goal_study = (longer_rows, longer) if judged_longer else (rows, study)
    goal = goal_status(goal_rows) if goal_rows else None
    if goal is None:
        return (f"**Goal (DS image AUROC $\\ge$ {GOAL_IMAGE_AUROC:.2f} on MT Defects with the offline-pretrained "
                f"teacher): not yet measured.** "
                + ("The teacher study has no offline-pretrained variant." if rows
                   else f"`{study_path}` is missing; the command above writes it."))
    rnd = _random_row(goal_rows)
    spread = f" ± {rnd['image_auroc_std']:.3f}" if rnd and rnd["n_seeds"] > 1 else ""
    vs = (f" The random teacher, trained the same way, reaches {rnd['image_auroc']:.3f}{spread} over "
          f"{rnd['n_seeds']} seed(s)." if rnd else "")
    dataset = (goal_study or {}).get("dataset", "?")
    paragraphs = [f"**Goal: DS image AUROC $\\ge$ {goal['goal']:.2f} with the offline-pretrained teacher. Measured: "
                  f"{goal['value']:.3f} ± {goal['std']:.3f} over {goal['n_seeds']} seed(s), "
                  f"{'/'.join(map(str, goal['epochs']))} epochs, on {dataset}. Goal met: "
                  f"{'yes' if goal['met'] else 'no'}.**{vs}"]
    short = goal_status(rows) if rows and judged_longer else None
    if short is not None:
        rnd5 = _random_row(rows)
        text = (f"At {'/'.join(map(str, short['epochs']))} epochs the same teacher gave {short['value']:.3f} ± "
                f"{short['std']:.3f} over {short['n_seeds']} seed(s)")
        if rnd5 and rnd:
            gap5, gap = short["value"] - rnd5["image_auroc"], goal["value"] - rnd["image_auroc"]
            text += (f", the random one {rnd5['image_auroc']:.3f}: the gap between the two teachers "
                     f"{'grows' if gap > gap5 else 'shrinks'} from {gap5:.3f} to {gap:.3f} with the longer "
                     f"training. The random teacher moves by {rnd['image_auroc'] - rnd5['image_auroc']:+.3f}, the "
                     f"offline one by {goal['value'] - short['value']:+.3f}.")
        else:
            text += f" (random teacher: {rnd5['image_auroc']:.3f})." if rnd5 else "."
        paragraphs.append(text + " Chapter 15 draws how the scores of the 40-epoch runs move, epoch by epoch.")
    return "\n\n".join(paragraphs)
