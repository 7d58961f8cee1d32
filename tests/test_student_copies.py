"""Student copies: the chapters without their solution cells (dskd.student_copies)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from dskd.student_copies import SOLUTION_TAG, main, make_student_copies, strip_solutions

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
_EXERCISES_HEADING = re.compile(r"^#{1,6}\s+(\d+(\.\d+)*\.?\s+)?Exercises?\b", re.IGNORECASE | re.MULTILINE)

_SOLUTION_MD = "```{admonition} Solution\n:class: dropdown\nThe answer is 42.\n```"


def _synthetic_notebook() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell("# 1. A chapter\n\nGoals ..."),
        new_code_cell("x = 1\nx", execution_count=1,
                      outputs=[new_output("execute_result", {"text/plain": "1"}, execution_count=1)]),
        new_markdown_cell("## Exercises\n\n1. What is x?"),
        new_markdown_cell(_SOLUTION_MD, metadata={"tags": [SOLUTION_TAG]}),
        new_code_cell("print(x + 41)", metadata={"tags": [SOLUTION_TAG, "hide-input"]}, execution_count=2,
                      outputs=[new_output("stream", name="stdout", text="42\n")]),
        new_markdown_cell("2. Plot x.", metadata={"tags": ["keep-me"]}),
        new_code_cell("import matplotlib", metadata={"tags": ["hide-output"]}),
    ]
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "dskd": {"chapter": 1},
    })
    nbformat.validate(nb)
    return nb


def _solution_cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if SOLUTION_TAG in c.get("metadata", {}).get("tags", [])]


def _has_exercises(nb) -> bool:
    return any(c.cell_type == "markdown" and _EXERCISES_HEADING.search(c.source) for c in nb.cells)


# ----------------------------------------------------------------------------- a synthetic notebook


def test_strip_solutions_drops_solution_cells_and_keeps_the_rest_in_order():
    nb = _synthetic_notebook()
    student = strip_solutions(nb)
    assert [c.source for c in student.cells] == [c.source for i, c in enumerate(nb.cells) if i not in (3, 4)]
    assert _solution_cells(student) == []
    assert student.cells[3].metadata == {"tags": ["keep-me"]}  # other tags and cell metadata are kept
    assert student.cells[4].metadata == {"tags": ["hide-output"]}
    assert [c.get("id") for c in student.cells] == [c.get("id") for i, c in enumerate(nb.cells) if i not in (3, 4)]
    nbformat.validate(student)


def test_strip_solutions_clears_outputs_and_keeps_metadata():
    nb = _synthetic_notebook()
    student = strip_solutions(nb)
    code = [c for c in student.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert student.metadata == nb.metadata
    assert student.nbformat == nb.nbformat and student.nbformat_minor == nb.nbformat_minor


def test_strip_solutions_leaves_its_input_alone():
    nb = _synthetic_notebook()
    before = nbformat.writes(nb)
    strip_solutions(nb)
    assert nbformat.writes(nb) == before


def test_strip_solutions_works_on_a_plain_dict():
    nb = {"cells": [{"cell_type": "markdown", "metadata": {"tags": ["solution"]}, "source": "s"},
                    {"cell_type": "code", "metadata": {}, "source": "1", "outputs": [{"x": 1}],
                     "execution_count": 3}],
          "metadata": {"a": 1}, "nbformat": 4, "nbformat_minor": 5}
    student = strip_solutions(nb)
    assert student == {"cells": [{"cell_type": "code", "metadata": {}, "source": "1", "outputs": [],
                                  "execution_count": None}],
                       "metadata": {"a": 1}, "nbformat": 4, "nbformat_minor": 5}


def test_make_student_copies_writes_every_notebook_and_never_the_originals(tmp_path):
    src, out = tmp_path / "notebooks", tmp_path / "student"
    src.mkdir()
    nbformat.write(_synthetic_notebook(), src / "01_a.ipynb")
    nbformat.write(new_notebook(cells=[new_markdown_cell("# 2. B")]), src / "02_b.ipynb")
    (src / "README.md").write_text("not a notebook")
    (src / ".ipynb_checkpoints").mkdir()
    nbformat.write(_synthetic_notebook(), src / ".ipynb_checkpoints" / "01_a-checkpoint.ipynb")
    original = (src / "01_a.ipynb").read_bytes()

    written = make_student_copies(src, out)

    assert written == [out / "01_a.ipynb", out / "02_b.ipynb"]
    assert sorted(p.name for p in out.iterdir()) == ["01_a.ipynb", "02_b.ipynb"]
    copy = nbformat.read(out / "01_a.ipynb", as_version=4)
    nbformat.validate(copy)
    assert _solution_cells(copy) == [] and len(copy.cells) == 5
    assert (src / "01_a.ipynb").read_bytes() == original


def test_make_student_copies_refuses_to_write_over_the_sources(tmp_path):
    nbformat.write(_synthetic_notebook(), tmp_path / "01_a.ipynb")
    with pytest.raises(ValueError, match="must differ"):
        make_student_copies(tmp_path, tmp_path / ".")
    with pytest.raises(FileNotFoundError):
        make_student_copies(tmp_path / "nowhere", tmp_path / "out")


def test_the_command_line_makes_the_copies(tmp_path):
    """`python -m dskd.student_copies SRC OUT`, as `make student-notebooks` runs it."""
    src, out = tmp_path / "notebooks", tmp_path / "student_notebooks"
    src.mkdir()
    nbformat.write(_synthetic_notebook(), src / "01_a.ipynb")
    proc = subprocess.run([sys.executable, "-m", "dskd.student_copies", str(src), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "2 solution cells removed" in proc.stdout and "1 student notebook in" in proc.stdout
    assert _solution_cells(nbformat.read(out / "01_a.ipynb", as_version=4)) == []


def test_the_command_line_refuses_to_write_over_the_sources(tmp_path, capsys):
    nbformat.write(_synthetic_notebook(), tmp_path / "01_a.ipynb")
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), str(tmp_path)])
    assert exit_.value.code != 0 and "must differ" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the real chapters


def test_the_exercises_heading_pattern():
    assert _EXERCISES_HEADING.search("## Exercises\n\n1. ...")
    assert _EXERCISES_HEADING.search("text\n### 6.5 Exercises")
    assert _EXERCISES_HEADING.search("## Exercise")
    assert not _EXERCISES_HEADING.search("Exercises follow below.")
    assert not _EXERCISES_HEADING.search("## Exercised muscles")


def test_every_chapter_with_exercises_has_solutions_and_its_student_copy_has_none(tmp_path):
    if not CHAPTERS:
        pytest.skip("no notebooks/NN_*.ipynb yet: nothing to copy")
    written = make_student_copies(REPO / "notebooks", tmp_path)
    assert [p.name for p in written] == [p.name for p in sorted((REPO / "notebooks").glob("*.ipynb"))]
    without_solutions, leaked = [], []
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        copy = nbformat.read(tmp_path / path.name, as_version=4)
        if _has_exercises(nb) and not _solution_cells(nb):
            without_solutions.append(path.name)
        if _solution_cells(copy):
            leaked.append(path.name)
        kept = [c.source for c in nb.cells if SOLUTION_TAG not in c.get("metadata", {}).get("tags", [])]
        assert [c.source for c in copy.cells] == kept, f"{path.name}: the student copy lost non-solution cells"
    assert without_solutions == [], (
        f"chapters with an Exercises heading but no cell tagged '{SOLUTION_TAG}': {without_solutions}"
    )
    assert leaked == [], f"student copies that still hold solution cells: {leaked}"
