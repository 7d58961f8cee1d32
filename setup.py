"""Build hook: the wheel carries the recorded results as ``dskd/_results``.

Everything else about the package is in pyproject.toml. The chapters read recorded runs through
``dskd.results.results_root()``, which looks in the repository's ``results/`` first and then in the
installed package's ``dskd/_results``; this hook puts a copy of ``results/`` there when a wheel is built
(``pip install git+...``, ``pip wheel .``, ``make wheel``), so that a chapter shows the same tables after a
plain ``pip install`` (Colab) as in the book. Only the records and small files are copied (the suffixes in
``RESULT_SUFFIXES``): no checkpoints, no lock files. An editable install (``pip install -e .``) copies
nothing: there ``results_root()`` finds the repository's ``results/`` itself.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
#: the kinds of file under results/ that the chapters read: records, tables, example arrays, figures
RESULT_SUFFIXES = (".json", ".md", ".npz", ".png", ".svg", ".csv")
#: where the copy goes inside the package (dskd/results.py looks there)
PACKAGE_RESULTS = Path("dskd") / "_results"


def recorded_result_files(results: Path = RESULTS) -> list[Path]:
    """The files of ``results`` that ship with the package, relative to it, in name order."""
    return sorted(p.relative_to(results) for p in results.rglob("*")
                  if p.is_file() and p.suffix.lower() in RESULT_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(results).parts))


class BuildPyWithResults(build_py):
    """``build_py`` that also copies ``results/`` (records and small figures) to ``dskd/_results``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # pip install -e .: results_root() reads the repository's results/ directly
        if not (RESULTS / "README.md").is_file():
            raise FileNotFoundError(
                f"{RESULTS / 'README.md'} is missing: build the wheel from a checkout of the repository "
                "(or an sdist made from one), whose results/ the chapters read")
        target = Path(self.build_lib) / PACKAGE_RESULTS
        shutil.rmtree(target, ignore_errors=True)
        for rel in recorded_result_files():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(RESULTS / rel, target / rel)


setup(cmdclass={"build_py": BuildPyWithResults})
