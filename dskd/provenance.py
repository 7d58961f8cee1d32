"""Where a result came from: recorded in every checkpoint, report and results file."""
from __future__ import annotations

import datetime as _dt
import json
import math
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from . import __version__

_REPO = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    """The repository's commit (with '+dirty' if it has uncommitted changes), or 'unknown'."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=_REPO,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_description(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"{device.type}: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def shown_command(command: str) -> str:
    """A recorded command as a reader types it: the program ``dskd`` however it was started
    (``.venv/bin/dskd``, ``python -m dskd``, which records ``<checkout>/dskd/__main__.py``), the rest as is."""
    program, _, rest = command.partition(" ")
    if program.endswith(("/dskd/__main__.py", "/bin/dskd")) or program in ("dskd/__main__.py", "bin/dskd"):
        return f"dskd {rest}".strip()
    return command


#: the options whose values a study's runs split into pieces (one command per variant, or per seed)
_PIECE_OPTIONS = {"--variants": "<variant>", "--seeds": "<seed>"}


def grouped_commands(commands: Sequence[str]) -> list[tuple[str, str]]:
    """Commands that differ only in ``--variants`` or ``--seeds`` as one: ``(template, values)``, the
    template with ``<variant>``/``<seed>`` where the pieces differ and ``values`` saying which they took
    (``""`` for a command that stands alone). A study recorded seed by seed reads as one line."""
    groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
    alone = []
    for command in commands:
        try:
            tokens = shlex.split(command)
        except ValueError:  # not shell syntax: shown as it is
            alone.append((command, ""))
            continue
        pieces = {t: tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t in _PIECE_OPTIONS}
        key = tuple(_PIECE_OPTIONS[tokens[i - 1]] if i and tokens[i - 1] in _PIECE_OPTIONS else t
                    for i, t in enumerate(tokens))
        groups.setdefault(key, []).append(pieces)
    out = []
    for key, runs in groups.items():
        varying = [o for o in _PIECE_OPTIONS if len({r.get(o) for r in runs}) > 1]
        back = {_PIECE_OPTIONS[o]: v for o, v in runs[0].items() if o not in varying}
        template = " ".join(t if t in _PIECE_OPTIONS.values() and t not in back else shlex.quote(back.get(t, t))
                            for t in key)
        combos = list(dict.fromkeys(tuple(r[o] for o in varying) for r in runs))
        axes = [list(dict.fromkeys(c[i] for c in combos)) for i in range(len(varying))]
        if len(varying) < 2 or len(combos) == math.prod(len(a) for a in axes):  # one list per option
            values = "; ".join(f"{_PIECE_OPTIONS[o]} in {', '.join(map(shlex.quote, a))}"
                               for o, a in zip(varying, axes))
        else:  # not every combination ran: name the ones that did
            names = ", ".join(_PIECE_OPTIONS[o] for o in varying)
            values = f"({names}) in " + ", ".join("(" + ", ".join(map(shlex.quote, c)) + ")" for c in combos)
        out.append((template, values))
    return out + alone


def provenance(device: torch.device | str = "cpu", **extra: Any) -> dict[str, Any]:
    """Command, commit, versions, device and time, plus whatever the caller adds (teacher, data...)."""
    record = {
        "command": shown_command(" ".join(shlex.quote(a) for a in sys.argv)),
        "git_commit": git_commit(),
        "dskd_version": __version__,
        "torch_version": str(torch.__version__),
        "python": platform.python_version(),
        "device": device_description(device),
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    record.update(extra)
    return record


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")


def _nan_to_none(o: Any) -> Any:
    # JSON has no NaN; an undefined metric (e.g. no anomalous pixel) is written as null
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, dict):
        return {k: _nan_to_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_nan_to_none(v) for v in o]
    return o


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_nan_to_none(payload), indent=2, default=_json_default) + "\n")
    return path
