"""dskd.report.ablations: the ablation chapters' prose, on the recorded studies rewritten in a temporary
folder and on small hand-made inputs (example maps, level discrepancies, trained runs)."""
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dskd.ablation import RECORDING, ablate_command, load_study, summarize_per_type
from dskd.report import ablations

REPO = Path(__file__).resolve().parents[1]
RECORDED = REPO / "results" / "ablations" / "mt-defects"
CHAPTERS = ("10_ablation_architecture", "11_ablation_dfe", "12_ablation_layers", "13_ablation_extras")


def _study(tmp_path: Path, study: str, *, seeds=None, edit=None, dataset=None, examples=None):
    """The recorded ``study`` rewritten into ``tmp_path`` (only ``seeds``; ``edit(record)`` applied to each
    record; ``dataset`` renamed) and read back, with ``examples`` as its example maps."""
    data = json.loads((RECORDED / f"{study}.json").read_text())
    recs = [r for r in data["records"] if seeds is None or r["seed"] in seeds]
    for r in recs:
        if edit is not None:
            edit(r)
    if dataset is not None:
        data["dataset"] = dataset
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / f"{study}.json").write_text(json.dumps(dict(data, records=recs)))
    res = load_study(tmp_path, study)
    if examples is not None:
        res.examples = examples
    return res


def _examples(maps: dict[str, float], types=("good", "crack")) -> dict:
    """Example maps of 4 x 4 images: each defect image has a 2 x 2 defect; variant ``v``'s map is 1 on normal
    pixels and ``maps[v]`` on defect pixels, so its defect-to-normal contrast is ``maps[v]``."""
    masks = np.zeros((len(types), 4, 4), bool)
    for i, t in enumerate(types):
        if t != "good":
            masks[i, :2, :2] = True
    return {"masks": masks, "defect_types": list(types),
            "maps": {v: np.where(masks, c, 1.0) for v, c in maps.items()}}


def _flip(metric="image_auroc"):
    def edit(r):
        r[metric] = 1.0 - r[metric]
    return edit


# --- live studies -------------------------------------------------------------------------------------------

def test_the_live_architecture_caption_says_one_seed_and_the_test_images(tmp_path):
    def as_live(r):
        r["provenance"]["n_test"] = 37
    live = _study(tmp_path, "architecture", seeds=(0,), edit=as_live, dataset="synthetic/fabric, 64x64")
    text = ablations.live_study_markdown(live)
    assert text.startswith("*Left: Table 7. Right: the live run (synthetic/fabric, 64x64, 5 epochs, seed 0); one "
                           "seed, so no error bars. Dashed: chance.*")
    assert "A single seed of a few epochs on 37 synthetic images" in text
    assert "from one seed: the spread is unknown" in text  # the agreement with the paper, per metric


def test_the_live_caption_with_several_seeds_drops_the_one_seed_remarks(tmp_path):
    text = ablations.live_study_markdown(_study(tmp_path, "architecture"))
    assert "; 3 seeds. Dashed: chance.*" in text and "so no error bars" not in text and "A single seed" not in text
    assert "seed standard deviation" in text
    for study, table in (("dfe", "Table 8"), ("layers", "Table 9")):
        text = ablations.live_study_markdown(_study(tmp_path / study, study, seeds=(1,)))
        assert text.startswith(f"*Left: {table}. Right: the live run (mt-defects, 128x128, 5 epochs, seed 1); "
                               "one seed.*")
        assert "Dashed" not in text and "Kendall's tau" in text


def test_chapter_13s_live_captions_quote_their_contrasts(tmp_path):
    norm = _study(tmp_path, "normalization", examples=_examples({"unit": 2.345, "eq3": 7.891}))
    text = ablations.live_study_markdown(norm)
    assert "example images 2.35 with unit length, 7.89 with Eq. 3 as printed" in text
    assert "**image AUROC**" in text  # the order of the variants follows
    form = ablations.live_study_markdown(_study(tmp_path, "loss-form"))
    assert "under both loss forms" in form and "Live (mt-defects, 128x128, 5 epochs, seeds 0,1,2):\n\n- " in form
    teacher = ablations.live_study_markdown(_study(tmp_path, "teacher"))
    assert teacher.startswith("*Live (mt-defects, 128x128, 5 epochs, seeds 0,1,2): one bar per teacher")
    assert "random teacher" in teacher  # the caveat
    with pytest.raises(ValueError, match="sigma"):
        ablations.live_study_markdown(_study(tmp_path, "sigma"))


def test_the_structures_contrast_ranks_them_and_checks_the_prediction():
    def lv(c):
        return {"normal": [0.1, 0.2, 0.3], "defect": [0.0] * 3, "contrast": [c, c, c]}

    held = ablations.level_discrepancy_markdown("architecture", {"DS": lv(3.0), "T-E": lv(1.5), "T-D": lv(2.25),
                                                                 "E-D": lv(1.1)})
    assert "the contrast ranks DS (3.00) > T-D (2.25) > T-E (1.50) > E-D (1.10)" in held
    assert "E-D lowest) holds in this live run" in held and "E-D's pair (encoder vs decoder)" in held
    failed = ablations.level_discrepancy_markdown("architecture", {"DS": lv(3.0), "T-E": lv(1.0), "T-D": lv(2.0),
                                                                   "E-D": lv(1.5)})
    assert "does not fully hold" in failed and "> T-E (1.00)" in failed


def test_the_dfe_levels_say_where_no_dfe_is_worse():
    with_dfe = {"normal": [0.1, 0.2, 0.3], "defect": [0.0] * 3, "contrast": [2.5, 2.0, 1.5]}
    worse_1 = {"normal": [0.4, 0.1, 0.35], "defect": [0.0] * 3, "contrast": [1.25, 2.0, 1.5]}
    text = ablations.level_discrepancy_markdown("dfe", {"with DFE": with_dfe, "without DFE": worse_1})
    assert "on normal images at $M_1$, $M_3$ (level 1: 0.400 against 0.100 with the DFE)" in text
    assert "it holds in this live run" in text and "Contrast at level 1: 1.25 without, 2.50 with" in text
    better = {"normal": [0.05, 0.1, 0.2], "defect": [0.0] * 3, "contrast": [3.0, 2.0, 1.5]}
    text = ablations.level_discrepancy_markdown("dfe", {"with DFE": with_dfe, "without DFE": better})
    assert "on normal images at no level" in text and "it does not hold in this live run" in text


def test_the_layers_levels_name_the_best_and_worst_level():
    text = ablations.level_discrepancy_markdown("layers", {"DS": {"normal": [1, 1, 1], "defect": [1, 1, 1],
                                                                  "contrast": [1.5, 4.25, 0.75]}})
    assert "highest at $M_2$ (4.25) and lowest at $M_3$ (0.75)" in text
    with pytest.raises(ValueError, match="teacher"):
        ablations.level_discrepancy_markdown("teacher", {})


def test_the_dfe_parameter_counts():
    a, b = torch.nn.Linear(999, 1000), torch.nn.Conv2d(10, 10, 1)  # 1 000 000 and 110 parameters
    text = ablations.dfe_parameters_markdown(a, b)
    assert "the DFE has 1.00 M parameters, the no-DFE block 0.00 M (9090.9 times fewer)" in text
    assert "(`Conv2d`)" in text


def test_the_dfe_gallery_quotes_each_variants_contrast(tmp_path):
    live = _study(tmp_path, "dfe", seeds=(0,), examples=_examples({"with DFE": 4.5, "without DFE": 1.75}))
    text = ablations.dfe_gallery_markdown(live)
    assert "defect pixels is 4.50 times the mean on the normal images with the DFE and 1.75 times without" in text


def test_the_defect_sizes_are_listed_smallest_first(tmp_path):
    rec = load_study(RECORDED, "layers")
    types = summarize_per_type(rec.records, "layers", "pixel_auroc")[1]
    assert len(types) >= 3
    order = list(reversed(types))  # the largest masks for the first types
    masks = np.zeros((len(types) + 1, 10, 10), bool)
    for i, t in enumerate(order, start=1):
        masks[i].flat[: 3 * i] = True  # 3 %, 6 %, ... of the image
    live = _study(tmp_path, "layers", seeds=(0,), examples={"masks": masks, "defect_types": ["good"] + order,
                                                              "maps": {}})
    text = ablations.defect_sizes_markdown(live)
    listed = ", ".join(f"{t} {3 * i:.1f}%" for i, t in enumerate(order, start=1))
    assert f"(share of the image): {listed}." in text


# --- recorded studies ---------------------------------------------------------------------------------------

def test_per_type_captions_with_and_without_records(tmp_path):
    for study in ("architecture", "dfe", "layers"):
        missing = ablations.per_type_markdown(load_study(tmp_path / "none", study))
        assert "appears here once the results file exists" in missing
        assert ablations.per_type_markdown(load_study(RECORDED, study)) != missing
    assert "our analogue of Fig. 9" in ablations.per_type_markdown(load_study(RECORDED, "architecture"))
    assert "$F_1$'s detail" in ablations.per_type_markdown(load_study(RECORDED, "dfe"))
    assert ablations.PER_TYPE_METRIC["architecture"] == "image_auroc"
    with pytest.raises(ValueError):
        ablations.per_type_markdown(load_study(RECORDED, "lambda"))


def test_the_best_layer_per_defect_type_comes_from_the_records(tmp_path):
    def m2_best_on_crack(r):
        if r["variant"] == "M2":
            r["per_defect_type"]["crack"]["pixel_auroc"] = 0.999
        else:
            r["per_defect_type"]["crack"]["pixel_auroc"] = 0.5

    text = ablations.per_type_markdown(_study(tmp_path, "layers", edit=m2_best_on_crack))
    assert text.startswith("*Recorded: pixel AUROC per defect type.* The best layer choice per defect type: ")
    assert "crack: M2" in text and text.count(": M") == 5  # one per MT Defects type


def test_the_explorers_say_whose_examples_they_show(tmp_path):
    rec, live = load_study(RECORDED, "dfe"), _study(tmp_path / "live", "dfe", seeds=(0,))
    none = load_study(tmp_path / "none", "dfe")
    assert ablations.examples_to_show(rec, live) is rec and ablations.examples_to_show(none, live) is live
    assert ablations.shown_examples_markdown(rec, live) == (
        "Showing the **recorded** examples: mt-defects, 128x128, 5 epochs, seeds 0,1,2, teacher "
        f"{rec.teacher}.")
    assert ablations.shown_examples_markdown(live, live).startswith("Showing the **live** examples: mt-defects, "
                                                                    "128x128, 5 epochs, seed 0, teacher ")
    text = ablations.explorer_sources_markdown({"dfe": rec, "sigma": live}, {"dfe": live, "sigma": live})
    assert "- `dfe`: recorded, mt-defects, 128x128, 5 epochs, seeds 0,1,2" in text
    assert "- `sigma`: live, mt-defects, 128x128, 5 epochs, seed 0" in text


@pytest.mark.parametrize("study", ["architecture", "dfe", "layers"])
def test_where_ours_differs_names_the_records_and_compares_the_order(study, tmp_path):
    def ten_epochs(r):
        r["config"]["epochs"] = 10

    rec = _study(tmp_path, study, edit=ten_epochs)
    text = ablations.where_ours_differs_markdown(rec)
    assert text.startswith("What the records say, metric by metric:\n\n- **image AUROC**: ours ")
    assert "Kendall's tau" in text and "seed standard deviation" in text
    epochs = {"architecture": "the record 10 epochs", "dfe": "the record has 10", "layers": "after 10 epochs"}
    assert rec.teacher in text and epochs[study] in text and "Nothing recorded" not in text
    if study != "layers":
        assert "mt-defects, 128x128" in text  # the records' data
    one_seed = ablations.where_ours_differs_markdown(_study(tmp_path / "one", study, seeds=(2,)))
    assert "from one seed: the spread is unknown" in one_seed
    missing = ablations.where_ours_differs_markdown(load_study(tmp_path / "none", study))
    assert missing.startswith("Nothing recorded to compare yet") and "Kendall" not in missing
    e = RECORDING["epochs"]
    epochs = {"architecture": f"the recording is set to {e} epochs", "dfe": f"the recording is set to {e}.",
              "layers": f"after {e} epochs"}
    assert epochs[study] in missing and "the offline-pretrained teacher" in missing


def test_where_ours_differs_says_whether_the_order_is_the_papers(tmp_path):
    same = ablations.where_ours_differs_markdown(load_study(RECORDED, "dfe"))
    assert "image AUROC**: ours with DFE > without DFE; paper with DFE > without DFE: the same order" in same
    flipped = ablations.where_ours_differs_markdown(_study(tmp_path, "dfe", edit=_flip()))
    assert ("image AUROC**: ours without DFE > with DFE; paper with DFE > without DFE: the reversed order "
            "(Kendall's tau -1.00)") in flipped
    arch = ablations.where_ours_differs_markdown(load_study(RECORDED, "architecture"))
    assert "a different order" in arch and "Reasons the two need not agree" in arch
    assert "ours is mt-defects, 128x128: MT Defects' grey tiles" in arch and "the record 5 epochs" in arch
    with pytest.raises(ValueError, match="sigma"):
        ablations.where_ours_differs_markdown(load_study(RECORDED, "sigma"))


def test_the_teacher_study_reading(tmp_path):
    rec = load_study(RECORDED, "teacher")
    by = {r["variant"]: r["image_auroc"] for r in rec.rows}
    text = ablations.teacher_study_markdown(rec)
    assert (f"the offline-pretrained teacher gives image AUROC {by['offline-pretrained']:.3f}, the random one "
            f"{by['random']:.3f} (a difference of {100 * (by['offline-pretrained'] - by['random']):.1f} points)") in text
    assert "near chance, as predicted" in text
    assert f"`{ablate_command('teacher', variants=['imagenet'])}` adds it" in text

    def random_far_from_chance(r):
        if r["variant"] == "random":
            r["image_auroc"] = 0.8
    far = ablations.teacher_study_markdown(_study(tmp_path / "far", "teacher", edit=random_far_from_chance))
    assert "the random one 0.800" in far and "further from chance than predicted" in far

    data = json.loads((RECORDED / "teacher.json").read_text())
    imagenet = [dict(r, variant="imagenet") for r in data["records"] if r["variant"] == "offline-pretrained"]
    (tmp_path / "teacher.json").write_text(json.dumps(dict(data, records=data["records"] + imagenet)))
    assert "ImageNet variant is not in the records" not in ablations.teacher_study_markdown(
        load_study(tmp_path, "teacher"))
    assert ablations.teacher_study_markdown(load_study(tmp_path / "none", "teacher")) == ""


def test_the_recorded_lambda_study_against_the_seed_spread(tmp_path):
    rec = load_study(RECORDED, "lambda")
    means = [r["image_auroc"] for r in rec.rows]
    text = ablations.lambda_recorded_markdown(rec)
    assert f"across the 4 values of $\\lambda$ the mean image AUROC spans {100 * (max(means) - min(means)):.1f}" in text
    assert "within twice the seed spread, as the identity predicts" in text

    def lambda_10_fails(r):
        if r["variant"] == "lambda=10":
            r["image_auroc"] = 0.3
    wide = ablations.lambda_recorded_markdown(_study(tmp_path, "lambda", edit=lambda_10_fails))
    assert "more than twice the seed spread" in wide and "the mean image AUROC spans 41." in wide
    assert ablations.lambda_recorded_markdown(load_study(tmp_path / "none", "lambda")) == ""


class _Students(torch.nn.Module):
    """A stand-in for a trained DSKD model: two trained values."""

    def __init__(self, *values: float):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(values))

    def student_parameters(self):
        return iter([self.w])


@pytest.mark.parametrize("big, verdict", [((1.0, 0.0015), "what rounding alone does"),
                                          ((1.0, 0.01), "further apart than rounding alone explains")])
def test_the_lambda_identity_reading(big, verdict, tmp_path):
    runs = {0.0: SimpleNamespace(history=[1.0, 0.5], model=_Students(1.0, 0.0)),
            1e-6: SimpleNamespace(history=[1.0, 0.5], model=_Students(1.0, 0.001)),
            10.0: SimpleNamespace(history=[11.0, 5.61], model=_Students(*big))}
    live = _study(tmp_path, "lambda", seeds=(0,), examples=_examples({"lambda=0": 2.5, "lambda=10": 2.4375}))
    text = ablations.lambda_identity_markdown(runs, _Students(0.0, 0.0), live)
    assert "stays within 2% of the $\\lambda = 0$ run's, over 2 epochs: 1.0000, 0.5000 against 1.0000, 0.5100" in text
    assert "moved the $\\lambda = 0$ students by 1 (Euclidean norm over all 0.0 M trained parameters)" in text
    assert f"end {big[1]:.3g} away from them, {100 * big[1]:.2g}% of that distance" in text
    assert "ends 0.1% of it away" in text and verdict in text
    assert "contrast of the maps is lambda=0 2.5000, lambda=10 2.4375" in text
    assert "rescales the loss by 11 and Adam almost undoes it" in text
    assert ablations.LAMBDA_RUNS == (0.0, 1e-6, 10.0)


# --- the chapters ------------------------------------------------------------------------------------------

def test_the_chapters_build_no_prose_in_their_cells():
    """Prose with computed numbers comes from dskd.report: no chapter cell formats Markdown itself."""
    import nbformat

    for stem in CHAPTERS:
        nb = nbformat.read(REPO / "notebooks" / f"{stem}.ipynb", as_version=4)
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        for src in code:
            assert not re.search(r"\bmd\(\s*f[\"']", src), f"{stem} formats prose in a cell:\n{src}"
        if stem != "13_ablation_extras":
            assert "md(where_ours_differs_markdown(rec))" in code, stem
            assert any("level_discrepancy_markdown(" in s for s in code), stem
