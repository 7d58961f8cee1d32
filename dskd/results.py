"""Where the recorded results live: the repository's ``results/`` first, then the copy installed with the package.

Chapters read recorded runs (``dskd reproduce``, ``dskd ablate``, ``dskd profile``) through
:func:`results_root`, so the same chapter shows the same numbers in this repository, after a
``pip install`` in Colab, or anywhere ``$DSKD_RESULTS`` points.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

_PACKAGE = Path(__file__).resolve().parent
_REPO_RESULTS = _PACKAGE.parent / "results"
_INSTALLED_RESULTS = _PACKAGE / "_results"


def results_root(prefer: Optional[str | os.PathLike] = None) -> Path:
    """The folder that holds the recorded results.

    Looked up in order: ``prefer`` (when given), ``$DSKD_RESULTS``, the repository's ``results/``
    (beside the package in a source checkout), the copy shipped inside the installed package
    (``dskd/_results``). Raises ``FileNotFoundError`` naming every place looked at when none exists.
    """
    candidates: list[tuple[str, Path]] = []
    if prefer is not None:
        candidates.append(("the folder given", Path(prefer)))
    if os.environ.get("DSKD_RESULTS"):
        candidates.append(("$DSKD_RESULTS", Path(os.environ["DSKD_RESULTS"])))
    candidates += [("the repository", _REPO_RESULTS), ("the installed package", _INSTALLED_RESULTS)]
    for _, path in candidates:
        if (path / "README.md").is_file():
            return path
    looked = "; ".join(f"{name}: {path}" for name, path in candidates)
    raise FileNotFoundError(f"no recorded results found (looked in {looked}); reinstall dskd or set DSKD_RESULTS")


def results_path(*parts: str) -> Path:
    """A path inside :func:`results_root` (it may not exist: a run not recorded yet)."""
    return results_root().joinpath(*parts)


def shown_path(path: str | os.PathLike) -> str:
    """``path`` as a reader should see it: ``results/<...>`` when it lies in :func:`results_root` (wherever
    that folder is on the machine that built the page), else the path as given."""
    path = Path(path)
    try:
        return "results/" + path.resolve().relative_to(results_root().resolve()).as_posix()
    except (ValueError, FileNotFoundError):
        return str(path)


def load_json(*parts: str) -> dict[str, Any]:
    """A recorded JSON file, e.g. ``load_json("mt-defects", "table5.json")``."""
    path = results_path(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"recorded result {'/'.join(parts)!r} is not in {results_root()}")
    return json.loads(path.read_text())
