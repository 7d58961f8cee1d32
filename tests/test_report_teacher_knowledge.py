"""dskd.report.teacher_knowledge: chapter 16's text, on fake statuses, AUROCs, candidates and studies."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dskd.ablation import summarize
from dskd.pretrain import PretrainConfig
from dskd.report import teacher_knowledge as tk
from dskd.teacher_study import GOAL_IMAGE_AUROC, TeacherStatus, candidate_rows

REPO = Path(__file__).resolve().parents[1]


def _study(values: dict[str, list[float]], epochs: int = 5, dataset: str = "fake-tiles") -> dict:
    """A teacher study file's content: one record per seed and variant, image AUROC from ``values``."""
    records = [{"variant": v, "seed": s, "image_auroc": x, "pixel_auroc": x - 0.1, "pro": x - 0.2,
                "config": {"epochs": epochs}, "provenance": {"teacher": f"{v} weights"}}
               for v, xs in values.items() for s, x in enumerate(xs)]
    return {"dataset": dataset, "records": records}


def _rows(study: dict) -> list[dict]:
    return summarize(study["records"], "teacher")


# ----------------------------------------------------------------------------- 16.2 the pretraining settings


def test_the_settings_come_from_the_provenance_file_or_the_defaults(tmp_path):
    meta = tmp_path / "offline.json"
    shipped, pcfg = tk.offline_teacher_settings(meta)
    assert shipped is None and pcfg == PretrainConfig()
    assert tk.settings_source(None, meta) == ("pretraining settings: the default PretrainConfig (offline.json is "
                                              "not in this installation)")
    meta.write_text(json.dumps({"recipe": "fractal (FractalDB)", "config": {"n_categories": 7, "per_category": 3,
                                                                            "image_size": 48, "epochs": 2,
                                                                            "seed": 11}}))
    shipped, pcfg = tk.offline_teacher_settings(meta)
    assert shipped["recipe"] == "fractal (FractalDB)" and pcfg.n_categories == 7 and pcfg.seed == 11
    assert tk.settings_source(shipped, meta) == ("pretraining settings: the shipped offline teacher's settings "
                                                 "(offline.json: recipe 'fractal (FractalDB)')")
    line = tk.settings_summary(pcfg)
    assert line.startswith("  recipe fractal, 7 categories x 3 images at 48 px, 2 epochs, seed 11; ssl: ")
    assert "crops of at least 1% of the photo's area, grey with probability 0.5" in line


def test_the_shipped_provenance_file_is_the_default():
    shipped, pcfg = tk.offline_teacher_settings()
    text = tk.settings_source(shipped)
    if shipped is None:  # an installation without the offline teacher
        assert "is not in this installation" in text
    else:
        assert f"recipe {shipped['recipe']!r}" in text and pcfg.epochs == shipped["config"]["epochs"]


# ----------------------------------------------------------------------------- 16.3-16.4 the teachers alone


def test_missing_teachers_are_listed_with_how_to_get_them():
    here = {"random": TeacherStatus("random", object(), "random init"),
            "offline-pretrained": TeacherStatus("offline-pretrained", object(), "offline (sha256 abc)")}
    assert tk.missing_teachers_markdown(here) == "All three teachers are at hand."
    gone = dict(here, imagenet=TeacherStatus("imagenet", None, "Not in the cache; run this once."))
    assert tk.missing_teachers_markdown(gone) == ("- **imagenet teacher: not available on this machine.** Not in "
                                                  "the cache; run this once.")


def test_the_nearest_normal_prose_with_all_teachers():
    text = tk.nearest_normal_markdown({"imagenet": 0.91, "random": 0.62, "offline-pretrained": 0.58},
                                      {"random": 0.55, "offline-pretrained": 0.66, "imagenet": 0.88}, 70)
    assert text.startswith("On this subset of 70 images the random teacher's features separate defective from "
                           "normal images with an image AUROC of 0.62 (patch 1-NN; pooled: 0.55).")
    assert "The offline-pretrained teacher reaches 0.58 (-0.04 against random; pooled: 0.66)." in text
    assert "The imagenet teacher reaches 0.91 (+0.29 against random; pooled: 0.88)." in text
    assert "The largest value here is the imagenet teacher's." in text
    assert "below 0.5" not in text and "not at hand" not in text
    assert text.endswith("With only 70 test images, a difference of a few hundredths is within the noise of the "
                         "subset; the recorded runs of section 16.5 use the whole test split.")


def test_the_nearest_normal_prose_with_imagenet_missing_and_a_value_below_one_half():
    text = tk.nearest_normal_markdown({"random": 0.45, "offline-pretrained": 0.73},
                                      {"random": 0.5, "offline-pretrained": 0.7}, 12)
    assert "image AUROC of 0.45" in text and "+0.28 against random" in text
    assert "The imagenet teacher is not at hand here, so its panel is empty." in text
    assert "The largest value here is the offline-pretrained teacher's." in text
    assert "A value below 0.5 means that the normal test images score *higher*" in text


def test_the_nearest_normal_prose_with_the_random_teacher_alone():
    text = tk.nearest_normal_markdown({"random": 0.64}, {"random": 0.6}, 5)
    assert "The offline-pretrained teacher is not at hand here" in text and "The imagenet teacher is not" in text
    assert "largest value" not in text and "below 0.5" not in text


# ----------------------------------------------------------------------------- 16.5 the recorded comparisons


def _candidates() -> list[dict]:
    records = [
        {"candidate": "random", "teacher": "random init", "knn_image_auroc": 0.512,
         "ds": {"epochs": 3, "image_auroc": 0.534, "pixel_auroc": 0.601, "pro": 0.222},
         "provenance": {"data": "mt-defects"}},
        {"candidate": "offline-pretrained", "teacher": "offline (sha256 abc)", "knn_image_auroc": 0.6789,
         "pretraining": {"recipe": "fractal", "wall_seconds": 45.0}, "provenance": {"data": "mt-defects"}},
        {"candidate": "runs/teacher/ssl.pt", "teacher": "file ssl.pt (sha256 def)", "knn_image_auroc": float("nan"),
         "pretraining": {"recipe": "ssl", "wall_seconds": 1800.0},
         "ds": {"epochs": 3, "image_auroc": 0.701, "pixel_auroc": 0.802, "pro": 0.403},
         "provenance": {"data": "synthetic"}},
    ]
    return candidate_rows(records)


def test_the_candidates_table():
    cands = _candidates()
    text = tk.candidates_table(cands, "cands.json")
    lines = text.splitlines()
    assert lines[0].startswith("| candidate | pretraining recipe | pretraining time | 1-NN image AUROC |")
    assert lines[1] == "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    assert lines[2] == "| `random` | none | — | 0.512 | 3 | 0.534 | 0.601 | 0.222 | random init |"
    assert lines[3] == ("| `offline-pretrained` | fractal | 45 s | 0.679 | — | — | — | — | "
                        "offline (sha256 abc) |")  # no DS run: '—'
    assert lines[4] == ("| `ssl.pt` | ssl | 30 min | — | 3 | 0.701 | 0.802 | 0.403 | "
                        "sha256 def |")  # a NaN proxy: '—'; minutes from 2 min on; a file by its name, once
    assert lines[-1] == ("*From `cands.json` (weights files by their name; the file holds their paths); data: "
                         "mt-defects, synthetic. — = not measured.*")
    assert tk.candidate_data(cands) == "mt-defects, synthetic"
    # no candidate trained with DS: no DS columns of dashes, and the caption says why
    no_ds = tk.candidates_table([dict(r, ds_epochs=None) for r in cands], "cands.json").splitlines()
    assert no_ds[0] == "| candidate | pretraining recipe | pretraining time | 1-NN image AUROC | teacher weights |"
    assert no_ds[1] == "| --- | --- | --- | --- | --- |" and no_ds[2] == "| `random` | none | — | 0.512 | random init |"
    assert no_ds[-1].endswith("No candidate has been trained with DS yet, so there are no DS columns.*")


def test_missing_files_name_their_commands(tmp_path):
    text = tk.candidates_missing(tmp_path / "teacher" / "candidates.json")
    assert text.startswith(f"No candidates file ({tmp_path / 'teacher' / 'candidates.json'}).")
    assert "python benchmarks/teacher_candidates.py random offline-pretrained" in text
    short = tk.teacher_study_missing(tmp_path / "teacher.json")
    assert short.startswith(f"No teacher study ({tmp_path / 'teacher.json'}).")
    assert "--epochs <E>" in short and "(add 'imagenet' to --variants" in short and "--out-dir" not in short
    longer = tk.teacher_study_missing(tmp_path / "teacher.json", longer=True)
    assert longer.startswith("No 40-epoch teacher study (") and "--epochs 40" in longer
    assert longer.endswith("--out-dir results/ablations-40-epochs")


def test_the_teacher_study_table_with_several_seeds_and_one():
    study = _study({"offline-pretrained": [0.70, 0.80, 0.90], "random": [0.55]})
    path = Path("results/ablations/mt-defects/teacher.json")
    text = tk.teacher_study_table(_rows(study), path, study)
    lines = text.splitlines()
    assert lines[0] == "| variant | seeds | epochs | image AUROC | pixel AUROC | PRO | teacher weights |"
    assert lines[2] == ("| offline-pretrained | 3 | 5 | 0.800 ± 0.100 | 0.700 ± 0.100 | 0.600 ± 0.100 | "
                        "offline-pretrained weights |")
    assert lines[3] == "| random | 1 | 5 | 0.550 | 0.450 | 0.350 | random weights |"  # one seed: no spread
    assert lines[-1] == ("*Mean ± standard deviation over seeds, from `ablations/mt-defects/teacher.json` "
                         "(fake-tiles).*")
    titled = tk.teacher_study_table(_rows(study), path, study, title="The same study at 40 epochs.")
    assert titled == "**The same study at 40 epochs.**\n\n" + text


def test_the_defect_type_figure_labels():
    study = _study({"random": [0.5], "offline-pretrained": [0.6]}, epochs=40)
    assert tk.defect_type_labels(_rows(study), study) == {
        "teacher": "offline-pretrained weights, random weights", "data": "fake-tiles, 40 epochs"}


# ----------------------------------------------------------------------------- the goal


def test_the_goal_is_not_measured_without_the_study_or_without_the_offline_teacher():
    text = tk.goal_markdown([], None, study_path=Path("results/ablations/mt-defects/teacher.json"))
    assert text.startswith(f"**Goal (DS image AUROC $\\ge$ {GOAL_IMAGE_AUROC:.2f} on MT Defects with the "
                           "offline-pretrained teacher): not yet measured.**")
    assert text.endswith("`results/ablations/mt-defects/teacher.json` is missing; the command above writes it.")
    study = _study({"random": [0.6, 0.62]})
    text = tk.goal_markdown(_rows(study), study)
    assert text.endswith("The teacher study has no offline-pretrained variant.")


def test_the_goal_at_one_budget_met():
    study = _study({"offline-pretrained": [0.84, 0.86], "random": [0.5, 0.6]})
    text = tk.goal_markdown(_rows(study), study)
    assert text == ("**Goal: DS image AUROC $\\ge$ 0.80 with the offline-pretrained teacher. Measured: 0.850 ± "
                    "0.014 over 2 seed(s), 5 epochs, on fake-tiles. Goal met: yes.** The random teacher, trained "
                    "the same way, reaches 0.550 ± 0.071 over 2 seed(s).")


def test_the_goal_at_40_epochs_not_met_with_5_epochs_beside_it():
    short = _study({"offline-pretrained": [0.60, 0.64], "random": [0.50, 0.54]})
    longer = _study({"offline-pretrained": [0.75], "random": [0.55]}, epochs=40, dataset="mt-defects")
    text = tk.goal_markdown(_rows(short), short, _rows(longer), longer)
    goal, more = text.split("\n\n")
    assert "Measured: 0.750 ± 0.000 over 1 seed(s), 40 epochs, on mt-defects. Goal met: no.**" in goal
    assert goal.endswith("reaches 0.550 over 1 seed(s).")  # one seed: no spread
    assert more.startswith("At 5 epochs the same teacher gave 0.620 ± 0.028 over 2 seed(s), the random one 0.520")
    assert "the gap between the two teachers grows from 0.100 to 0.200 with the longer training." in more
    assert "The random teacher moves by +0.030, the offline one by +0.130." in more
    assert more.endswith("Chapter 15 draws how the scores of the 40-epoch runs move, epoch by epoch.")


def test_a_shrinking_gap_and_a_missing_random_teacher():
    short = _study({"offline-pretrained": [0.80], "random": [0.50]})
    longer = _study({"offline-pretrained": [0.82], "random": [0.70]}, epochs=40)
    text = tk.goal_markdown(_rows(short), short, _rows(longer), longer)
    assert "Goal met: yes." in text and "shrinks from 0.300 to 0.120" in text
    alone = _study({"offline-pretrained": [0.9]}, epochs=40)
    text = tk.goal_markdown(_rows(short), short, _rows(alone), alone)
    assert "The random teacher, trained" not in text
    assert "At 5 epochs the same teacher gave 0.800 ± 0.000 over 1 seed(s) (random teacher: 0.500)." in text


def test_a_40_epoch_study_without_the_offline_teacher_leaves_the_goal_at_5_epochs():
    short = _study({"offline-pretrained": [0.81], "random": [0.5]})
    longer = _study({"random": [0.6]}, epochs=40)
    text = tk.goal_markdown(_rows(short), short, _rows(longer), longer)
    assert "Measured: 0.810 ± 0.000 over 1 seed(s), 5 epochs" in text and "\n\n" not in text


def test_chapter_16_generates_its_text_here():
    import nbformat

    nb = nbformat.read(REPO / "notebooks" / "16_teacher_knowledge.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for name in ("nearest_normal_markdown", "candidates_table", "teacher_study_table", "goal_markdown",
                 "missing_teachers_markdown", "settings_summary"):
        assert f"report.{name}(" in code, name
    assert "def study_table" not in code and "goal_status(" not in code
    shows = [c.source for c in nb.cells if c.cell_type == "code" and "md(" in c.source and "def md(" not in c.source]
    assert len(shows) >= 6 and max(len(s.splitlines()) for s in shows) <= 25, \
        "a chapter cell that shows text builds it in dskd.report.teacher_knowledge"


@pytest.mark.parametrize("spec", [0.5, 0.8])
def test_the_goal_threshold_is_the_studys(spec):
    study = _study({"offline-pretrained": [spec]})
    assert ("Goal met: yes." if spec >= GOAL_IMAGE_AUROC else "Goal met: no.") in tk.goal_markdown(_rows(study), study)
