"""Output locations checked before the work starts, and a lock so that two runs never share a folder.

A run that would fail to write its result (a read-only folder, a path that is a file) must fail
before it trains or predicts, not after: :func:`writable_dir` and :func:`writable_file` create the
location and write a probe file into it, raising :class:`OutputError` in one line otherwise.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Optional, Union

try:  # POSIX; on other systems the lock is not taken (a second run is not refused there)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

PathLike = Union[str, "os.PathLike[str]"]


class OutputError(ValueError):
    """An output location that cannot be written, or that another live run is writing."""


def writable_dir(path: PathLike, what: str = "output folder") -> Path:
    """Create ``path`` (with parents) and prove it is writable by writing and removing a probe file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {str(path)!r} is an existing file, expected a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create {what} {str(path)!r}: {err.strerror or err}") from None
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".dskd-write-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(f"cannot write into {what} {str(path)!r}: {err.strerror or err}") from None
    return path


def writable_file(path: PathLike, what: str = "output file") -> Path:
    """Check that ``path`` can be written: not a folder, in a folder that can be created and written."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {str(path)!r} is a folder, expected a file name")
    writable_dir(path.parent, f"the folder of the {what}")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"cannot overwrite {what} {str(path)!r}: it is read-only")
    return path


class RunLock:
    """An exclusive lock on a run folder (``<folder>/.dskd-run.lock``), held while a run writes there.

    A second run into the same folder is refused with :class:`OutputError` naming the live run's
    process id. The operating system releases the lock when the process dies (SIGKILL included), so a
    crashed run never blocks the next one. Leftover temporary checkpoint files of dead runs are
    removed when the lock is taken.
    """

    NAME = ".dskd-run.lock"

    def __init__(self, folder: PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / self.NAME
        self._fh: Optional[object] = None

    def acquire(self) -> "RunLock":
        writable_dir(self.folder, "run folder")
        fh = open(self.path, "a+")
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.seek(0)
                owner = fh.read().strip() or "unknown"
                fh.close()
                raise OutputError(f"another dskd run (pid {owner}) is writing to {str(self.folder)!r}; wait for it "
                                  f"to finish or choose another output folder") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        for stale in self.folder.glob(".*.tmp"):  # temporary files of runs that died while saving
            stale.unlink(missing_ok=True)
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # type: ignore[attr-defined]  # closing the file releases the lock
            self._fh = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.release()
