"""Execute chapters with nbclient, the way the book build does (cwd = notebooks/).

The time budget of a chapter is measured as what the chapter itself costs, so that a machine busy with
other work does not fail it: the **CPU time of its kernel** (user + system, with the kernel's finished
child processes) must stay within :data:`CPU_BUDGET_S`, and the **wall time** within
:data:`NOTEBOOK_BUDGET_S` only when the machine was otherwise idle during the run (other processes used
less than :data:`IDLE_OTHERS_SHARE` of its CPUs). :func:`budget_problems` applies both rules.
"""
from __future__ import annotations

import os

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
import nbclient_short_poll  # noqa: E402

# the book build installs the same work-around (book/_ext/dskd_sphinx_fixes.py): short polls of the shell
# socket for each cell's reply (nbclient_short_poll.py says why)
nbclient_short_poll.install()


REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
#: every chapter must run top to bottom on a 2-core laptop CPU within this many seconds
NOTEBOOK_BUDGET_S = 180
#: the cores of that laptop: the kernel's CPU time may be at most this many times the budget
BUDGET_CORES = 2
#: CPU seconds a chapter's kernel may use (both cores busy for the whole budget)
CPU_BUDGET_S = NOTEBOOK_BUDGET_S * BUDGET_CORES
#: the machine counts as otherwise idle when other processes used less than this share of its CPUs
IDLE_OTHERS_SHARE = 0.10


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
    #: CPU seconds of the kernel process (user + system, with its finished children); None if unknown
    cpu_seconds: Optional[float] = None
    #: CPU used by every other process of the machine during the run, as a share of all its CPUs
    others_share: Optional[float] = None

    @property
    def machine_idle(self) -> bool:
        """Were the machine's other processes (nearly) idle during the run, so that wall time is fair?"""
        return self.others_share is not None and self.others_share < IDLE_OTHERS_SHARE

    def timing_report(self, n: int = 3) -> str:
        """Kernel start-up and the ``n`` slowest cells: what a budget failure message should say."""
        slow = sorted(self.cell_seconds, key=lambda c: -c[1])[:n]
        cells = "; ".join(f"cell {i} {s:.0f} s ({src!r})" for i, s, src in slow)
        cpu = "unknown" if self.cpu_seconds is None else f"{self.cpu_seconds:.0f} s"
        others = "unknown" if self.others_share is None else f"{self.others_share:.0%}"
        return (f"wall {self.seconds:.0f} s, kernel CPU {cpu}, other processes {others} of the machine; "
                f"kernel start {self.startup_seconds:.0f} s; slowest: {cells}")


def budget_problems(run: ExecutedNotebook, wall_budget_s: float = NOTEBOOK_BUDGET_S,
                    cpu_budget_s: float = CPU_BUDGET_S) -> list[str]:
    """What is over budget in ``run``: its kernel's CPU time always, its wall time only on an idle machine."""
    problems = []
    if run.cpu_seconds is None:
        problems.append("the kernel's CPU time was not measured")
    elif run.cpu_seconds > cpu_budget_s:
        problems.append(f"kernel CPU time {run.cpu_seconds:.0f} s > {cpu_budget_s:.0f} s "
                        f"({BUDGET_CORES} cores x {wall_budget_s:.0f} s)")
    if run.machine_idle and run.seconds > wall_budget_s:
        problems.append(f"wall time {run.seconds:.0f} s > {wall_budget_s:.0f} s on an otherwise idle machine")
    return problems


def _kernel_cpu_seconds(process) -> Optional[float]:
    try:
        t = process.cpu_times()
    except Exception:  # the kernel is gone (psutil.NoSuchProcess) or cannot be read
        return None
    return t.user + t.system + t.children_user + t.children_system


def _machine_busy_seconds() -> float:
    """CPU seconds that all processes of the machine have used since boot (all CPUs together)."""
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def chapter_paths() -> list[Path]:
    """The chapters (``NN_name.ipynb``) and then the appendices (``appendix_name.ipynb``), in book order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) + sorted(NOTEBOOKS.glob("appendix_*.ipynb"))


#: seconds one cell may run before it is stopped: generous, since a machine busy with other work slows a
#: chapter down without making it more costly (the budget is checked on the kernel's CPU time)
CELL_TIMEOUT_S = 1800


def execute(path: Path, out_dir: Path, timeout: int = CELL_TIMEOUT_S) -> ExecutedNotebook:
    import psutil

    nb = nbformat.read(path, as_version=4)
    began: dict[int, float] = {}
    cells: list = []
    kernel: dict = {}  # the kernel's psutil.Process and its last CPU reading

    def on_cell_start(cell, cell_index):
        began[cell_index] = time.perf_counter()
        if "process" not in kernel:
            pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
            try:
                kernel["process"] = psutil.Process(pid) if pid else None
            except psutil.Error:
                kernel["process"] = None

    def on_cell_executed(cell, cell_index, execute_reply):
        first = cell.source.strip().splitlines()[0][:60] if cell.source.strip() else ""
        cells.append((cell_index, time.perf_counter() - began[cell_index], first))
        if kernel.get("process") is not None:  # read before the kernel shuts down
            kernel["cpu"] = _kernel_cpu_seconds(kernel["process"])

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            on_cell_start=on_cell_start, on_cell_executed=on_cell_executed)
    started = time.perf_counter()
    busy_before, mine_before = _machine_busy_seconds(), time.process_time()
    error = None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:  # recorded, and the notebook kept
        error = f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - started
    busy = _machine_busy_seconds() - busy_before
    cpu = kernel.get("cpu")
    own = (cpu or 0.0) + time.process_time() - mine_before  # the kernel's work and this client's
    others = max(0.0, busy - own) / (seconds * (os.cpu_count() or 1)) if seconds > 0 else None
    startup = (min(began.values()) - started) if began else seconds
    out = out_dir / path.name
    nbformat.write(nb, out)
    return ExecutedNotebook(path, out, seconds, error, nb, startup, cells, cpu, others)


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
    """Figures in a notebook's code cells: image outputs (PNG or SVG), and explorers, whose static player
    (an HTML output, dskd/widgets/static.py) shows their figure in the book."""
    def is_figure(data) -> bool:
        return ("image/png" in data or "image/svg+xml" in data
                or 'class="dskd-player"' in "".join(data.get("text/html", "")))

    return sum(1 for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
               if is_figure(o.get("data", {})))
