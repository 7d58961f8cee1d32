"""Execute chapters with nbclient, the way the book build does (cwd = notebooks/)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

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


def chapter_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def execute(path: Path, out_dir: Path, timeout: int = 600) -> ExecutedNotebook:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    started = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as err:
        error = str(err)
    seconds = time.perf_counter() - started
    out = out_dir / path.name
    nbformat.write(nb, out)
    return ExecutedNotebook(path, out, seconds, error, nb)


def figure_count(nb: nbformat.NotebookNode) -> int:
    """Image outputs (PNG or SVG) in a notebook's code cells."""
    return sum(1 for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
               if "image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {}))
