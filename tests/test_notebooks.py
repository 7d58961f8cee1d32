"""Every chapter runs top to bottom on the quick defaults, within its time budget, and shows a figure.

The equality checks inside the chapters (teaching code == package code) are tests through this file.
"""
import json
import shutil

import numpy as np
import pytest

from notebook_runner import budget_problems, chapter_paths, figure_count

CHAPTERS = chapter_paths()


def test_there_are_chapters():
    assert CHAPTERS, "no notebooks/NN_*.ipynb found"


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs(path, executed_notebook):
    run = executed_notebook(path)
    assert run.error is None, f"{path.name} failed:\n{run.error[-3000:]}"
    over = budget_problems(run)
    assert not over, f"{path.name} is over its time budget: {'; '.join(over)} ({run.timing_report()})"
    assert figure_count(run.notebook) >= 1, f"{path.name} shows no figure"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_is_committed_without_outputs(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"


#: code lines longer than this are cut off (or wrapped) in the book's column and in a notebook's cell
CODE_LINE_LIMIT = 88


def long_code_lines(nb) -> list[str]:
    """'cell N: line' for every code line longer than CODE_LINE_LIMIT (the install cell, issue 15's, aside)."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "importlib.util.find_spec(\"dskd\")" in cell.source:
            continue
        found += [f"cell {i}: {line.strip()[:60]}... ({len(line)} characters)"
                  for line in cell.source.splitlines() if len(line) > CODE_LINE_LIMIT]
    return found


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_code_lines_fit_the_column(path):
    import nbformat

    long = long_code_lines(nbformat.read(path, as_version=4))
    assert not long, f"{path.name}: code lines over {CODE_LINE_LIMIT} characters:\n  " + "\n  ".join(long[:10])


def test_long_code_lines_are_found():
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("x" * 200),
                                         nbformat.v4.new_code_cell("a = 1\n" + "b = '" + "x" * 90 + "'")])
    assert long_code_lines(nb) == [f"cell 1: b = '{'x' * 55}... (96 characters)"]


# ------------------------------------------------------------- chapter 15 with recorded runs present


@pytest.mark.slow
def test_15_results_with_recorded_runs(tmp_path, monkeypatch):
    """Chapter 15 against a results folder holding runs (tiny `reproduce` runs on fake data trees), so
    the branches that show our numbers, the per-defect-type chart and the galleries run too. The chapter
    reads ``dskd.results.results_root()``, which ``$DSKD_RESULTS`` points at the fake folder."""
    from notebook_runner import NOTEBOOKS, execute
    from test_results_figures import make_fake_results

    results = make_fake_results(tmp_path / "fake")
    (results / "README.md").write_text("fake results for chapter 15's test\n")  # what results_root() looks for
    monkeypatch.setenv("DSKD_RESULTS", str(results))  # the kernel inherits it
    (tmp_path / "nb").mkdir()
    path = tmp_path / "nb" / "15_results.ipynb"
    shutil.copy2(NOTEBOOKS / "15_results.ipynb", path)
    run = execute(path, tmp_path)
    assert run.error is None, run.error[-3000:]
    assert not budget_problems(run), run.timing_report()
    out = "\n".join(o.get("text", "") + o.get("data", {}).get("text/markdown", "")
                    for c in run.notebook.cells if c.cell_type == "code" for o in c.outputs)
    rec = json.loads((results / "mt-defects" / "seed0.json").read_text())
    assert "mt-defects: 2 result file(s)" in out and "no MT Defects result file" not in out
    assert f"| 0 | {rec['provenance']['teacher']} | 2 | 32x32 | {rec['provenance']['device']} |" in out  # runs rows
    assert f"{100 * rec['metrics']['image_auroc']:.1f}" in out
    assert "Nothing to redraw" not in out  # the checkpoint is there: the grid is redrawn
    mt = [json.loads(f.read_text()) for f in sorted((results / "mt-defects").glob("seed*.json"))]
    # a code that gives NaN on a map (STPM's on a tiny model's flat curve) is left out of the mean, as the chapter does
    stpm = 100 * np.nanmean([np.nan if r["pro_codes"]["stpm"] is None else r["pro_codes"]["stpm"] for r in mt])
    assert f"(mean over {len(mt)} result file{'s' if len(mt) > 1 else ''}): exact" in out  # the PRO codes, measured
    assert f"STPM's, rescaled **{stpm:.1f}**" in out
    longer = json.loads((results / "mt-defects-100-epochs" / "mt-defects" / "seed0.json").read_text())
    assert [p["epoch"] for p in longer["training"]["curve"]] == [1, 2, 3]  # continued from the 2-epoch seed 0
    gain = longer["training"]["curve"][2]["image_auroc"] - rec["metrics"]["image_auroc"]
    assert "Seed 0 trained to 3 epochs" in out and "epochs 3 to 3 trained on" in out
    assert f"From epoch 2 (this seed's Table 5 run, whose checkpoint it continued) to epoch 3: image AUROC {gain:+.3f}" in out
    assert f"Seed 0, continued from epoch 2 to 3 (section 5), moved by image AUROC {100 * gain:+.1f}" in out
    assert "fig7_seed0_fray.png (written by the run)" in out and "fig5_seed0.png (written by the run)" in out
    assert "epochs 2 (paper 200)" in out and "a random teacher (random network distillation)" in out
    assert "Our runs: image AUROC: ours minus the paper's is" in out and "(1 category with a run)" in out
    assert "no figure yet for 14 of 15 categories" in out
    assert f"--out-dir {results}" in out  # commands name the folder the chapter reads
    assert "dskd reproduce mt-defects --teacher imagenet --out-dir results-paper" in out  # the paper's setting
    assert figure_count(run.notebook) >= 8
