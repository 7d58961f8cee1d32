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
