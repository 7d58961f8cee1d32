"""Student copies of the chapters: the notebooks without their solutions.

Every exercise solution in ``notebooks/`` is a cell tagged ``solution`` (a markdown cell holding a
``{admonition} Solution`` dropdown, or a code cell). A student copy drops those cells, clears every
output and execution count, and keeps everything else, the notebook's metadata included::

    python -m dskd.student_copies notebooks/ student_notebooks/      # or: make student-notebooks
    python -m dskd.student_copies notebooks/ student_notebooks/ --zip dskd-notebooks.zip

The originals are read, never written; the output folder must differ from the source folder. The zip
(:func:`write_student_zip`, which the book offers for download) holds exactly those copies.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import zipfile
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


#: the folder inside the zip that holds the notebooks (what unpacking it creates)
ZIP_FOLDER = "dskd-notebooks"
#: every member of the zip carries this timestamp, so the same notebooks always give the same bytes
_ZIP_DATE = (2024, 1, 1, 0, 0, 0)


def write_student_zip(src_dir: Path | str, zip_path: Path | str, folder: str = ZIP_FOLDER) -> Path:
    """Write the student copies of ``src_dir``'s notebooks (:func:`make_student_copies`) into one zip.

    Each copy is stored as ``<folder>/<name>.ipynb``, with byte for byte the content
    ``make student-notebooks`` writes; the zip is reproducible (fixed timestamps, name order).
    """
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        copies = make_student_copies(src_dir, tmp)
        if not copies:
            raise FileNotFoundError(f"no notebooks (*.ipynb) in {src_dir}: nothing to zip")
        with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in copies:
                info = zipfile.ZipInfo(f"{folder}/{path.name}", date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, path.read_bytes())
    return zip_path


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dskd.student_copies",
        description="Copy the chapters' notebooks without their solution cells (tag 'solution') "
                    "and with outputs cleared.",
    )
    parser.add_argument("src", type=Path, help="folder of the notebooks, e.g. notebooks/")
    parser.add_argument("out", type=Path, help="folder for the student copies, e.g. student_notebooks/")
    parser.add_argument("--zip", type=Path, default=None, metavar="PATH",
                        help=f"also write the copies into this zip (as {ZIP_FOLDER}/<name>.ipynb)")
    args = parser.parse_args(argv)
    try:
        written = make_student_copies(args.src, args.out)
        if args.zip is not None:
            write_student_zip(args.src, args.zip)
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    import nbformat

    for target in written:
        removed = sum(is_solution(c) for c in nbformat.read(args.src / target.name, as_version=4).cells)
        print(f"{target}  ({removed} solution cell{'s' if removed != 1 else ''} removed)")
    print(f"{len(written)} student notebook{'s' if len(written) != 1 else ''} in {args.out}")
    if args.zip is not None:
        print(f"and in {args.zip}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
