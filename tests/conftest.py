"""Shared pytest fixtures."""
from __future__ import annotations

# ============================================================================
# BEGIN data fixtures (dskd.data, used by tests/test_data.py). Names: data_*
# ============================================================================
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _data_write_png(path: Path, size=(16, 12), mode="RGB", value=None, seed=0) -> Path:
    """A small PNG (size = (W, H)); random content unless ``value`` is given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    if value is None:
        arr = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    else:
        arr = np.full(shape, value, dtype=np.uint8)
    Image.fromarray(arr).save(path)  # (H, W) -> "L", (H, W, 3) -> "RGB"
    return path


def _data_write_mask(path: Path, size=(16, 12), box=(2, 2, 8, 8)) -> Path:
    """A 0/255 mask with a filled rectangle ``box`` = (x0, y0, x1, y1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    arr = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = 255
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def data_write_png():
    """The PNG writer helper: ``data_write_png(path, size=(W, H), mode="RGB"|"L", value=None)``."""
    return _data_write_png


@pytest.fixture
def data_write_mask():
    """The mask writer helper: ``data_write_mask(path, size=(W, H), box=(x0, y0, x1, y1))``."""
    return _data_write_mask


def _data_make_mvtec_tree(root: Path, category: str = "bottle") -> Path:
    """A tiny fake MVTec AD category: 3 train, 2 test/good, 2 broken_large, 1 contamination."""
    base = root / category
    for i in range(3):
        _data_write_png(base / "train" / "good" / f"{i:03d}.png", seed=i)
    for i in range(2):
        _data_write_png(base / "test" / "good" / f"{i:03d}.png", seed=10 + i)
    for i in range(2):
        _data_write_png(base / "test" / "broken_large" / f"{i:03d}.png", seed=20 + i)
        _data_write_mask(base / "ground_truth" / "broken_large" / f"{i:03d}_mask.png")
    _data_write_png(base / "test" / "contamination" / "000.png", mode="L", seed=30)  # grey image
    _data_write_mask(base / "ground_truth" / "contamination" / "000_mask.png", box=(0, 0, 16, 6))
    return root


@pytest.fixture
def data_mvtec_root(tmp_path) -> Path:
    """Root of a fake MVTec AD tree holding the category ``bottle``."""
    return _data_make_mvtec_tree(tmp_path / "mvtec_ad")


@pytest.fixture
def data_mvtec3d_root(tmp_path) -> Path:
    """Root of a fake MVTec 3D-AD tree holding ``bagel`` (RGB + gt only)."""
    base = tmp_path / "mvtec_3d" / "bagel"
    for i in range(3):
        _data_write_png(base / "train" / "good" / "rgb" / f"{i:03d}.png", seed=i)
        _data_write_png(base / "train" / "good" / "gt" / f"{i:03d}.png", mode="L", value=0)
    _data_write_png(base / "validation" / "good" / "rgb" / "000.png", seed=5)
    _data_write_png(base / "test" / "good" / "rgb" / "000.png", seed=6)
    _data_write_png(base / "test" / "good" / "gt" / "000.png", mode="L", value=0)
    for i in range(2):
        _data_write_png(base / "test" / "crack" / "rgb" / f"{i:03d}.png", seed=7 + i)
        _data_write_mask(base / "test" / "crack" / "gt" / f"{i:03d}.png")
    _data_write_png(base / "test" / "hole" / "rgb" / "000.png", seed=9)
    _data_write_mask(base / "test" / "hole" / "gt" / "000.png", box=(4, 4, 6, 6))
    (base / "test" / "crack" / "xyz").mkdir()  # point clouds are ignored
    return tmp_path / "mvtec_3d"


@pytest.fixture
def data_fake_mt_root(tmp_path) -> Path:
    """A fake MT Defects tree: 5 MT_Free images (all-zero masks) and 1 image per defect folder."""
    root = tmp_path / "magnetic-tile"
    for i in range(5):
        _data_write_png(root / "MT_Free" / "Imgs" / f"free_{i}.jpg", size=(20, 14), mode="L", seed=i)
        _data_write_png(root / "MT_Free" / "Imgs" / f"free_{i}.png", size=(20, 14), mode="L", value=0)
    for j, folder in enumerate(["MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven"]):
        _data_write_png(root / folder / "Imgs" / f"d{j}.jpg", size=(20, 14), mode="L", seed=50 + j)
        _data_write_mask(root / folder / "Imgs" / f"d{j}.png", size=(20, 14))
    return root


@pytest.fixture
def data_mt_root() -> Path:
    """The real MT Defects folder, or skip."""
    from dskd.data import find_magnetic_tile_root

    root = find_magnetic_tile_root()
    if root is None:
        pytest.skip("MT Defects not found: set DSKD_DATA to a folder holding magnetic-tile/ (see README)")
    return root


def _data_make_tar_xz(archive: Path, files: dict[str, bytes]) -> tuple[Path, str, str]:
    """Write ``files`` (archive name -> content) into a .tar.xz; return (path, sha256, md5)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:xz") as tf:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    raw = archive.read_bytes()
    return archive, hashlib.sha256(raw).hexdigest(), hashlib.md5(raw).hexdigest()


@pytest.fixture
def data_make_mvtec_tree():
    """The helper ``data_make_mvtec_tree(root, category="bottle") -> root``."""
    return _data_make_mvtec_tree


@pytest.fixture
def data_make_tar_xz():
    """The helper ``data_make_tar_xz(archive, {name: bytes}) -> (path, sha256, md5)``."""
    return _data_make_tar_xz


@pytest.fixture
def data_tar_archive(tmp_path) -> tuple[Path, str, str]:
    """A small ``pkg.tar.xz`` holding ``pkg/a.txt`` and ``pkg/sub/b.txt``: (path, sha256, md5)."""
    return _data_make_tar_xz(
        tmp_path / "src" / "pkg.tar.xz", {"pkg/a.txt": b"hello", "pkg/sub/b.txt": b"world" * 100}
    )


# ============================================================================
# END data fixtures
# ============================================================================


# One torch thread for a test module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``): tiny
# inputs gain nothing from threads, and OpenMP barriers stall when the test machine is shared.
@pytest.fixture
def one_torch_thread():
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


# ============================================================================
# Shared fixtures: offline teacher, a private run cache, executed notebooks.
# ============================================================================
import os
import shutil
import sys

sys.path.insert(0, str(Path(__file__).parent))  # tests/notebook_runner.py

# This project's machines keep MT Defects in ../shared/data (the package itself looks only at $DSKD_DATA):
# point the tests there unless DSKD_DATA says otherwise; without it the real-data tests skip, saying why.
_SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if "DSKD_DATA" not in os.environ and (_SHARED_DATA / "magnetic-tile").is_dir():
    os.environ["DSKD_DATA"] = str(_SHARED_DATA)


@pytest.fixture(scope="session", autouse=True)
def offline_teacher_and_private_cache(tmp_path_factory):
    """Tests run offline: the default teacher is the shipped offline-pretrained one (unless DSKD_TEACHER
    says otherwise; tests that need a random teacher name it), and trained models are cached in a fresh
    folder, never in the user's ~/.cache/dskd."""
    saved = {k: os.environ.get(k) for k in ("DSKD_TEACHER", "DSKD_CACHE")}
    os.environ.setdefault("DSKD_TEACHER", "offline-pretrained")
    cache = tmp_path_factory.mktemp("dskd_cache")
    os.environ["DSKD_CACHE"] = str(cache)
    yield
    shutil.rmtree(cache, ignore_errors=True)  # gigabytes of checkpoints that no later session reads
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def executed_notebook(tmp_path_factory):
    """Execute a chapter once per session (the book test reuses the executed copies)."""
    from notebook_runner import execute, warm_up

    out_dir = tmp_path_factory.mktemp("executed_notebooks")
    done = {}

    def run(path):
        if not done:
            print(f"\nnotebook warm-up (first kernel of the session): {warm_up(out_dir):.0f} s")
        if path not in done:
            done[path] = execute(path, out_dir)
        return done[path]

    return run


# ============================================================================
# BEGIN built_book: the book, built once per session from the executed notebooks
# (used by tests/test_book.py and tests/test_browser.py). Names: built_book, BuiltBook, _book_*
# ============================================================================
import shutil
import subprocess
from dataclasses import dataclass, field


@dataclass
class BuiltBook:
    """The result of one `jupyter-book build` of a copy of the book's sources."""

    source: Path                 # the copied sources: _config.yml, _toc.yml, book/, notebooks/, results/
    html: Path                   # source / "_build" / "html"
    log: str                     # stdout + stderr of the build (also in source / "build.log")
    returncode: int
    command: list[str]
    #: notebook path relative to the repository -> the executed copy the build used
    notebooks: dict[str, Path] = field(default_factory=dict)
    #: notebook path relative to the repository -> the error it stopped with (only failed ones)
    notebook_errors: dict[str, str] = field(default_factory=dict)


_BOOK_BUILD_TIMEOUT_S = 3600
_BOOK_SOURCE_SUFFIXES = (".ipynb", ".md", ".rst", ".myst")
_BOOK_IGNORE = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "_build", ".*")


def _book_toc_docs(node) -> list[str]:
    """Every ``root``/``file`` entry of a _toc.yml, at any depth, in order."""
    found = []
    if isinstance(node, dict):
        for key in ("root", "file"):
            if isinstance(node.get(key), str):
                found.append(node[key])
        for value in node.values():
            if isinstance(value, (dict, list)):
                found += _book_toc_docs(value)
    elif isinstance(node, list):
        for value in node:
            found += _book_toc_docs(value)
    return found


@pytest.fixture(scope="session")
def built_book(tmp_path_factory, executed_notebook) -> BuiltBook:
    """`jupyter-book build -W -n --keep-going` of a copy of the book whose notebooks are the copies
    that ``executed_notebook`` executed (so each chapter runs once per session, here or in
    tests/test_notebooks.py), with execution turned off in the copied _config.yml.

    The copy keeps the repository's layout, so page names, and the launch buttons built from them and
    from the repository URL in _config.yml, are those of the real book."""
    import yaml
    from notebook_runner import NOTEBOOKS, REPO

    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    if not jupyter_book.exists():
        pytest.skip(f"jupyter-book is not installed next to {sys.executable} (pip install -e '.[book]')")

    src = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO / name, src / name)
    for folder in ("book", "results"):
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, src / folder, ignore=_BOOK_IGNORE)
    if NOTEBOOKS.is_dir():  # figures or data next to the notebooks; the notebooks themselves come below
        shutil.copytree(NOTEBOOKS, src / "notebooks",
                        ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints", "__pycache__", ".*"))

    notebooks, errors = {}, {}
    toc = yaml.safe_load((REPO / "_toc.yml").read_text(encoding="utf-8"))
    for doc in _book_toc_docs(toc):
        doc = doc[: -len(".ipynb")] if doc.endswith(".ipynb") else doc
        path = REPO / f"{doc}.ipynb"
        if not path.is_file():
            continue
        if path.parent == NOTEBOOKS:
            path = NOTEBOOKS / path.name  # the same key as tests/test_notebooks.py uses
        run = executed_notebook(path)
        rel = f"{doc}.ipynb"
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run.output, src / rel)
        notebooks[rel] = run.output
        if run.error is not None:
            errors[rel] = run.error

    config = yaml.safe_load((src / "_config.yml").read_text(encoding="utf-8"))
    config.setdefault("execute", {})["execute_notebooks"] = "off"  # already executed above
    (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
                                     encoding="utf-8")

    cmd = [str(jupyter_book), "build", str(src), "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, cwd=src, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=_BOOK_BUILD_TIMEOUT_S)
    (src / "build.log").write_text(proc.stdout, encoding="utf-8")
    return BuiltBook(source=src, html=src / "_build" / "html", log=proc.stdout, returncode=proc.returncode,
                     command=cmd, notebooks=notebooks, notebook_errors=errors)

# ============================================================================
# END built_book
# ============================================================================


# ============================================================================
# Every figure the package draws keeps the book's figure rule (dskd/plotting/style.py): at most the column's
# width, no text under 9 px on screen at desktop width, no title cut off. Checked on every figure that any
# test makes through the package (figures are made inside dskd_style, which reports each one).
# ============================================================================


@pytest.fixture(autouse=True)
def figures_keep_the_book_figure_rule():
    from dskd.plotting.style import on_figure, readability_problems

    problems: list[str] = []

    def check(fig) -> None:
        found = readability_problems(fig)
        if found:
            title = fig._suptitle.get_text().split("\n")[0][:60] if fig._suptitle else "(no title)"
            problems.append(f"{title!r}: " + "; ".join(found[:4]))

    with on_figure(check):
        yield
    if problems:
        pytest.fail("figures that break the book's figure rule (dskd/plotting/style.py):\n  " + "\n  ".join(problems[:8]))


# ============================================================================
# BEGIN decision fixtures (tests/test_decision.py, tests/test_export.py): a checkpoint that stores its
# threshold, trained once per session. Names: decision_*
# ============================================================================
@pytest.fixture(scope="session")
def decision_checkpoint(tmp_path_factory) -> Path:
    """`dskd train` for 1 epoch on the quick synthetic data (random teacher): it holds 10 of the 96
    training images out and stores the threshold calibrated on them."""
    from dskd.cli import main

    out = tmp_path_factory.mktemp("decision_run")
    argv = ["train", "--teacher", "random", "--epochs", "1", "--image-size", "64", "--batch-size", "16",
            "--out", str(out)]
    assert main(argv) == 0
    return out / "checkpoint.pt"


@pytest.fixture(scope="session")
def decision_images(tmp_path_factory) -> Path:
    """A folder of PNGs: normal and defective images of the quick test split (as 8-bit files), and a
    flat grey one, with names as a line camera might write them."""
    from dskd import TrainConfig, dataset_for
    from dskd.data import save_image

    folder = tmp_path_factory.mktemp("decision_images")
    test = dataset_for(TrainConfig.quick(), "test")
    picked: dict[str, int] = {}
    for i in range(len(test)):
        kind = test[i]["defect_type"]
        if picked.get(kind, 0) < (2 if kind == "good" else 1):
            sub = "good" if kind == "good" else "defect"
            save_image(test[i]["image"], folder / sub / f"part_{i:03d}_{kind}.png")
            picked[kind] = picked.get(kind, 0) + 1
    Image.new("RGB", (80, 80), (128, 128, 128)).save(folder / "grey_line_camera_frame_2026-12-04T10-31-07.png")
    return folder
# ============================================================================
# END decision fixtures
# ============================================================================
