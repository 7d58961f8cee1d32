"""The ablation chapters' prose (chapters 10-13): captions, readings of the live and recorded studies, and
the "where ours differs from the paper" lists, generated from the objects the chapters already hold.

The chapters train the live studies and draw the figures; these functions only turn what they get (a
:class:`dskd.ablation.StudyResults`, the level discrepancies of :func:`dskd.ablation.level_discrepancy`,
trained runs) into Markdown, so that a test can check every branch of the text on fake inputs.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..ablation import (PAPER_TABLE, RECORDING, StudyResults, ablate_command, agreement_markdown, map_contrast,
                        summarize_per_type)
from ..models import INFERENCE_PAIR

#: the metric of each study's per-defect-type view (the chapters' figures and :func:`per_type_markdown`)
PER_TYPE_METRIC: dict[str, str] = {"architecture": "image_auroc", "dfe": "pixel_auroc", "layers": "pixel_auroc"}
#: the values of lambda chapter 13 trains to show that lambda only rescales the loss (10^-6: the rounding control)
LAMBDA_RUNS: tuple[float, ...] = (0.0, 1e-6, 10.0)
_LEVEL_CAPTION = {
    "architecture": "*Left: mean $M_k$ on normal images (lower: the pair agrees more closely where nothing is "
                    "wrong). Right: defect pixels over normal pixels (1: defects do not stand out).*",
    "dfe": "*Left: mean $M_k$ on normal test images; right: defect pixels over normal pixels.*",
    "layers": "*Left: mean $M_k$ over the normal test images; right: mean on defect pixels over mean on normal "
              "ones.*",
}


def _seeds(n: int) -> str:
    return "one seed" if n == 1 else f"{n} seeds"


def live_study_markdown(live: StudyResults) -> str:
    """The caption under a live study's figure (architecture, dfe, layers: beside the paper's table; teacher,
    normalization, loss-form: chapter 13's), with the teacher caveat or the reading of the order."""
    study, n = live.study, len(live.seeds)
    if study == "teacher":
        return f"*Live ({live.description}): one bar per teacher available here.* {live.caveat()}"
    if study == "normalization":
        c = map_contrast(live.examples)
        return (f"*One test image, both normalisations, each map on its own scale (the ranges differ by orders of "
                f"magnitude).* Live ({live.description}): defect-to-normal contrast on the example images "
                f"{c['unit']:.2f} with unit length, {c['eq3']:.2f} with Eq. 3 as printed.\n\n"
                f"{agreement_markdown(live)}")
    if study == "loss-form":
        return (f"*The same test images under both loss forms ('pixel': Eq. 7 as printed; 'flat': one cosine per "
                f"sample and level, as reverse-distillation code trains), each on its own colour scale.* Live "
                f"({live.description}):\n\n{agreement_markdown(live)}")
    if study not in PAPER_TABLE:
        raise ValueError(f"no live caption for study {study!r}")
    if study != "architecture":
        return (f"*Left: {PAPER_TABLE[study]}. Right: the live run ({live.description}); {_seeds(n)}.* "
                f"{live.caveat()}\n\n{agreement_markdown(live)}")
    text = (f"*Left: {PAPER_TABLE[study]}. Right: the live run ({live.description}); {_seeds(n)}"
            f"{', so no error bars' if n == 1 else ''}. Dashed: chance.* {live.caveat()}\n\n"
            f"{agreement_markdown(live)}")
    if n == 1:
        n_test = live.records[0]["provenance"].get("n_test") if live.records else None
        kind = "synthetic" if live.dataset.startswith("synthetic") else live.dataset.split(",")[0]
        text += (f"\n\nA single seed of a few epochs on {n_test if n_test else 'a few'} {kind} images says little "
                 "about the paper's ranking; it shows the machinery. The recorded study below has seeds to judge "
                 "spread.")
    return text


def level_discrepancy_markdown(study: str, levels: Mapping[str, Mapping[str, Sequence[float]]]) -> str:
    """The caption under a live level-discrepancy figure and what it says about the chapter's prediction.

    ``levels`` maps a variant to :func:`dskd.ablation.level_discrepancy`'s dict: the four structures
    (architecture), ``with DFE`` and ``without DFE`` (dfe), or the one DS model (layers)."""
    if study == "architecture":
        mean_contrast = {s: sum(v["contrast"]) / len(v["contrast"]) for s, v in levels.items()}
        ranked = sorted(mean_contrast, key=mean_contrast.get, reverse=True)
        as_predicted = set(ranked[:2]) == {"DS", "T-D"} and ranked[-1] == "E-D"
        return (f"{_LEVEL_CAPTION[study]} Averaged over the three levels, the contrast ranks "
                f"{' > '.join(f'{s} ({mean_contrast[s]:.2f})' for s in ranked)}. The prediction above (the "
                f"$T$-vs-$S_d$ structures highest, E-D lowest) {'holds' if as_predicted else 'does not fully hold'} "
                f"in this live run. Compare the left panel too: E-D's pair ({' vs '.join(INFERENCE_PAIR['E-D'])}) "
                f"can agree closely on normal images without that meaning anything, since both of its networks "
                f"were free to move.")
    if study == "dfe":
        w, wo = levels["with DFE"], levels["without DFE"]
        worse = [k + 1 for k in range(len(w["normal"])) if wo["normal"][k] > w["normal"][k]]
        where = f"at {', '.join(f'$M_{k}$' for k in worse)}" if worse else "at no level"
        return (f"{_LEVEL_CAPTION[study]} Without the DFE, $S_d$ reproduces $T$ less closely on normal images "
                f"{where} (level 1: {wo['normal'][0]:.3f} against {w['normal'][0]:.3f} with the DFE). The "
                f"prediction above was a worse level 1; it {'holds' if 1 in worse else 'does not hold'} in this "
                f"live run. Contrast at level 1: {wo['contrast'][0]:.2f} without, {w['contrast'][0]:.2f} with the "
                f"DFE.")
    if study == "layers":
        (c,) = [list(v["contrast"]) for v in levels.values()]
        return (f"{_LEVEL_CAPTION[study]} In this model the contrast is highest at $M_{int(np.argmax(c)) + 1}$ "
                f"({max(c):.2f}) and lowest at $M_{int(np.argmin(c)) + 1}$ ({min(c):.2f}). Contrast averaged over "
                f"all defect pixels favours the level that suits the *typical* defect of this data; the "
                f"per-defect-type view below shows which level suits which defect.")
    raise ValueError(f"no level-discrepancy reading for study {study!r}: expected one of {tuple(_LEVEL_CAPTION)}")


def n_parameters(module: torch.nn.Module) -> int:
    """The number of values in a module's parameters."""
    return sum(p.numel() for p in module.parameters())


def dfe_parameters_markdown(with_dfe: torch.nn.Module, without_dfe: torch.nn.Module) -> str:
    """The caption under chapter 11's embedding figure: the two embeddings and their parameter counts."""
    a, b = n_parameters(with_dfe), n_parameters(without_dfe)
    return (f"*Top: the DFE (Fig. 4) at the live input size, fusing $F_1$, $F_2$ and $F_3$ of $S_e$. Bottom: the "
            f"no-DFE path of Table 8 (`{type(without_dfe).__name__}`): one stride-2 block on $F_3$ alone.* Both hand "
            f"$S_d$ a tensor of the same shape, so $S_d$ itself is identical. What differs is what that tensor is "
            f"computed from, and with how many weights: the DFE has {a / 1e6:.2f} M parameters, the no-DFE block "
            f"{b / 1e6:.2f} M ({a / b:.1f} times fewer).")


def dfe_gallery_markdown(live: StudyResults) -> str:
    """The caption under chapter 11's live gallery: each variant's defect-to-normal contrast on the examples."""
    c = map_contrast(live.examples)
    return (f"*The same test images with and without the DFE, seed 0, one colour scale (titles: each map's maximum, "
            f"the image score).* On these example images the mean map on defect pixels is {c['with DFE']:.2f} "
            f"times the mean on the normal images with the DFE and {c['without DFE']:.2f} times without. Look at "
            f"the top row: where one variant's normal image glows and the other's stays dark, that variant's $S_d$ "
            f"rebuilds $T$ less well on normal surface, and every image it scores starts higher.")


def defect_sizes_markdown(live: StudyResults) -> str:
    """The caption under chapter 12's live per-defect-type figure: the defect types by their size (the share
    of the image their masks cover in the example images), smallest first."""
    _, types, _ = summarize_per_type(live.records, live.study, PER_TYPE_METRIC.get(live.study, "pixel_auroc"))
    ex = live.examples
    size = {t: float(np.mean([m.mean() for m, d in zip(ex["masks"], ex["defect_types"]) if d == t])) for t in types}
    return ("*Live: pixel AUROC per defect type and layer choice.* Defect sizes in the example images (share of "
            "the image): " + ", ".join(f"{t} {100 * s:.1f}%" for t, s in sorted(size.items(), key=lambda kv: kv[1]))
            + ". Compare the single maps' columns for the smallest and the largest defects.")


_PER_TYPE_MISSING = {
    "architecture": "*The per-defect-type view (our analogue of Fig. 9) appears here once the results file exists.*",
    "dfe": "*The per-defect-type view appears here once the results file exists.*",
    "layers": "*The per-defect-type view of the recorded study appears here once the results file exists.*",
}


def per_type_markdown(rec: StudyResults) -> str:
    """The caption under a recorded study's per-defect-type figure (metric :data:`PER_TYPE_METRIC`); for
    layers, the best layer choice per defect type. Without records, where the view will appear."""
    if rec.study not in _PER_TYPE_MISSING:
        raise ValueError(f"no per-defect-type view for study {rec.study!r}")
    if not rec.present:
        return _PER_TYPE_MISSING[rec.study]
    if rec.study == "architecture":
        return ("*Image AUROC per defect type, mean over seeds; each type is scored against all normal test images. "
                "This is our analogue of Fig. 9, which shows the paper's per-category bars on MVTec AD (its values "
                "are not given in the text, so they are not drawn here).* Read it column by column: a structure "
                "that wins on average can lose on one defect type, and types with few images move most from seed "
                "to seed.")
    if rec.study == "dfe":
        return ("*Pixel AUROC per defect type, mean over seeds.* Fine defects (cracks, fray) should need $F_1$'s "
                "detail most; compare those columns with the large ones (break, uneven).")
    variants, types, table = summarize_per_type(rec.records, rec.study, PER_TYPE_METRIC[rec.study])
    best = {t: variants[int(np.nanargmax(table[:, j]))] for j, t in enumerate(types)
            if not np.isnan(table[:, j]).all()}
    return ("*Recorded: pixel AUROC per defect type.* The best layer choice per defect type: "
            + ", ".join(f"{t}: {v}" for t, v in best.items()) + ".")


def examples_to_show(rec: StudyResults, live: StudyResults) -> StudyResults:
    """The recorded study when it kept example maps, else the live one (what an explorer shows)."""
    return rec if rec.examples else live


def shown_examples_markdown(shown: StudyResults, live: StudyResults) -> str:
    """One line above an explorer: whether it shows the recorded or the live examples, of what, by what."""
    return (f"Showing the **{'live' if shown is live else 'recorded'}** examples: {shown.description}, "
            f"teacher {shown.teacher}.")


def explorer_sources_markdown(shown: Mapping[str, StudyResults], live: Mapping[str, StudyResults]) -> str:
    """Above chapter 13's explorer: per study, whether its maps are recorded or live, of what, by what."""
    return "The explorer's studies and where their maps come from:\n\n" + "\n".join(
        f"- `{s}`: {'live' if r is live.get(s) else 'recorded'}, {r.description}, teacher {r.teacher}"
        for s, r in shown.items())


def _architecture_differences(rec: StudyResults) -> str:
    data = rec.dataset if rec.present else f"{RECORDING['dataset']} (to be recorded)"
    teacher = rec.teacher if rec.present else "the offline-pretrained teacher (to be recorded)"
    epochs = (f"the record {'/'.join(map(str, rec.epochs))}" if rec.present
              else f"the recording is set to {RECORDING['epochs']}")
    return f"""Reasons the two need not agree, before any of them is a bug:

- **Data.** Table 7 is the mean of 15 MVTec AD categories at 256 x 256; ours is {data}: MT Defects' grey tiles, five
  defect types, many of them low-contrast (uneven, fray) or thin (crack). A structure can rank differently on one
  data set than on the mean of fifteen.
- **Teacher.** The paper's $T$ is ImageNet-pretrained; ours is {teacher}. Every structure except E-D measures
  distances in the teacher's feature space, so a weaker teacher moves all of them, not necessarily by the same
  amount.
- **Epochs.** The paper trains 200 epochs; {epochs} epochs. Structures converge at different speeds (T-E trains
  only $S_e$; DS and E-D train $S_e$, the DFE and $S_d$), so a short budget favours some.
- **Seeds.** The paper reports one number per cell and no spread, so gaps of a point or less (DS against T-D)
  cannot be told from seed noise in its table. Ours reports mean and standard deviation over the seeds recorded.
- **Fig. 8 is not in the text.** T-D and E-D are our reading (chapter 5): T-D builds the embedding from $T$'s
  features, E-D trains both students with no teacher at all. Another reading would give other numbers."""


def _dfe_differences(rec: StudyResults) -> str:
    data = rec.dataset if rec.present else f"{RECORDING['dataset']} (to be recorded)"
    teacher = rec.teacher if rec.present else "the offline-pretrained teacher"
    epochs = (f"the record has {'/'.join(map(str, rec.epochs))}" if rec.present
              else f"the recording is set to {RECORDING['epochs']}")
    return f"""- **Data and teacher.** Table 8 is on MVTec AD with the ImageNet teacher; ours is {data} with {teacher}.
  What $S_d$ must rebuild is the teacher's pyramid, so how much the fine levels matter depends on what the
  teacher's $F_1$ encodes.
- **Epochs.** The paper trains 200 epochs, {epochs}. The DFE has several times the no-DFE block's weights, so it
  may need more epochs to pay off, or it may be the variant that learns faster because its input is richer.
- **The no-DFE path is our reading.** "Directly downsampled" could be a pooling, a strided convolution or an
  interpolation, with or without a channel change; ours is one conv block on $F_3$ (chapter 4). A weaker or
  stronger bridge would move the no-DFE row.
- **The confound.** Information and capacity change together in this ablation, in the paper's and in ours; a gap
  in either direction says which *package* wins, not why."""


def _layers_differences(rec: StudyResults) -> str:
    teacher = rec.teacher if rec.present else "the offline-pretrained teacher"
    epochs = "/".join(map(str, rec.epochs)) if rec.present else RECORDING["epochs"]
    return f"""- **Resolution.** MVTec AD runs at 256 px, where $M_3$ is a 16 x 16 grid; MT Defects at 128 px, where it
  is 8 x 8 and one cell covers 16 x 16 pixels. Every level's cell covers a larger share of the image at 128 px,
  which can shift the balance towards the fine level $M_1$.
- **Defects.** MT Defects' cracks and fray are thin, uneven is large and faint: its mix of defect sizes is not
  MVTec AD's, and which single level wins depends on that mix (the per-defect-type view).
- **Teacher and epochs.** The paper's levels are an ImageNet ResNet18's conv2_x to conv4_x after 200 epochs of
  students; ours are {teacher}'s, after {epochs} epochs. How much the deep level knows is what the teacher's
  pretraining gave it.
- **The same model.** The four rows of this study are one model per seed, so their differences are not blurred
  by training noise between variants; seed-to-seed spread still applies to each row."""


_DIFFERENCES = {"architecture": _architecture_differences, "dfe": _dfe_differences, "layers": _layers_differences}
_NOTHING_RECORDED = {
    "architecture": "Nothing recorded to compare yet: the list below says what will differ, whatever the numbers "
                    "turn out to be.",
    "dfe": "Nothing recorded to compare yet; what will differ in any case:",
    "layers": "Nothing recorded to compare yet; what will differ in any case:",
}


def where_ours_differs_markdown(rec: StudyResults) -> str:
    """The section "Where ours differs from the paper, and why" of chapters 10-12: the records' order of the
    variants beside the paper's, metric by metric (or that nothing is recorded), then the reasons the two need
    not agree, naming the records' data, teacher and epochs."""
    if rec.study not in _DIFFERENCES:
        raise ValueError(f"no comparison with the paper for study {rec.study!r}: expected one of "
                         f"{tuple(_DIFFERENCES)}")
    head = (f"What the records say, metric by metric:\n\n{agreement_markdown(rec)}" if rec.present
            else _NOTHING_RECORDED[rec.study])
    return f"{head}\n\n{_DIFFERENCES[rec.study](rec)}"


def teacher_study_markdown(rec: StudyResults) -> str:
    """Chapter 13's reading of the recorded teacher study: the offline-pretrained teacher against the random
    one (and whether the random one is near chance), and how to add the ImageNet variant where it is missing.
    Empty without records."""
    if not rec.present:
        return ""
    by = {r["variant"]: r for r in rec.rows}
    parts = []
    if "random" in by and "offline-pretrained" in by:
        offline, rand = by["offline-pretrained"]["image_auroc"], by["random"]["image_auroc"]
        parts.append(f"Recorded: the offline-pretrained teacher gives image AUROC {offline:.3f}, the random one "
                     f"{rand:.3f} (a difference of {100 * (offline - rand):.1f} points). "
                     + ("The random teacher is near chance, as predicted." if abs(rand - 0.5) < 0.1
                        else "The random teacher is further from chance than predicted: look at the per-defect-type "
                             "numbers (chapter 16) before trusting it."))
    if "imagenet" not in by:
        parts.append(f"The ImageNet variant is not in the records: it needs torchvision's download, which this "
                     f"project's machine cannot make. With internet access, "
                     f"`{ablate_command('teacher', variants=['imagenet'])}` adds it (the file keeps the other "
                     f"records).")
    return "\n\n".join(parts)


def _student_weights(model: Any) -> torch.Tensor:
    """Every trained parameter of a model (its ``student_parameters()``) as one vector."""
    return torch.cat([p.detach().flatten() for p in model.student_parameters()])


def lambda_identity_markdown(runs: Mapping[float, Any], initial: Any, live: StudyResults) -> str:
    """Chapter 13's check that lambda only rescales the loss: ``runs`` maps each of :data:`LAMBDA_RUNS` to a
    trained run (``history``: loss per epoch, ``model``), ``initial`` is the model before training (the same
    seed), ``live`` the live lambda study (its example maps). Loss curves, weight distances, map contrasts."""
    small, tiny, big = LAMBDA_RUNS
    h0, h10 = np.array(runs[small].history), np.array(runs[big].history)
    scale = 1 + big
    loss_gap = float(np.max(np.abs(h10 / scale - h0) / h0))
    w_init = _student_weights(initial)
    w0, w10, w_tiny = (_student_weights(runs[lam].model) for lam in (small, big, tiny))
    apart, moved, apart_tiny = (float((w10 - w0).norm()), float((w0 - w_init).norm()),
                                float((w_tiny - w0).norm()))
    contrast = map_contrast(live.examples)
    return (f"- **Loss.** Divided by $1+\\lambda = {scale:g}$, the $\\lambda = {big:g}$ run's loss per epoch stays "
            f"within {100 * loss_gap:.2g}% of the $\\lambda = {small:g}$ run's, over {len(h0)} epochs: "
            f"{', '.join(f'{a:.4f}' for a in h0)} against {', '.join(f'{b / scale:.4f}' for b in h10)}.\n"
            f"- **Weights.** Training moved the $\\lambda = {small:g}$ students by {moved:.3g} (Euclidean norm over "
            f"all {w0.numel() / 1e6:.1f} M trained parameters) from their initial weights; the $\\lambda = {big:g}$ "
            f"students end {apart:.3g} away from them, {100 * apart / moved:.2g}% of that distance. The control, "
            f"$\\lambda = 10^{{-6}}$ (the loss times 1.000001: only the rounding changes), ends "
            f"{100 * apart_tiny / moved:.2g}% of it away: "
            + (f"most of $\\lambda = {big:g}$'s difference is what rounding alone does over these epochs"
               if apart <= 2 * apart_tiny
               else f"$\\lambda = {big:g}$ ends further apart than rounding alone explains; the rest is Adam's "
                    f"$\\epsilon$, relatively {scale:g} times smaller at $\\lambda = {big:g}$")
            + ".\n- **Maps.** On the example images the defect-to-normal contrast of the maps is "
            + ", ".join(f"{v} {c:.4f}" for v, c in contrast.items())
            + ": alike up to the factor $1+\\lambda$, though not equal, since the weights differ a little.\n\n"
            f"So $\\lambda$ rescales the loss by {scale:g} and Adam almost undoes it. The small residue grows with "
            f"training (rounding differences become different steps, which become different weights), which is why "
            f"a sweep over $\\lambda$ on this model measures noise.")


def lambda_recorded_markdown(rec: StudyResults) -> str:
    """Chapter 13's reading of the recorded lambda study: the span of the mean image AUROC over the values of
    lambda against twice the largest seed standard deviation. Empty without records."""
    if not rec.present:
        return ""
    means = [r["image_auroc"] for r in rec.rows]
    spread = max(r["image_auroc_std"] for r in rec.rows)
    span = max(means) - min(means)
    return (f"Recorded: across the {len(means)} values of $\\lambda$ the mean image AUROC spans {100 * span:.1f} "
            f"points; the largest seed standard deviation is {100 * spread:.1f} points. "
            + ("That is within twice the seed spread, as the identity predicts." if span <= 2 * spread
               else "That is more than twice the seed spread, which the identity does not predict: check the "
                    "records' `normalization` (it must be `unit`) and the number of seeds."))
