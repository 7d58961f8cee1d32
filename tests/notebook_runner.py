"""Execute chapters with nbclient, the way the book build does (cwd = notebooks/)."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
import nbclient_short_poll  # noqa: E402

# the book build installs the same work-around (book/_ext/dskd_sphinx_fixes.py): short polls of the shell
# socket for each cell's reply (nbclient_short_poll.py says why)
nbclient_short_poll.install()


REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
#: every chapter must run top to bottom on a 2-core CPU within this budget
NOTEBOOK_BUDGET_S = 180


@dataclass
class ExecutedNotebook:
    path: Path
    output: Path
    seconds: float
    error: Optional[str]
    notebook: nbformat.NotebookNode
    #: seconds from the start of ``execute`` until the kernel was ready for the first cell
    startup_seconds: float = 0.0
    #: (cell index, seconds, first line of the source) for every code cell that ran
    cell_seconds: list = field(default_factory=list)

    def timing_report(self, n: int = 3) -> str:
        """Kernel start-up and the ``n`` slowest cells: what a budget failure message should say."""
        slow = sorted(self.cell_seconds, key=lambda c: -c[1])[:n]
        cells = "; ".join(f"cell {i} {s:.0f} s ({src!r})" for i, s, src in slow)
        return f"kernel start {self.startup_seconds:.0f} s; slowest: {cells}"


def chapter_paths() -> list[Path]:
    """The numbered chapters, then the appendices (``appendix_*.ipynb``): every notebook the book executes."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) + sorted(NOTEBOOKS.glob("appendix_*.ipynb"))


def execute(path: Path, out_dir: Path, timeout: int = 600) -> ExecutedNotebook:
    nb = nbformat.read(path, as_version=4)
    began: dict[int, float] = {}
    cells: list = []

    def on_cell_start(cell, cell_index):
        began[cell_index] = time.perf_counter()

    def on_cell_executed(cell, cell_index, execute_reply):
        first = cell.source.strip().splitlines()[0][:60] if cell.source.strip() else ""
        cells.append((cell_index, time.perf_counter() - began[cell_index], first))

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            on_cell_start=on_cell_start, on_cell_executed=on_cell_executed)
    started = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as err:
        error = str(err)
    seconds = time.perf_counter() - started
    startup = (min(began.values()) - started) if began else seconds
    out = out_dir / path.name
    nbformat.write(nb, out)
    return ExecutedNotebook(path, out, seconds, error, nb, startup, cells)


WARM_UP_SOURCE = """\
%matplotlib inline
import matplotlib.pyplot as plt
import torch
import ipywidgets
import dskd
fig, ax = plt.subplots()
ax.plot([0, 1])
"""


def warm_up(out_dir: Path) -> float:
    """Run one throwaway notebook that imports what every chapter imports, so that one-off costs of a
    fresh environment (matplotlib's font cache, first imports) are not charged to the first chapter;
    returns its wall time in seconds."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(WARM_UP_SOURCE)])
    path = out_dir / "warm_up.ipynb"
    nbformat.write(nb, path)
    run = execute(path, out_dir)
    if run.error is not None:
        raise RuntimeError(f"the warm-up notebook failed (a chapter would too):\n{run.error[-2000:]}")
    return run.seconds


def figure_count(nb: nbformat.NotebookNode) -> int:
    """Image outputs (PNG or SVG) in a notebook's code cells."""
    return sum(1 for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
               if "image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {}))
