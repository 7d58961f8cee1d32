"""The short-poll work-around that the test runner and the book build use for nbclient's shell waits."""
import asyncio
import sys
import time
from pathlib import Path
from queue import Empty

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
import nbclient_short_poll as short_poll  # noqa: E402


class _Channel:
    """A shell channel whose poll 'loses' the message: it is only seen by a poll that starts after ``ready_at``."""

    def __init__(self, ready_at: float):
        self.ready_at, self.timeouts = ready_at, []

    async def get_msg(self, timeout=None):
        self.timeouts.append(timeout)
        if time.monotonic() >= self.ready_at:
            return {"msg": "reply"}
        await asyncio.sleep(timeout)  # a lost wake-up: the whole timeout passes
        raise Empty


class _Client:
    def __init__(self, channel):
        self.shell_channel = channel


def test_a_lost_wake_up_costs_one_short_poll(monkeypatch):
    monkeypatch.setattr(short_poll, "POLL_S", 0.05)
    channel = _Channel(ready_at=time.monotonic() + 0.12)
    kc = _Client(channel)
    short_poll.short_poll_shell(kc)
    short_poll.short_poll_shell(kc)  # idempotent: not wrapped twice
    started = time.monotonic()
    assert asyncio.run(kc.shell_channel.get_msg(timeout=600)) == {"msg": "reply"}
    assert time.monotonic() - started < 1.0  # not the 600 s of one long poll
    assert all(t <= 0.05 for t in channel.timeouts) and len(channel.timeouts) >= 3


def test_the_cell_timeout_still_applies(monkeypatch):
    monkeypatch.setattr(short_poll, "POLL_S", 0.05)
    kc = _Client(_Channel(ready_at=float("inf")))
    short_poll.short_poll_shell(kc)
    started = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(kc.shell_channel.get_msg(timeout=0.2))
    assert 0.2 <= time.monotonic() - started < 1.0


def test_install_patches_nbclient_once():
    from nbclient import NotebookClient

    short_poll.install()
    patched = NotebookClient.async_start_new_kernel_client
    short_poll.install()
    assert NotebookClient.async_start_new_kernel_client is patched and patched._dskd_short_poll


# ----------------------------------------------------------------------------- the chapter time budget

sys.path.insert(0, str(Path(__file__).resolve().parent))
import notebook_runner as runner  # noqa: E402


def _run(seconds, cpu, others):
    return runner.ExecutedNotebook(Path("x.ipynb"), Path("x.ipynb"), seconds, None, None,
                                   cpu_seconds=cpu, others_share=others)


def test_a_busy_machine_does_not_fail_a_chapter_whose_kernel_stayed_within_its_cpu_time():
    slow_but_cheap = _run(seconds=394, cpu=250, others=0.6)  # chapter 13 beside a training job
    assert not slow_but_cheap.machine_idle
    assert runner.budget_problems(slow_but_cheap) == []


def test_the_kernels_cpu_time_is_always_checked():
    costly = _run(seconds=150, cpu=runner.CPU_BUDGET_S + 1, others=0.5)
    assert runner.budget_problems(costly) == [
        f"kernel CPU time {runner.CPU_BUDGET_S + 1:.0f} s > {runner.CPU_BUDGET_S:.0f} s "
        f"({runner.BUDGET_CORES} cores x {runner.NOTEBOOK_BUDGET_S:.0f} s)"]


def test_wall_time_counts_on_an_idle_machine():
    slow_alone = _run(seconds=runner.NOTEBOOK_BUDGET_S + 20, cpu=200, others=0.02)
    assert slow_alone.machine_idle
    assert runner.budget_problems(slow_alone) == [
        f"wall time {runner.NOTEBOOK_BUDGET_S + 20:.0f} s > {runner.NOTEBOOK_BUDGET_S:.0f} s on an otherwise idle "
        "machine"]


def test_an_unmeasured_kernel_is_a_problem_not_a_pass():
    assert runner.budget_problems(_run(seconds=10, cpu=None, others=None)) == [
        "the kernel's CPU time was not measured"]


def test_execute_measures_the_kernels_cpu_time(tmp_path):
    import nbformat

    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0:\n    pass\n"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(spin)])
    path = tmp_path / "spin.ipynb"
    nbformat.write(nb, path)
    run = runner.execute(path, tmp_path)
    assert run.error is None
    assert 1.0 <= run.cpu_seconds < run.seconds + 30  # the kernel's own second of CPU, plus its start-up
    assert run.others_share is not None and run.others_share >= 0
    assert "kernel CPU" in run.timing_report()
