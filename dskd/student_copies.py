"""Student copies of the chapters: the notebooks without their solutions.

Every exercise solution in ``notebooks/`` is a cell tagged ``solution`` (a markdown cell holding a
``{admonition} Solution`` dropdown, or a code cell). A student copy drops those cells, clears every
output and execution count, and keeps everything else, the notebook's metadata included::

    python -m dskd.student_copies notebooks/ student_notebooks/      # or: make student-notebooks

The originals are read, never written; the output folder must differ from the source folder.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any, MutableMapping, Optional, Sequence

#: the cell tag that marks an exercise solution (see notebooks/README.md)
SOLUTION_TAG = "solution"


def is_solution(cell: MutableMapping[str, Any]) -> bool:
    """True for a cell tagged ``solution``."""
    return SOLUTION_TAG in (cell.get("metadata", {}).get("tags") or ())


def strip_solutions(nb: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A copy of ``nb`` without its ``solution`` cells and with every output cleared.

    The remaining cells keep their order, source, ids and metadata; the notebook's metadata is kept.
    ``nb`` itself is not modified. Works on an ``nbformat.NotebookNode`` or a plain dict.
    """
    out = copy.deepcopy(nb)
    out["cells"] = [cell for cell in out.get("cells", []) if not is_solution(cell)]
    for cell in out["cells"]:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return out


def make_student_copies(src_dir: Path | str, out_dir: Path | str) -> list[Path]:
    """Write a student copy of every ``*.ipynb`` in ``src_dir`` to ``out_dir``; return their paths.

    Only the notebooks directly in ``src_dir`` are copied (not its subfolders), in name order.
    """
    import nbformat  # comes with every Jupyter installation; imported here so `import dskd` stays light

    src, out = Path(src_dir), Path(out_dir)
    if not src.is_dir():
        raise FileNotFoundError(f"no such folder: {src}")
    if out.resolve() == src.resolve():
        raise ValueError(f"the output folder must differ from the source folder ({src}): "
                         "writing there would delete the solutions")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(src.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        target = out / path.name
        nbformat.write(strip_solutions(nb), target)
        written.append(target)
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dskd.student_copies",
        description="Copy the chapters' notebooks without their solution cells (tag 'solution') "
                    "and with outputs cleared.",
    )
    parser.add_argument("src", type=Path, help="folder of the notebooks, e.g. notebooks/")
    parser.add_argument("out", type=Path, help="folder for the student copies, e.g. student_notebooks/")
    args = parser.parse_args(argv)
    try:
        written = make_student_copies(args.src, args.out)
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    import nbformat

    for target in written:
        removed = sum(is_solution(c) for c in nbformat.read(args.src / target.name, as_version=4).cells)
        print(f"{target}  ({removed} solution cell{'s' if removed != 1 else ''} removed)")
    print(f"{len(written)} student notebook{'s' if len(written) != 1 else ''} in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
