"""Run it yourself: the course outside this repository (issue 15).

What a student meets who does not build the book here:

- the install cell of every chapter, the launch buttons and the README agree with the one place that
  names the repository, ``_config.yml``'s ``repository.url`` (``tools/repository.py``);
- the wheel that ``pip install`` builds carries the recorded results as ``dskd/_results`` (``setup.py``),
  and chapters copied alone next to a fresh virtual environment show the recorded numbers;
- the ``widgets`` extra holds everything a chapter imports;
- ``make lab`` serves ``notebooks/`` in JupyterLab;
- the book offers each chapter's student copy and a zip of them all (``book/_ext/dskd_downloads.py``);
- the publishing workflow calls only Makefile targets; ``make pdf`` prints the whole book.
"""
from __future__ import annotations

import ast
import functools
import importlib.metadata
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tools/ (repository tools, not part of the package)

from tools.repository import (  # noqa: E402
    INSTALL_CELL_TAGS, Repository, check, install_cell_source, notebook_extras, read_repository,
    repository_mentions,
)

# the numbered chapters and the appendices: every notebook of the book
CHAPTERS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _first_code_cell(path: Path) -> dict:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return next(c for c in nb["cells"] if c["cell_type"] == "code")


def _source(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


# ============================================================================ 1. one place names the repository


def test_the_repository_is_read_from_config():
    repo = read_repository(REPO / "_config.yml")
    assert repo.url.startswith("https://github.com/")
    assert repo.pip_requirement == f"dskd[widgets] @ git+https://github.com/{repo.slug}"
    assert repo.colab_url("notebooks/01_data.ipynb") == (
        f"https://colab.research.google.com/github/{repo.slug}/blob/{repo.branch}/notebooks/01_data.ipynb")
    assert repo.binder_url("notebooks/01_data.ipynb") == (
        f"https://mybinder.org/v2/gh/{repo.slug}/{repo.branch}?urlpath=lab/tree/notebooks/01_data.ipynb")


def test_a_repository_that_is_not_on_github_is_refused():
    with pytest.raises(ValueError, match=r"must look like https://github.com/<owner>/<name>"):
        Repository(url="https://gitlab.com/someone/dskd")


def test_a_config_without_a_repository_is_refused(tmp_path):
    (tmp_path / "_config.yml").write_text("title: x\n")
    with pytest.raises(ValueError, match="names no repository"):
        read_repository(tmp_path / "_config.yml")


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_chapter_starts_with_the_install_cell_of_config(path):
    repo = read_repository(REPO / "_config.yml")
    cell = _first_code_cell(path)
    src = _source(cell)
    extras = notebook_extras(path)
    assert "widgets" in extras
    assert src == install_cell_source(repo, extras), (
        f"{path.name}: its first code cell is not the install cell for {repo.url}; run `make links`")
    assert f'"dskd[{",".join(extras)}] @ git+{repo.url}"' in src
    assert "output.enable_custom_widget_manager()" in src  # Colab draws ipywidgets 8
    assert cell["metadata"].get("tags") == INSTALL_CELL_TAGS
    assert max(len(line) for line in src.splitlines()) <= 88


def test_every_mention_of_the_repository_agrees_with_config():
    repo = read_repository(REPO / "_config.yml")
    mentions = repository_mentions(REPO)
    files = {m.path.relative_to(REPO).as_posix() for m in mentions}
    # the README, the pages that tell how to install, and every chapter name it
    assert {"README.md", "book/preface.md", "book/course_guide.md", "book/run_it_yourself.md"} <= files
    assert {f"notebooks/{p.name}" for p in CHAPTERS} <= files
    assert any(m.encoded for m in mentions)  # the nbgitpuller link of the course guide is checked too
    assert check(REPO) == [], f"places that disagree with repository.url = {repo.url}; run `make links`"


def _mini_course(root: Path, url: str) -> None:
    """A repository with one chapter, a README and a page, all naming ``github.com/old-org/dskd``."""
    (root / "notebooks").mkdir(parents=True)
    (root / "book").mkdir()
    (root / "_config.yml").write_text(f"repository:\n  url: {url}\n  branch: main\n")
    nb = {"cells": [
        {"cell_type": "markdown", "id": "a", "metadata": {}, "source": ["# 1. A chapter"]},
        {"cell_type": "code", "execution_count": None, "id": "b", "metadata": {}, "outputs": [],
         "source": ['!pip install "dskd @ git+https://github.com/old-org/dskd"']},
        {"cell_type": "code", "execution_count": None, "id": "c", "metadata": {}, "outputs": [],
         "source": ["x = 1  # see github.com/old-org/dskd/issues"]},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (root / "notebooks" / "01_a.ipynb").write_text(json.dumps(nb, indent=1) + "\n")
    (root / "README.md").write_text("git clone https://github.com/old-org/dskd\n"
                                    "data: https://github.com/abin24/Magnetic-tile-defect-datasets\n")
    (root / "book" / "guide.md").write_text("?repo=https%3A%2F%2Fgithub.com%2Fold-org%2Fdskd&branch=main\n")


def test_make_links_rewrites_install_cells_and_mentions_from_config(tmp_path, capsys):
    from tools.repository import main

    _mini_course(tmp_path, "https://github.com/new-org/dskd-course")
    assert main(["--check", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "notebooks/01_a.ipynb: the first code cell is not the install cell" in out
    assert "README.md:1: names github.com/old-org/dskd" in out
    assert "book/guide.md:1: names github.com/old-org/dskd" in out
    assert "abin24" not in out  # a third-party repository is not the course's

    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--check", "--root", str(tmp_path)]) == 0
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("git clone https://github.com/new-org/dskd-course\n")
    assert "github.com/abin24/Magnetic-tile-defect-datasets" in readme
    assert "github.com%2Fnew-org%2Fdskd-course&branch=main" in (tmp_path / "book" / "guide.md").read_text()
    cells = json.loads((tmp_path / "notebooks" / "01_a.ipynb").read_text())["cells"]
    assert _source(cells[1]) == install_cell_source(Repository("https://github.com/new-org/dskd-course"))
    assert cells[2]["source"] == ["x = 1  # see github.com/new-org/dskd-course/issues"]  # only the address changed
    assert [c["id"] for c in cells] == ["a", "b", "c"]


def test_make_links_refuses_a_config_it_cannot_use(tmp_path, capsys):
    from tools.repository import main

    _mini_course(tmp_path, "https://example.org/dskd")
    with pytest.raises(SystemExit):
        main(["--root", str(tmp_path)])
    assert "must look like https://github.com/<owner>/<name>" in capsys.readouterr().err


def _run_install_cell(tmp_path: Path, *, colab: bool) -> subprocess.CompletedProcess:
    """The install cell of chapter 1, run by this interpreter (dskd installed); with ``colab``, next to a
    stand-in ``google.colab.output`` that records the call to ``enable_custom_widget_manager``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if colab:
        pkg = tmp_path / "fake" / "google" / "colab"
        pkg.mkdir(parents=True)
        (pkg.parent / "__init__.py").write_text("")
        (pkg / "__init__.py").write_text("")
        (pkg / "output.py").write_text("def enable_custom_widget_manager():\n"
                                       "    print('custom widget manager enabled')\n")
        env["PYTHONPATH"] = str(tmp_path / "fake")
    code = _source(_first_code_cell(CHAPTERS[0])) + "\nprint('installed dskd at', importlib.util.find_spec('dskd').origin)\n"
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_install_cell_installs_nothing_where_dskd_is_there(tmp_path):
    proc = _run_install_cell(tmp_path, colab=False)
    assert proc.returncode == 0, proc.stderr
    assert "custom widget manager" not in proc.stdout
    assert "installed dskd at" in proc.stdout and "pip" not in proc.stderr


def test_the_install_cell_enables_colabs_widget_manager_in_colab(tmp_path):
    proc = _run_install_cell(tmp_path, colab=True)
    assert proc.returncode == 0, proc.stderr
    assert "custom widget manager enabled" in proc.stdout


# ============================================================================ 3. the extras hold what chapters import


def _imports(source: str) -> list[tuple[str, bool]]:
    """``(module, guarded)`` for every import in ``source``, inside functions too; ``guarded`` when it sits
    in a ``try`` whose handler catches ImportError. Relative imports come back with their dots."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.Try):
            catches = any(h.type is not None and re.search(r"\b(ImportError|ModuleNotFoundError)\b",
                                                           ast.unparse(h.type)) for h in node.handlers)
            for child in node.body:
                visit(child, guarded or catches)
            for child in node.handlers + node.orelse + node.finalbody:
                visit(child, guarded)
            return
        if isinstance(node, ast.Import):
            found.extend((a.name, guarded) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found.append((base, guarded))
            found.extend((base + ("" if base.endswith(".") else ".") + a.name, guarded) for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(ast.parse(source), False)
    return found


#: third-party modules that the package imports only for an option a chapter does not use; each import is
#: guarded (``except ImportError``) and its error says what to install
OPTIONAL_IMPORTS = {
    "skimage": "dskd.pretrain.source_images(sources='skimage'), a pretraining option: 'pip install scikit-image'",
}


def _notebook_code(path: Path) -> str:
    """A notebook's code cells as Python (IPython magics and shell lines dropped)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] == "code":
            lines += [ln for ln in _source(cell).splitlines() if not ln.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def _dskd_modules() -> dict[str, Path]:
    mods = {}
    for path in (REPO / "dskd").rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


@functools.lru_cache(maxsize=1)
def third_party_imports_of_the_chapters() -> dict[str, set[str]]:
    """Top-level third-party module -> the chapters that need it: their own imports, and those of every
    module of ``dskd`` they import, followed through the package (lazy imports inside functions too),
    except :data:`OPTIONAL_IMPORTS` and the chapters' own guarded imports."""
    modules = _dskd_modules()
    stdlib = set(sys.stdlib_module_names)
    needed: dict[str, set[str]] = {}
    todo: list[tuple[str, str]] = []

    def note(name: str, chapter: str, package: str = "") -> None:
        if name.startswith("."):
            level = len(name) - len(name.lstrip("."))
            parts = package.split(".")
            name = ".".join(parts[: len(parts) - level + 1] + [n for n in name.lstrip(".").split(".") if n])
        top = name.split(".")[0]
        if top == "dskd":
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # a package's __init__ runs before its modules
                if ".".join(parts[:i]) in modules:
                    todo.append((".".join(parts[:i]), chapter))
        elif top and top not in stdlib and top not in OPTIONAL_IMPORTS:
            needed.setdefault(top, set()).add(chapter)

    for chapter in CHAPTERS:
        for name, guarded in _imports(_notebook_code(chapter)):
            if not guarded:  # the install cell's `from google.colab import output` is there only in Colab
                note(name, chapter.stem)
    seen = set()
    while todo:
        mod, chapter = todo.pop()
        if (mod, chapter) in seen:
            continue
        seen.add((mod, chapter))
        path = modules[mod]
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for name, _ in _imports(path.read_text(encoding="utf-8")):
            note(name, chapter, package)
    return needed


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions(extras: tuple[str, ...] = ("widgets",)) -> set[str]:
    """The distributions the package requires, plus those of ``extras`` (self-references followed)."""
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found: set[str] = set()
    todo, done = [Requirement(r) for r in project["dependencies"]], set()
    for extra in extras:
        todo += [Requirement(r) for r in project["optional-dependencies"][extra]]
    while todo:
        req = todo.pop()
        if _norm(req.name) == "dskd":
            for extra in req.extras - done:
                done.add(extra)
                todo += [Requirement(r) for r in project["optional-dependencies"][extra]]
            continue
        found.add(_norm(req.name))
    return found


def test_the_import_scan_follows_the_package_into_its_lazy_imports():
    needed = third_party_imports_of_the_chapters()
    # chapter 16 -> dskd.pretrain -> a `from sklearn.datasets import ...` inside a function
    assert "16_teacher_knowledge" in needed["sklearn"]
    assert "01_data" in needed["ipywidgets"]  # chapter 1 -> dskd.widgets -> dskd.widgets.base
    assert "nbformat" not in needed  # dskd.student_copies is a tool, no chapter imports it
    assert {"torch", "matplotlib", "IPython", "tqdm", "PIL"} <= set(needed)


def test_the_optional_imports_are_guarded_where_the_package_makes_them():
    for module in OPTIONAL_IMPORTS:
        uses = [(path, guarded) for path in (REPO / "dskd").rglob("*.py")
                for name, guarded in _imports(path.read_text(encoding="utf-8")) if name.split(".")[0] == module]
        assert uses, f"{module} is listed as optional but nothing imports it: drop it from OPTIONAL_IMPORTS"
        assert all(guarded for _, guarded in uses), f"{module} is imported unguarded: {uses}"


def test_the_widgets_extra_holds_everything_a_chapter_imports():
    to_dist = importlib.metadata.packages_distributions()
    installed = {p.stem: declared_distributions(notebook_extras(p)) for p in CHAPTERS}  # by its install cell
    missing = {}
    for module, where in sorted(third_party_imports_of_the_chapters().items()):
        dists = {_norm(d) for d in to_dist.get(module, [module])}
        lacking = sorted(w for w in where if not dists & installed[w])
        if lacking:
            missing[module] = (sorted(dists), lacking[:3])
    assert not missing, ("modules the chapters import that neither the core requirements nor the "
                         f"`widgets` extra of pyproject.toml name (module: distributions, needed by): {missing}")


def test_widgets_extra_names_scikit_learn_and_seaborn():
    assert {"scikit-learn", "seaborn", "ipywidgets"} <= declared_distributions(("widgets",))
    assert "jupyterlab" in declared_distributions(("lab",))
    assert {"scikit-learn", "seaborn"} <= declared_distributions(("book",))  # the book runs the chapters


# ============================================================================ 2. the wheel carries the results

#: what a chapter may read from results/ (setup.py's RESULT_SUFFIXES); no checkpoints
_RESULT_SUFFIXES = {".json", ".md", ".npz", ".png", ".svg", ".csv"}
_SOURCE_IGNORE = shutil.ignore_patterns(".git", ".venv", "_build", "runs", "build", "dist", "student_notebooks",
                                        "*.egg-info", "__pycache__", ".pytest_cache", ".ipynb_checkpoints",
                                        ".cache-dskd", "_results", "screenshots")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel ``pip install git+<url>`` would build: from a copy of the sources (as pip's clone),
    with ``pip wheel --no-build-isolation`` (this environment's setuptools; no download)."""
    src = tmp_path_factory.mktemp("wheel_src") / "dskd"
    shutil.copytree(REPO, src, ignore=_SOURCE_IGNORE)
    dist = tmp_path_factory.mktemp("wheel_dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(dist), str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    wheels = list(dist.glob("dskd-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.mark.slow
def test_the_wheel_ships_every_recorded_result_and_no_checkpoint(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        shipped = {n[len("dskd/_results/"):] for n in names if n.startswith("dskd/_results/")}
        recorded = {p.relative_to(REPO / "results").as_posix() for p in (REPO / "results").rglob("*")
                    if p.is_file() and p.suffix in _RESULT_SUFFIXES}
        assert "README.md" in recorded and "mt-defects/table5.json" in recorded
        assert shipped == recorded, (f"missing from the wheel: {sorted(recorded - shipped)[:5]}; "
                                     f"not in results/: {sorted(shipped - recorded)[:5]}")
        for rel in ("mt-defects/table5.json", "ablations/mt-defects/architecture_examples.npz"):
            assert zf.read(f"dskd/_results/{rel}") == (REPO / "results" / rel).read_bytes()
    heavy = [n for n in names if n.endswith((".pt", ".pth", ".ckpt", ".lock"))]
    assert heavy == ["dskd/weights/offline_pretrained_resnet18_layer3.pt"], heavy  # the teacher, nothing else


@pytest.mark.slow
def test_a_wheel_built_from_the_sdist_ships_the_same_results(wheel, tmp_path):
    """`python -m build` makes an sdist, then the wheel from it: MANIFEST.in must carry results/ there."""
    import tarfile

    src = tmp_path / "dskd"
    shutil.copytree(REPO, src, ignore=_SOURCE_IGNORE)
    code = ("import sys\nfrom setuptools import build_meta as b\n"
            "sdist = b.build_sdist(sys.argv[1])\nprint(sdist)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "sdist")], cwd=src, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with tarfile.open(tmp_path / "sdist" / proc.stdout.strip().splitlines()[-1]) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    unpacked = next((tmp_path / "unpacked").iterdir())
    proc = subprocess.run([sys.executable, "-c", "import sys\nfrom setuptools import build_meta as b\n"
                           "print(b.build_wheel(sys.argv[1]))", str(tmp_path / "wheel")], cwd=unpacked,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from_sdist = tmp_path / "wheel" / proc.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(from_sdist) as a, zipfile.ZipFile(wheel) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())


@pytest.mark.slow
def test_the_readme_says_how_big_the_wheel_is(wheel):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"wheel is about (\d+(?:\.\d+)?) MB", text)
    assert m, "README.md must say how big the wheel is (\"... wheel is about NN MB ...\")"
    measured = wheel.stat().st_size / 1e6
    assert abs(measured - float(m[1])) <= 0.1 * measured, \
        f"README.md says the wheel is about {m[1]} MB; it is {measured:.1f} MB"


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    """A new virtual environment in a temporary folder, the wheel installed into it (no dependencies).

    The dependencies (torch, ipykernel, ...) come from this test's own environment through a ``.pth``
    line: installing PyTorch again would cost gigabytes and minutes. A ``.pth`` line adds that folder to
    ``sys.path`` after the fresh environment's own, and does not run the ``.pth`` files inside it, so the
    editable install of the repository's ``dskd`` there stays inactive: ``import dskd`` finds the wheel's.
    """
    root = tmp_path_factory.mktemp("student")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                           str(wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    site_dir = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip())
    import sysconfig

    (site_dir / "zz_course_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def _fresh_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DSKD_RESULTS")}


@pytest.mark.slow
def test_the_installed_package_reads_its_own_copy_of_the_results(fresh_venv, tmp_path):
    code = ("import json, sys, dskd\nfrom dskd.results import load_json, results_root\n"
            "print(json.dumps({'dskd': dskd.__file__, 'root': str(results_root()), "
            "'ours': load_json('mt-defects', 'table5.json')['ours'], 'path': sys.path}))")
    proc = subprocess.run([str(fresh_venv / "bin" / "python"), "-c", code], cwd=tmp_path, env=_fresh_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    assert Path(got["dskd"]).is_relative_to(fresh_venv), got["dskd"]
    assert Path(got["root"]) == Path(got["dskd"]).parent / "_results"
    assert got["ours"] == json.loads((REPO / "results" / "mt-defects" / "table5.json").read_text())["ours"]
    assert str(REPO) not in got["path"] and str(REPO / "dskd") not in got["path"]


def _visible_text(nb: dict) -> str:
    """Everything a reader sees in a notebook's outputs: streams, text, Markdown, HTML."""
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out["text"] if isinstance(out["text"], str) else "".join(out["text"]))
            for mime in ("text/plain", "text/markdown", "text/html"):
                value = out.get("data", {}).get(mime)
                if value:
                    parts.append(value if isinstance(value, str) else "".join(value))
    return "\n".join(parts)


def _has_widget(nb: dict) -> bool:
    return any("application/vnd.jupyter.widget-view+json" in out.get("data", {})
               for cell in nb["cells"] for out in cell.get("outputs", []))


def _recorded_numbers(chapter: str) -> list[str]:
    """Numbers that only the recorded results can put into ``chapter``'s outputs, as the chapter prints them."""
    if chapter == "15_results":
        ours = json.loads((REPO / "results" / "mt-defects" / "table5.json").read_text())["ours"]
        return [f"{ours[m]['value']:.1f} ± {ours[m]['std']:.1f}" for m in ("image_auroc", "pixel_auroc", "pro")]
    if chapter == "09_metrics":
        bench = json.loads((REPO / "results" / "benchmarks" / "metrics.json").read_text())
        return [bench["machine"]["cpu_model"]] + [f"{c['ours']['median_s']:.2f} s" for c in bench["cases"]]
    return []


#: one chapter with an explorer and no recorded results, one with both, one that reads recorded tables
OUTSIDE_CHAPTERS = ("01_data", "09_metrics", "15_results")


@pytest.fixture(scope="module")
def chapters_outside(fresh_venv, tmp_path_factory):
    """The chapters of :data:`OUTSIDE_CHAPTERS`, copied alone into a folder beside the fresh environment
    (no ``results/`` there or above) and executed by a kernel of that environment."""
    sys.path.insert(0, str(REPO / "tests"))
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    import notebook_runner  # noqa: F401  (installs the short-poll work-around of the book build)

    folder = fresh_venv.parent / "chapters"
    folder.mkdir()
    assert not any((p / "results").exists() for p in (folder, *folder.parents)), "a results/ folder is reachable"
    spec = tmp_path_factory.mktemp("jupyter") / "kernels" / "dskd-fresh"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(fresh_venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "dskd from the wheel", "language": "python"}))
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "PYTHONPATH", "DSKD_RESULTS")}
    os.environ["JUPYTER_PATH"] = str(spec.parent.parent)
    os.environ.pop("PYTHONPATH", None)
    os.environ.pop("DSKD_RESULTS", None)
    runs = {}
    try:
        for name in OUTSIDE_CHAPTERS:
            path = folder / f"{name}.ipynb"
            shutil.copy2(REPO / "notebooks" / path.name, path)
            nb = nbformat.read(path, as_version=4)
            nb.cells.append(nbformat.v4.new_code_cell(
                "import dskd as _d, dskd.results as _r\nprint('KERNEL-DSKD', _d.__file__, _r.results_root())"))
            client = NotebookClient(nb, timeout=600, kernel_name="dskd-fresh",
                                    resources={"metadata": {"path": str(folder)}})
            error = None
            try:
                client.execute()
            except CellExecutionError as err:
                error = str(err)
            nbformat.write(nb, path)
            runs[name] = (json.loads(path.read_text()), error)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return fresh_venv, runs


@pytest.mark.slow
@pytest.mark.parametrize("chapter", OUTSIDE_CHAPTERS)
def test_a_chapter_copied_alone_runs_on_the_wheel_and_shows_the_recorded_numbers(chapters_outside, chapter):
    venv, runs = chapters_outside
    nb, error = runs[chapter]
    assert error is None, f"{chapter} failed outside the repository:\n{error[-3000:]}"
    text = _visible_text(nb)
    m = re.search(r"KERNEL-DSKD (\S+) (\S+)", text)
    assert m and Path(m[1]).is_relative_to(venv), f"the kernel did not import the wheel's dskd: {m and m[1]}"
    assert Path(m[2]).is_relative_to(venv), f"results_root() is {m[2]}, not the installed copy"
    missing = [n for n in _recorded_numbers(chapter) if n not in text]
    assert not missing, (f"{chapter}, run outside the repository, does not show the recorded {missing}: it must "
                         "read results through dskd.results (results_root / results_path), not Path('..')")
    if chapter in ("01_data", "09_metrics"):
        assert _has_widget(nb), f"{chapter} shows no live explorer (no ipywidgets view in its outputs)"


# ============================================================================ 4. make lab


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _MakeLab:
    """``make lab`` on a free loopback port with a known token, in its own process group."""

    def __init__(self, extra_args: str = "", env: dict | None = None) -> None:
        self.port, self.token = _free_port(), "dskd-test-token"
        args = f"--no-browser --ip=127.0.0.1 --port={self.port} --IdentityProvider.token={self.token} {extra_args}"
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(["make", "lab", f"LAB_ARGS={args.strip()}"], cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                     env={**os.environ, **(env or {})})

    def get(self, path: str, timeout: float = 30):
        sep = "&" if "?" in path else "?"
        with urllib.request.urlopen(f"{self.base}{path}{sep}token={self.token}", timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if r.headers.get_content_type() == "application/json" else body.decode()

    def wait(self, limit_s: float = 600):
        """The root listing, once the server answers (the first `make lab` installs JupyterLab)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"make lab exited with {self.proc.returncode}:\n{self.proc.stdout.read()[-3000:]}")
            try:
                return self.get("/api/contents/", timeout=5)
            except OSError:
                time.sleep(1)
        pytest.fail(f"JupyterLab did not answer on {self.base} within {limit_s:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.mark.slow
def test_make_lab_serves_the_chapters_in_jupyterlab():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    lab = _MakeLab()
    try:
        listing = lab.wait()
        names = {item["name"] for item in listing["content"]}
        assert {p.name for p in CHAPTERS} <= names, f"JupyterLab's root is not notebooks/: {sorted(names)}"
        assert "JupyterLab" in lab.get("/lab")
        assert "python3" in lab.get("/api/kernelspecs")["kernelspecs"]
    finally:
        lab.stop()
    # the widget manager that draws the explorers is installed as a JupyterLab extension
    labext = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "@jupyter-widgets" / "jupyterlab-manager"
    assert labext.is_dir(), f"ipywidgets' JupyterLab extension is not installed ({labext})"


@pytest.mark.slow
def test_an_explorer_is_live_in_make_lab(tmp_path):
    """Chapter 1 opened in `make lab` in Chromium, all cells run: moving the explorer's slider redraws
    its figure (a round trip through the kernel). Autosave is off, so the chapter file is not touched."""
    chromium = Path(os.environ.get("DSKD_CHROMIUM", "/usr/bin/chromium"))
    if not chromium.is_file():
        pytest.skip(f"no browser at {chromium}: `make browser` (apt-get install chromium, as root) installs it")
    from playwright.sync_api import sync_playwright

    chapter = REPO / "notebooks" / "01_data.ipynb"
    before = chapter.read_bytes()
    settings = tmp_path / "settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
    lab = _MakeLab("--LabApp.expose_app_in_browser=True",
                   env={"JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
                        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")})
    try:
        lab.wait()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium), headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(240_000)
                page.goto(f"{lab.base}/lab/tree/{chapter.name}?token={lab.token}")
                page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook')")
                page.wait_for_function("""() => {
                    const w = window.jupyterapp.shell.currentWidget;
                    return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel
                        && w.sessionContext.session.kernel.status === 'idle'; }""")
                page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
                slider = page.locator(".widget-slider").first
                slider.wait_for(state="visible")
                explorer = page.locator(".widget-vbox", has=slider).first
                image = explorer.locator(".widget-output img").first
                image.wait_for(state="visible")
                first = image.get_attribute("src")
                explorer.locator(".widget-slider .noUi-handle, .widget-slider [role=slider]").first.focus()
                page.keyboard.press("ArrowRight")
                # the explorer clears its output and shows a new figure: look the image up afresh
                page.wait_for_function("""([root, src]) => {
                    const img = root.querySelector('.widget-output img');
                    return img && img.getAttribute('src') !== src; }""", arg=[explorer.element_handle(), first])
                readout = explorer.locator(".widget-readout").first.inner_text()
                assert readout.strip() == "1", f"the slider reads {readout!r} after one step"
            finally:
                browser.close()
    finally:
        lab.stop()
    assert chapter.read_bytes() == before, "running the chapter in JupyterLab changed notebooks/01_data.ipynb"


def test_make_lab_is_documented_in_the_readme():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make lab" in text and "LAB_ARGS" in (REPO / "Makefile").read_text()


# ============================================================================ 5. downloads


def test_the_zip_holds_exactly_the_student_copies(tmp_path):
    from dskd.student_copies import ZIP_FOLDER, make_student_copies, write_student_zip

    copies = make_student_copies(REPO / "notebooks", tmp_path / "student_notebooks")
    zip_path = write_student_zip(REPO / "notebooks", tmp_path / "all.zip")
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.namelist() == [f"{ZIP_FOLDER}/{p.name}" for p in copies]
        for p in copies:
            assert zf.read(f"{ZIP_FOLDER}/{p.name}") == p.read_bytes()
    assert [p.name for p in copies] == [p.name for p in CHAPTERS]
    again = write_student_zip(REPO / "notebooks", tmp_path / "again.zip")
    assert again.read_bytes() == zip_path.read_bytes()  # reproducible


def test_the_command_line_writes_the_zip_too(tmp_path):
    from dskd.student_copies import main

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy2(CHAPTERS[0], src / CHAPTERS[0].name)
    assert main([str(src), str(tmp_path / "out"), "--zip", str(tmp_path / "z.zip")]) == 0
    with zipfile.ZipFile(tmp_path / "z.zip") as zf:
        assert zf.read(f"dskd-notebooks/{CHAPTERS[0].name}") == (tmp_path / "out" / CHAPTERS[0].name).read_bytes()


def test_an_empty_folder_gives_no_zip(tmp_path):
    from dskd.student_copies import write_student_zip

    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no notebooks"):
        write_student_zip(tmp_path / "empty", tmp_path / "x.zip")


def test_make_student_notebooks_writes_what_the_book_zips():
    proc = subprocess.run(["make", "-n", "student-notebooks"], cwd=REPO, capture_output=True, text=True)
    assert "dskd.student_copies notebooks/ student_notebooks/" in proc.stdout


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []  # (href, class)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append((a["href"], a.get("class") or ""))


def _links(page: Path) -> list[tuple[str, str]]:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.links


@pytest.mark.slow
def test_the_book_offers_every_chapter_and_a_zip_for_download(built_book):
    from dskd.student_copies import make_student_copies

    html = built_book.html
    page = html / "book" / "run_it_yourself.html"
    assert page.is_file(), "book/run_it_yourself.md was not built (is it in _toc.yml?)"
    repo = read_repository(REPO / "_config.yml")
    links = _links(page)
    hrefs = [h for h, _ in links]
    zips = [h for h, c in links if "dskd-download-all" in c]
    assert zips == ["../downloads/dskd-notebooks.zip"]
    copies = make_student_copies(built_book.source / "notebooks", built_book.source / "_student_check")
    with zipfile.ZipFile(html / "downloads" / "dskd-notebooks.zip") as zf:
        assert sorted(zf.namelist()) == sorted(f"dskd-notebooks/{p.name}" for p in copies)
    for chapter in CHAPTERS:
        copy_href = f"../downloads/notebooks/{chapter.name}"
        assert copy_href in hrefs, f"no download link for {chapter.name}"
        served = (page.parent / copy_href).resolve()
        assert served.read_bytes() == (built_book.source / "_student_check" / chapter.name).read_bytes()
        assert repo.colab_url(f"notebooks/{chapter.name}") in hrefs, f"no Colab link for {chapter.name}"
        assert f"../notebooks/{chapter.stem}.html" in hrefs, f"no link to the page of {chapter.name}"


@pytest.mark.slow
def test_every_launch_and_repository_link_of_the_book_follows_config(built_book):
    """Colab, Binder and GitHub links on every built page point at _config.yml's repository."""
    repo = read_repository(REPO / "_config.yml")
    notebooks = {f"notebooks/{p.name}" for p in CHAPTERS}
    allowed_colab = {repo.colab_url(n) for n in notebooks}
    allowed_binder = {repo.binder_url(n) for n in notebooks}
    problems, seen = [], {"colab": 0, "binder": 0, "repository": 0}
    for page in sorted(built_book.html.rglob("*.html")):
        if "_static" in page.parts or "downloads" in page.parts:
            continue
        for href, _ in _links(page):
            host = urllib.parse.urlparse(href).netloc
            if host == "colab.research.google.com":
                seen["colab"] += 1
                if href not in allowed_colab:
                    problems.append(f"{page.name}: {href}")
            elif host == "mybinder.org":
                seen["binder"] += 1
                if href not in allowed_binder:
                    problems.append(f"{page.name}: {href}")
            elif host == "github.com":
                slug = "/".join(urllib.parse.urlparse(href).path.strip("/").split("/")[:2]).lower()
                if slug == repo.slug.lower():
                    seen["repository"] += 1
                elif slug not in {"abin24/magnetic-tile-defect-datasets"}:
                    problems.append(f"{page.name}: {href}")
    assert not problems, f"links that do not follow repository.url = {repo.url}:\n" + "\n".join(problems[:20])
    assert seen["colab"] >= 2 * len(CHAPTERS) and seen["binder"] >= len(CHAPTERS) and seen["repository"] > 0, seen


# ============================================================================ 6. publishing and the PDF


def _make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.MULTILINE))


def test_the_publishing_workflow_runs_only_makefile_targets():
    import yaml

    flow = yaml.safe_load((REPO / ".github" / "workflows" / "book.yml").read_text())
    triggers = flow.get("on", flow.get(True))  # YAML 1.1 reads the key `on` as True
    assert "push" in triggers and "workflow_dispatch" in triggers
    assert flow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    targets = _make_targets()
    build = flow["jobs"]["build"]
    assert build["env"]["DSKD_TEACHER"] == "imagenet"  # the paper's teacher, for every step
    runs = [step["run"] for step in build["steps"] if "run" in step]
    called = []
    for command in runs:
        m = re.fullmatch(r"make ((?:[\w.-]+ ?)+)", command.strip())
        assert m, f"a workflow step runs {command!r}, not a Makefile target"
        for target in m[1].split():
            assert target in targets, f"the workflow calls `make {target}`, which the Makefile does not define"
            called.append(target)
    assert called == ["install", "book", "pdf"]
    uses = [step.get("uses", "") for step in build["steps"]]
    assert any(u.startswith("actions/checkout@") for u in uses)
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"  # where `make book` writes the HTML
    deploy = flow["jobs"]["deploy"]
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == ["actions/deploy-pages"]


def test_make_pdf_prints_the_built_book_with_the_pdf_tool():
    proc = subprocess.run(["make", "-n", "pdf"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "-m tools.book_pdf _build/html _build/pdf/dskd-book.pdf" in proc.stdout
    assert re.search(r"^pdf:\s*book\b", (REPO / "Makefile").read_text(), re.MULTILINE)


def test_the_pdf_tool_refuses_an_unbuilt_book(tmp_path):
    from tools.book_pdf import book_pdf

    with pytest.raises(FileNotFoundError, match=r"not built .*run `make book` first"):
        book_pdf(tmp_path, tmp_path / "x.pdf", REPO / "_toc.yml")


def _page_titles(built_book) -> list[tuple[str, str]]:
    """(docname, the page's first heading) in _toc.yml's order."""
    from tools.book_pdf import toc_docnames

    titles = []
    for doc in toc_docnames(REPO / "_toc.yml"):
        nb = REPO / f"{doc}.ipynb"
        if nb.is_file():
            cells = json.loads(nb.read_text())["cells"]
            heading = next(line for c in cells if c["cell_type"] == "markdown"
                           for line in _source(c).splitlines() if line.startswith("# "))
        else:
            heading = next(line for line in (REPO / f"{doc}.md").read_text().splitlines() if line.startswith("# "))
        titles.append((doc, heading[2:].strip()))
    return titles


@pytest.mark.slow
def test_make_pdf_makes_one_pdf_of_the_whole_book(built_book, tmp_path):
    chromium = Path(os.environ.get("DSKD_CHROMIUM", "/usr/bin/chromium"))
    if not chromium.is_file():
        pytest.skip(f"no browser at {chromium}: `make browser` (apt-get install chromium, as root) installs it")
    from pypdf import PdfReader

    from tools.book_pdf import book_pdf

    out = tmp_path / "book.pdf"
    printed = book_pdf(built_book.html, out, REPO / "_toc.yml", str(chromium))
    reader = PdfReader(out)
    expected = _page_titles(built_book)
    assert [p.docname for p in printed] == [d for d, _ in expected]
    assert len(reader.pages) == sum(p.n_pages for p in printed)
    assert len(reader.pages) >= 3 * len(CHAPTERS), f"{len(reader.pages)} pages for {len(expected)} book pages"
    outline = [(item.title, reader.get_destination_page_number(item)) for item in reader.outline]
    assert outline == [(p.title, p.first_page) for p in printed]

    def flat(s: str) -> str:  # the book prints typographic quotes (Sphinx's smartquotes) where the source has ' "
        s = s.translate(str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}))
        return re.sub(r"\s+", " ", s).strip()

    for page, (doc, title) in zip(printed, expected):
        assert flat(page.title) == flat(title), f"{doc}: bookmark {page.title!r}, heading {title!r}"
        first = flat(reader.pages[page.first_page].extract_text())
        assert flat(title)[:30] in first, f"{doc}: its first PDF page does not start with {title!r}: {first[:200]!r}"


# ============================================================================ dskd.results: where the records are


@pytest.fixture
def result_places(tmp_path, monkeypatch):
    """Three results folders (given, repository, installed), each with its README.md; $DSKD_RESULTS unset."""
    import dskd.results as results

    places = {}
    for name in ("given", "env", "repository", "installed"):
        folder = tmp_path / name
        (folder / "mt-defects").mkdir(parents=True)
        (folder / "README.md").write_text(f"# {name}\n")
        (folder / "mt-defects" / "table5.json").write_text(json.dumps({"from": name}))
        places[name] = folder
    monkeypatch.delenv("DSKD_RESULTS", raising=False)
    monkeypatch.setattr(results, "_REPO_RESULTS", places["repository"])
    monkeypatch.setattr(results, "_INSTALLED_RESULTS", places["installed"])
    return places


def test_results_root_prefers_the_repository_then_the_installed_copy(result_places):
    from dskd.results import load_json, results_path, results_root

    assert results_root() == result_places["repository"]
    assert load_json("mt-defects", "table5.json") == {"from": "repository"}
    assert results_path("mt-defects", "seed9.json") == result_places["repository"] / "mt-defects" / "seed9.json"
    (result_places["repository"] / "README.md").unlink()  # a pip install: no repository beside the package
    assert results_root() == result_places["installed"]
    assert load_json("mt-defects", "table5.json") == {"from": "installed"}


def test_results_root_follows_dskd_results_and_an_explicit_folder(result_places, monkeypatch):
    from dskd.results import results_root

    monkeypatch.setenv("DSKD_RESULTS", str(result_places["env"]))
    assert results_root() == result_places["env"]
    assert results_root(prefer=result_places["given"]) == result_places["given"]


def test_results_root_names_every_place_it_looked_in(result_places):
    from dskd.results import results_root

    for folder in ("repository", "installed"):
        (result_places[folder] / "README.md").unlink()
    with pytest.raises(FileNotFoundError, match=r"no recorded results found \(looked in .*the repository: .*"
                                                r"the installed package: .*reinstall dskd or set DSKD_RESULTS"):
        results_root()


def test_load_json_says_which_record_is_missing(result_places):
    from dskd.results import load_json

    with pytest.raises(FileNotFoundError, match=r"recorded result 'mvtec/table1.json' is not in .*repository"):
        load_json("mvtec", "table1.json")


# ============================================================================ the download directives, in a small Sphinx build


def _tiny_book(root: Path, chapters: list[Path]) -> Path:
    """A Sphinx project (reST) with the page of downloads at book/run.rst and the given chapters."""
    (root / "book").mkdir(parents=True)
    (root / "notebooks").mkdir()
    for path in chapters:
        shutil.copy2(path, root / "notebooks" / path.name)
    (root / "conf.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(REPO / 'book' / '_ext')!r})\n"
        "extensions = ['dskd_downloads']\n"
        "html_theme_options = {'repository_url': 'https://github.com/some-org/some-course',\n"
        "                      'repository_branch': 'trunk',\n"
        "                      'launch_buttons': {'colab_url': 'https://colab.research.google.com'}}\n"
        "html_theme = 'sphinx_book_theme'\n"
        "exclude_patterns = ['_build']\n")
    (root / "index.rst").write_text("Index\n=====\n\n.. toctree::\n\n   book/run\n" +
                                    "".join(f"   notebooks/{p.stem}\n" for p in chapters))
    (root / "book" / "run.rst").write_text("Run\n===\n\n.. dskd-book-pdf::\n\n.. dskd-chapter-downloads::\n")
    for path in chapters:  # stand-ins for the chapters' pages (the real book renders the notebooks)
        (root / "notebooks" / f"{path.stem}.rst").write_text(f"{path.stem}\n{'=' * len(path.stem)}\n")
    return root


def _sphinx(root: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-n", "-q", "-b", "html", str(root),
                           str(root / "_build" / "html")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return (root / "_build" / "html" / "book" / "run.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_download_page_links_every_chapter_its_student_copy_and_colab(tmp_path):
    from dskd.student_copies import make_student_copies

    root = _tiny_book(tmp_path / "src", CHAPTERS[:2])
    page = _sphinx(root)
    html = root / "_build" / "html"
    hrefs = [h for h, _ in _links(html / "book" / "run.html")]
    copies = make_student_copies(root / "notebooks", tmp_path / "copies")
    with zipfile.ZipFile(html / "downloads" / "dskd-notebooks.zip") as zf:
        assert zf.namelist() == [f"dskd-notebooks/{p.name}" for p in copies]
    assert "All 2 chapters in one file" in page and "../downloads/dskd-notebooks.zip" in hrefs
    for chapter, copy in zip(CHAPTERS[:2], copies):
        assert f"../downloads/notebooks/{chapter.name}" in hrefs
        assert (html / "downloads" / "notebooks" / chapter.name).read_bytes() == copy.read_bytes()
        assert (f"https://colab.research.google.com/github/some-org/some-course/blob/trunk/notebooks/{chapter.name}"
                in hrefs)
        assert f"../notebooks/{chapter.stem}.html" in hrefs
        title = json.loads(chapter.read_text())["cells"][0]["source"][0].lstrip("# ").strip()
        assert title in page.replace("\u2019", "'"), f"the page does not name chapter {title!r}"


@pytest.mark.slow
def test_the_pdf_is_linked_only_where_make_pdf_has_put_it(tmp_path):
    root = _tiny_book(tmp_path / "src", CHAPTERS[:1])
    page = _sphinx(root)
    assert "This build of the book has no PDF" in page and "dskd-book.pdf" not in page
    (root / "_build" / "html" / "downloads" / "dskd-book.pdf").write_bytes(b"%PDF-1.4 stand-in")
    page = _sphinx(root)  # the page is read again, though no source changed
    assert 'href="../downloads/dskd-book.pdf"' in page and "no PDF" not in page


@pytest.mark.slow
def test_the_download_page_needs_chapters(tmp_path):
    root = _tiny_book(tmp_path / "src", [])
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(root),
                           str(root / "_build" / "html")], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "nothing to zip" in proc.stderr and "notebooks (*.ipynb)" in proc.stderr
