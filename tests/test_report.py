"""dskd.report: the Markdown that the book's pages show, generated from the package's records.

The teacher's descriptions come from its provenance file; the "runs in this book" table and chapter 15's
discussion from result trees (the repository's own, and the fake ones of tests/test_results_figures.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dskd.config import TrainConfig
from dskd.report import runs as runs_report
from dskd.report import teacher as teacher_report
from dskd.report.results import ResultsReport, command_out_dir

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- the teacher


def test_the_shipped_teacher_is_described_from_its_provenance():
    prov = teacher_report.shipped_teacher_provenance()
    text = teacher_report.shipped_teacher_sentence()
    c = prov["config"]
    assert teacher_report.recipe_kind(prov) == "fractal"
    assert f"{c['n_categories']} kinds of computer-drawn fractals" in text
    assert f"{c['per_category']} images of each" in text and f"{c['epochs']} epochs" in text
    assert prov["sha256"][:12] in text and "not the paper's teacher" in text
    assert "rotation" not in text.lower() and "It saw no photograph at all" in text


def test_another_recipe_gives_another_description(tmp_path):
    prov = teacher_report.shipped_teacher_provenance()
    prov = {**prov, "recipe": "ssl (RotNet)", "config": {**prov["config"], "recipe": "ssl", "ssl_sources": "sklearn"}}
    text = teacher_report.shipped_teacher_sentence(prov)
    assert "predicting the rotation of crops of the sample photographs that scikit-learn ships" in text
    assert "fractal" not in text and "The only photographs it saw are those crops" in text
    path = tmp_path / "teacher.json"
    path.write_text(json.dumps({**prov, "recipe": "mix", "config": {**prov["config"], "recipe": "mix"}}))
    mixed = teacher_report.how_it_learned(teacher_report.shipped_teacher_provenance(path))
    assert "fractals" in mixed and "rotation" in mixed


def test_an_unknown_recipe_and_a_missing_file_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown pretraining recipe 'jigsaw'"):
        teacher_report.recipe_kind({"recipe": "jigsaw", "config": {}})
    with pytest.raises(FileNotFoundError, match="provenance file .*nowhere.json is missing"):
        teacher_report.shipped_teacher_provenance(tmp_path / "nowhere.json")


@pytest.mark.parametrize("name, words", [
    ("offline-pretrained", ["`offline-pretrained`", "fractals", "not the paper's teacher"]),
    ("imagenet", ["`imagenet`", "ResNet18_Weights.IMAGENET1K_V1"]),
    ("random", ["`random`", "random network distillation"]),
    ("/tmp/my_resnet.pth", ["`/tmp/my_resnet.pth`", "local file"]),
])
def test_the_build_names_its_teacher(name, words):
    text = teacher_report.build_teacher_markdown(name)
    assert all(w in text for w in words), text


def test_the_build_teacher_follows_dskd_teacher(monkeypatch):
    monkeypatch.setenv("DSKD_TEACHER", "random")
    assert "`random`" in teacher_report.build_teacher_markdown()
    monkeypatch.setenv("DSKD_TEACHER", "offline-pretrained")
    assert "fractals" in teacher_report.build_teacher_markdown()


def test_chapter_2_warns_about_the_teacher_it_uses():
    offline = teacher_report.teacher_warning_markdown("offline-pretrained")
    assert offline.startswith("```{warning}\n") and offline.endswith("\n```")
    assert "fractals" in offline and "rotation" not in offline
    assert teacher_report.teacher_warning_markdown("imagenet").startswith("```{note}\n")


def test_every_page_that_describes_the_shipped_teacher_generates_it():
    """One source of truth: the pages call dskd.report.teacher instead of describing the teacher by hand."""
    import nbformat

    def code(stem):
        nb = nbformat.read(REPO / "notebooks" / f"{stem}.ipynb", as_version=4)
        return "\n".join(c.source for c in nb.cells if c.cell_type == "code")

    def prose(stem):
        nb = nbformat.read(REPO / "notebooks" / f"{stem}.ipynb", as_version=4)
        return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")

    assert "teacher_warning_markdown" in code("02_teacher")
    assert "{warning}" not in prose("02_teacher")  # the warning is generated, not written in a cell
    assert "shipped_teacher_sentence" in code("16_teacher_knowledge")
    assert "and/or" not in prose("16_teacher_knowledge")
    assert "{{ build_teacher }}" in (REPO / "book" / "intro.md").read_text()
    assert "{{ shipped_teacher }}" in (REPO / "book" / "course_guide.md").read_text()
    for stem in ("02_teacher", "16_teacher_knowledge"):
        assert "two sample photographs" not in prose(stem).split("16.2")[0]


# ----------------------------------------------------------------------------- runs in this book


def test_the_runs_of_the_repository_explain_its_mt_defects_numbers():
    runs = runs_report.recorded_runs(REPO / "results")
    offline = {(r["folder"], r["epochs"]): r for r in runs if r["data"] == "mt-defects"
               and r["teacher"] == "offline-pretrained"}
    assert round(100 * offline[("ablations", 5)]["image_auroc"], 1) == 71.5
    assert round(100 * offline[("mt-defects-fp32", 40)]["image_auroc"], 1) == 90.7
    assert round(100 * offline[("mt-defects-100-epochs", 100)]["image_auroc"], 1) == 96.7
    assert offline[("mt-defects-fp32", 40)]["seeds"] == [0, 1, 2]
    assert offline[("mt-defects-100-epochs", 100)]["seeds"] == [0]
    assert offline[("mt-defects", 40)]["seeds"] == [0, 1, 2] and offline[("mt-defects", 40)]["build"] == \
        runs_report.build_label(TrainConfig().to_dict()) == "normalized, separate"
    summary = runs_report.runs_summary(REPO / "results")
    assert "**71.5** after 5 epochs" in summary and "**96.7** after 100 epochs (1 seed" in summary
    assert "bf16, normalized, separate, `mt-defects/`" in summary and "and so does the build (*raw, joint* before the default changed, *normalized, separate* since" in summary
    table = runs_report.runs_markdown(REPO / "results")
    assert "| mt-defects | `offline-pretrained` | 40 | 128 x 128 | fp32 | raw, joint | 0, 1, 2 | **90.7 ± 2.0** |" in table
    assert "| mt-defects | `offline-pretrained` | 40 | 128 x 128 | bf16 | raw, joint | 0, 1, 2 | **91.7 ± 3.6** |" in table
    assert "| mt-defects | `offline-pretrained` | 40 | 128 x 128 | bf16 | normalized, separate | 0, 1, 2 | " \
        "**94.8 ± 1.3** |" in table
    # the seed continued to 100 epochs is the earlier build's: chapter 15 says which run it continued
    report = ResultsReport.read(REPO / "results")
    # Table 5 was recorded again with the default build: chapter 15 sets it against the earlier one in bf16
    moved = report.build_change()
    assert "(`results/mt-defects-bf16/`), seed by seed" in moved and "| 2 | 88.3 → 93.4 (+5.1) |" in moved
    assert "| Image AUROC | 91.7 ± 3.6 | 94.8 ± 1.3 | +3.1 | 3.6 | yes |" in moved
    assert "(this seed's run of the earlier build, *raw, joint*, in `results/mt-defects-fp32/`, whose checkpoint it " \
        "continued)" in report.longer_budget(report.longer_records()[0])
    assert "[15](../notebooks/15_results.ipynb)" in table and "[10](../notebooks/10_ablation_architecture.ipynb)" in table


def test_the_live_studies_use_the_category_the_runs_page_names():
    import nbformat

    for stem in ("08_inference", "10_ablation_architecture", "11_ablation_dfe", "12_ablation_layers",
                 "13_ablation_extras"):
        nb = nbformat.read(REPO / "notebooks" / f"{stem}.ipynb", as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert f'TrainConfig.quick(category="{runs_report.LIVE_STUDY_CATEGORY}"' in code, stem


def test_every_recorded_folder_names_the_chapters_that_use_it():
    for folder in runs_report.folders_in(REPO / "results"):
        for stem in runs_report.chapters_using(folder):
            assert (REPO / "notebooks" / f"{stem}.ipynb").is_file(), stem
    with pytest.raises(KeyError, match="no chapter is known to read results/elsewhere/"):
        runs_report.chapters_using("elsewhere")


def test_every_results_and_ablation_chapter_links_the_runs_page():
    import nbformat

    for stem in sorted({s for stems in runs_report.WHERE_USED.values() for s in stems}):
        nb = nbformat.read(REPO / "notebooks" / f"{stem}.ipynb", as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert "(../book/runs_in_this_book.md)" in text, f"{stem} does not link the runs page"


@pytest.fixture(scope="module")
def fake_results(tmp_path_factory):
    from test_results_figures import make_fake_results

    return make_fake_results(tmp_path_factory.mktemp("fake_report"))


@pytest.mark.slow
def test_runs_table_of_a_fake_tree(fake_results):
    runs = {(r["folder"], r["data"]): r for r in runs_report.recorded_runs(fake_results)}
    assert set(runs) == {("mt-defects", "mt-defects"), ("mt-defects-100-epochs", "mt-defects"),
                         ("mvtec", "mvtec"), ("mvtec3d", "mvtec3d")}
    assert runs[("mt-defects", "mt-defects")]["seeds"] == [0, 1] and runs[("mt-defects", "mt-defects")]["epochs"] == 2
    assert runs[("mt-defects-100-epochs", "mt-defects")]["epochs"] == 3
    table = runs_report.runs_markdown(fake_results)
    assert table.count("\n") == 2 + 4 - 1 + 1  # header, rule, four recorded rows, the live row
    assert "| synthetic (disc; fabric in chapters 8 and 10-13), generated |" in table


# ----------------------------------------------------------------------------- chapter 15's report


@pytest.mark.slow
def test_results_report_of_a_fake_tree(fake_results):
    report = ResultsReport.read(fake_results)
    assert "mt-defects: 2 result file(s)" in report.files_summary()
    assert "| mt-defects | Table 5 | 2 | 1 of 1 |" in report.overview()
    assert "4 result file(s) in all" in report.overview()
    assert report.table("table5").startswith("**Table 5")
    assert report.continued and report.continued[0]["from"] == 2 and report.continued[0]["to"] == 3
    section = report.gap_section("table5")
    assert section.startswith("### Table 5\n\nOur runs: image AUROC: ours minus the paper's is")
    for factor in ("Teacher weights", "Epochs", "Image size", "Split", "PRO code", "Seeds", "Per defect type"):
        assert f"- **{factor}.**" in section
    assert "Seed 0, continued from epoch 2 to 3 (section 5)" in section
    assert "(1 category with a run)" in report.gap_section("table1")
    assert "PRO code" not in report.gap_section("table1")  # Table 1 has image AUROC only
    assert "dskd reproduce mvtec --category carpet" in report.fill_commands()
    assert f"--out-dir {fake_results}" in report.missing_figures("mvtec", "Fig. 5")
    assert "Seed 0 trained to 3 epochs" in report.longer_budget(report.longer_records()[0])
    with pytest.raises(KeyError, match="unknown table 'table9'"):
        report.specific_factor("table9")


@pytest.mark.slow
def test_what_moved_when_table_5_was_re_recorded_with_another_build(fake_results, tmp_path):
    """Chapter 15 sets Table 5 against the earlier build's runs in the same precision, seed by seed; while
    Table 5 still holds the earlier build it says that Table 5 is due to be recorded again."""
    import shutil

    root = tmp_path / "results"
    shutil.copytree(fake_results, root)
    report = ResultsReport.read(root)
    assert report.build_change().startswith("Every run of Table 5 builds today's default, *normalized, separate*")
    earlier = root / "mt-defects-bf16" / "mt-defects"
    earlier.mkdir(parents=True)
    for f in sorted((root / "mt-defects").glob("seed*.json")):
        rec = json.loads(f.read_text())
        rec["config"] = {k: v for k, v in rec["config"].items() if k not in ("dfe_input", "detach_decoder_input")}
        rec["metrics"] = {**rec["metrics"], "image_auroc": rec["metrics"]["image_auroc"] - 0.1}
        (earlier / f.name).write_text(json.dumps(rec))
    now = {r["seed"]: r["metrics"] for r in ResultsReport.read(root).mt_records()}
    text = ResultsReport.read(root).build_change()
    assert "changed from *raw, joint* to *normalized, separate*" in text and "`results/mt-defects-bf16/`" in text
    m = now[1]
    assert (f"| 1 | {100 * m['image_auroc'] - 10:.1f} → {100 * m['image_auroc']:.1f} (+10.0) | "
            f"{100 * m['pixel_auroc']:.1f} → {100 * m['pixel_auroc']:.1f} (+0.0) |") in text
    assert "| Metric (%) | raw, joint | normalized, separate | change | seed spread | within |" in text
    # Table 5 itself of the earlier build, the default another: the chapter says Table 5 is due again
    shutil.rmtree(root / "mt-defects")
    shutil.copytree(earlier, root / "mt-defects")
    assert "the package's default now builds *normalized, separate* (chapters 11 and 13): Table 5 is due to be " \
        "re-recorded" in ResultsReport.read(root).build_change()


def test_results_report_of_an_empty_tree(tmp_path):
    report = ResultsReport.read(tmp_path)
    assert "No result file of ours exists yet" in report.overview()
    assert report.learning_curve().startswith("The recorded MT Defects runs hold no learning curve")
    assert report.per_defect_type().startswith("No MT Defects result file yet")
    assert report.longer_records() == [] and report.continued == [] and report.build_change() == ""
    assert "No run of ours for Table 5 yet" in report.gap_section("table5")
    assert command_out_dir(REPO / "results") == "results" and command_out_dir(tmp_path) == str(tmp_path)
