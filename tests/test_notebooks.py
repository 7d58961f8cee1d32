"""Every chapter runs top to bottom on the quick defaults, within its time budget, and shows a figure.

The equality checks inside the chapters (teaching code == package code) are tests through this file.
"""
import pytest

from notebook_runner import NOTEBOOK_BUDGET_S, chapter_paths, figure_count

CHAPTERS = chapter_paths()


def test_there_are_chapters():
    assert CHAPTERS, "no notebooks/NN_*.ipynb found"


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs(path, executed_notebook):
    run = executed_notebook(path)
    assert run.error is None, f"{path.name} failed:\n{run.error[-3000:]}"
    assert run.seconds <= NOTEBOOK_BUDGET_S, f"{path.name} took {run.seconds:.0f} s (budget {NOTEBOOK_BUDGET_S} s)"
    assert figure_count(run.notebook) >= 1, f"{path.name} shows no figure"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_is_committed_without_outputs(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"
