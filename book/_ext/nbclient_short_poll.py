"""Wait for each cell's reply in short polls: a work-around for a lost wake-up in nbclient's executor.

Seen on this project's 2-core machines (tests/test_notebooks.py timings, twice, in two sessions): a
cell that displays an explorer (many widget messages on iopub at once) finished in about a second,
yet nbclient only picked up its ``execute_reply`` when its single poll of the shell socket, as long
as the whole cell timeout (600 s), ran out; the chapter then "took" 615 s. The asyncio zmq poll had
missed the message's wake-up (cf. jupyter/nbclient#312, "when cell contains ipywidget, execute cell
will sometimes block"). Polling again every ``POLL_S`` seconds looks at the socket afresh, so a lost
wake-up costs at most that long, and the cell's timeout still applies in full.

:func:`install` is called by the test runner (tests/notebook_runner.py) and by the book build
(book/_ext/dskd_sphinx_fixes.py), so both execute notebooks the same way.
"""
from __future__ import annotations

import time
from queue import Empty

#: seconds per poll of the shell socket
POLL_S = 1.0


def short_poll_shell(kc) -> None:
    """Make ``kc.shell_channel.get_msg(timeout=T)`` poll in steps of :data:`POLL_S` up to ``T``."""
    channel = kc.shell_channel
    if getattr(channel, "_dskd_short_poll", False):
        return
    get_msg = channel.get_msg

    async def short_poll_get_msg(timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_S if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await get_msg(timeout=min(POLL_S, left))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    channel.get_msg = short_poll_get_msg
    channel._dskd_short_poll = True


def install() -> None:
    """Apply :func:`short_poll_shell` to every kernel client nbclient starts from now on (idempotent)."""
    from nbclient import NotebookClient

    start = NotebookClient.async_start_new_kernel_client
    if getattr(start, "_dskd_short_poll", False):
        return

    async def async_start_new_kernel_client(self):
        kc = await start(self)
        short_poll_shell(kc)
        return kc

    async_start_new_kernel_client._dskd_short_poll = True
    NotebookClient.async_start_new_kernel_client = async_start_new_kernel_client
