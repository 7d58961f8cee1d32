"""Where the course's repository lives, and everything that follows from it.

``_config.yml``'s ``repository:`` block (``url``, ``branch``) is the one place that names the repository.
Jupyter Book builds the launch buttons (Colab, Binder) and the repository button from it; this module
derives the rest:

- each notebook's install cell (the first code cell of ``notebooks/*.ipynb``), which installs
  ``dskd[widgets] @ git+<url>`` (plus :data:`NOTEBOOK_EXTRAS`) where ``dskd`` is missing (Colab) and turns
  on Colab's widget manager;
- the chapter table of ``book/run_it_yourself.md`` (Colab links; see ``book/_ext/dskd_downloads.py``);
- every other mention of the repository in the README and the book's pages (``git clone <url>``, the
  ``pip install`` line, the nbgitpuller link), which it rewrites or checks.

Usage, from the repository's root::

    python -m tools.repository            # rewrite the install cells and mentions from _config.yml
    python -m tools.repository --check    # change nothing; exit 1 listing every place that disagrees
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]

#: GitHub repositories that the course cites and that are not the course's own
THIRD_PARTY_REPOSITORIES = {
    "abin24/magnetic-tile-defect-datasets": "the MT Defects images (Huang et al.)",
}
#: files (relative to the repository's root, glob patterns) whose mentions of the repository are kept in step
COURSE_FILES = ("README.md", "book/*.md", "notebooks/*.md", "notebooks/*.ipynb", "environment.yml")
#: a GitHub repository in a URL, plain (github.com/owner/name) or percent-encoded (github.com%2Fowner%2Fname)
_GITHUB = re.compile(r"github\.com(?P<sep>/|%2F)(?P<owner>[A-Za-z0-9_.-]+)(?P=sep)(?P<name>[A-Za-z0-9_.-]*[A-Za-z0-9_-])")
_URL = re.compile(r"^https://github\.com/(?P<owner>[A-Za-z0-9_.-]+)/(?P<name>[A-Za-z0-9_.-]+?)(\.git)?/?$")


#: the extras every notebook's install cell installs, and the notebooks that need more
DEFAULT_EXTRAS = ("widgets",)
NOTEBOOK_EXTRAS = {"appendix_deployment": ("widgets", "export")}  # ONNX export and onnxruntime


def notebook_extras(path: Path | str) -> tuple[str, ...]:
    """The extras of ``dskd`` that the notebook at ``path`` imports (its install cell installs them)."""
    return NOTEBOOK_EXTRAS.get(Path(path).stem, DEFAULT_EXTRAS)


@dataclass(frozen=True)
class Repository:
    """The course's repository as ``_config.yml`` names it."""

    url: str
    branch: str = "main"
    colab_base: str = "https://colab.research.google.com"
    binder_base: str = "https://mybinder.org"

    def __post_init__(self) -> None:
        if not _URL.match(self.url):
            raise ValueError(f"repository.url in _config.yml must look like https://github.com/<owner>/<name>; "
                             f"got {self.url!r}")

    @property
    def slug(self) -> str:
        """``owner/name``."""
        m = _URL.match(self.url)
        return f"{m['owner']}/{m['name']}"

    @property
    def pip_requirement(self) -> str:
        """What a chapter's install cell installs: the package with the ``widgets`` extra, from the repository."""
        return self.requirement_for(DEFAULT_EXTRAS)

    def requirement_for(self, extras: Sequence[str]) -> str:
        """The package with ``extras`` (e.g. ``("widgets", "export")``), from the repository."""
        return f"dskd[{','.join(extras)}] @ git+https://github.com/{self.slug}"

    def colab_url(self, path: str) -> str:
        """The Colab address of a notebook in the repository (the form of Jupyter Book's launch button)."""
        return f"{self.colab_base.rstrip('/')}/github/{self.slug}/blob/{self.branch}/{path}"

    def binder_url(self, path: str) -> str:
        """The Binder address that opens a notebook of the repository in JupyterLab (as Jupyter Book builds it)."""
        return f"{self.binder_base.rstrip('/')}/v2/gh/{self.slug}/{self.branch}?urlpath=lab/tree/{path}"


def read_repository(config: Path | str = REPO_ROOT / "_config.yml") -> Repository:
    """The :class:`Repository` of a Jupyter Book ``_config.yml`` (its ``repository`` and ``launch_buttons``)."""
    import yaml  # comes with jupyter-book

    data = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
    repo = data.get("repository") or {}
    if not repo.get("url"):
        raise ValueError(f"{config} names no repository (repository.url)")
    launch = data.get("launch_buttons") or {}
    return Repository(url=str(repo["url"]), branch=str(repo.get("branch") or "main"),
                      colab_base=str(launch.get("colab_url") or Repository.colab_base),
                      binder_base=str(launch.get("binderhub_url") or Repository.binder_base))


def install_cell_source(repo: Repository, extras: Sequence[str] = DEFAULT_EXTRAS) -> str:
    """The first code cell of every notebook: install ``dskd[extras]`` where ``dskd`` is missing; Colab's
    widget manager."""
    return f"""\
# In Colab or a fresh environment: install dskd and what the chapters use (skipped
# where dskd is installed, e.g. by `make lab`). Colab: let ipywidgets 8 draw explorers.
import importlib.util, subprocess, sys

DSKD = "{repo.requirement_for(extras)}"
if importlib.util.find_spec("dskd") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", DSKD], check=True)
try:
    from google.colab import output
except ImportError:  # not in Colab
    pass
else:
    output.enable_custom_widget_manager()"""


#: the tag of the install cell: the book runs it but does not show it (book/run_it_yourself.md explains it)
INSTALL_CELL_TAGS = ["remove-cell"]


def chapter_paths(root: Path = REPO_ROOT) -> list[Path]:
    """Every notebook of the course, ``notebooks/*.ipynb`` (chapters ``NN_*``, then the appendices), in order."""
    return sorted((Path(root) / "notebooks").glob("*.ipynb"))


def first_code_cell(nb: dict) -> Optional[dict]:
    """The first code cell of a notebook (its JSON as a dict), or None."""
    return next((c for c in nb["cells"] if c["cell_type"] == "code"), None)


def cell_source(cell: dict) -> str:
    """A cell's source as one string (the JSON stores a list of lines or a string)."""
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def read_notebook(path: Path) -> dict:
    """A notebook's JSON, keys in file order (so that writing it back changes only what was changed)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_notebook(nb: dict, path: Path) -> None:
    """Write a notebook as Jupyter does (one-space indent, UTF-8, final newline)."""
    Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def install_cell_problems(root: Path, repo: Repository) -> list[str]:
    """Every chapter whose first code cell is not :func:`install_cell_source` (tagged ``remove-cell``)."""
    problems = []
    for path in chapter_paths(root):
        cell = first_code_cell(read_notebook(path))
        if cell is None:
            problems.append(f"{path.relative_to(root)}: no code cell (the first one must be the install cell)")
        elif cell_source(cell) != install_cell_source(repo, notebook_extras(path)):
            problems.append(f"{path.relative_to(root)}: the first code cell is not the install cell for {repo.url}")
        elif cell.get("metadata", {}).get("tags") != INSTALL_CELL_TAGS:
            problems.append(f"{path.relative_to(root)}: the install cell's tags are "
                            f"{cell.get('metadata', {}).get('tags')}, not {INSTALL_CELL_TAGS}")
    return problems


def write_install_cells(root: Path, repo: Repository) -> list[Path]:
    """Rewrite the first code cell of every chapter, and nothing else; return the notebooks changed."""
    changed = []
    for path in chapter_paths(root):
        source = install_cell_source(repo, notebook_extras(path))
        nb = read_notebook(path)
        cell = first_code_cell(nb)
        if cell is None:
            raise ValueError(f"{path}: no code cell to make the install cell")
        if cell_source(cell) == source and cell.get("metadata", {}).get("tags") == INSTALL_CELL_TAGS:
            continue
        cell["source"] = source.splitlines(keepends=True)
        cell.setdefault("metadata", {})["tags"] = list(INSTALL_CELL_TAGS)
        cell["outputs"], cell["execution_count"] = [], None
        write_notebook(nb, path)
        changed.append(path)
    return changed


@dataclass(frozen=True)
class Mention:
    """A GitHub repository named in a course file."""

    path: Path
    line: int
    slug: str       # owner/name as written
    encoded: bool   # github.com%2Fowner%2Fname (inside a URL's query)


def repository_mentions(root: Path = REPO_ROOT) -> list[Mention]:
    """Every GitHub repository that the course files (:data:`COURSE_FILES`) name, third-party ones excluded."""
    found = []
    for pattern in COURSE_FILES:
        for path in sorted(Path(root).glob(pattern)):
            for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                for m in _GITHUB.finditer(line):
                    slug = f"{m['owner']}/{m['name']}"
                    if slug.lower() in THIRD_PARTY_REPOSITORIES:
                        continue
                    found.append(Mention(path, lineno, slug, m["sep"] != "/"))
    return found


def stale_mentions(root: Path, repo: Repository) -> list[Mention]:
    """Mentions of a repository other than ``repo`` (an old address, or a third party not listed)."""
    return [m for m in repository_mentions(root) if m.slug.lower() != repo.slug.lower()]


def rewrite_mentions(root: Path, repo: Repository) -> list[Path]:
    """Point every stale mention (:func:`stale_mentions`) at ``repo``; return the files changed."""
    changed = []
    for path in sorted({m.path for m in stale_mentions(root, repo)}):
        text = path.read_text(encoding="utf-8")

        def fix(m: re.Match) -> str:
            if f"{m['owner']}/{m['name']}".lower() in THIRD_PARTY_REPOSITORIES:
                return m[0]
            return f"github.com{m['sep']}{repo.slug.replace('/', m['sep'])}"

        path.write_text(_GITHUB.sub(fix, text), encoding="utf-8")
        changed.append(path)
    return changed


def check(root: Path = REPO_ROOT, config: Optional[Path] = None) -> list[str]:
    """Every place that disagrees with ``_config.yml``'s repository; empty when all agree."""
    repo = read_repository(config or Path(root) / "_config.yml")
    problems = install_cell_problems(Path(root), repo)
    problems += [f"{m.path.relative_to(root)}:{m.line}: names github.com/{m.slug}, not {repo.url} "
                 f"(a third-party repository goes into THIRD_PARTY_REPOSITORIES in tools/repository.py)"
                 for m in stale_mentions(Path(root), repo)]
    return problems


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.repository", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything disagrees")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the repository's root (default: this one)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        repo = read_repository(root / "_config.yml")
    except (OSError, ValueError) as err:
        parser.error(str(err))
    if args.check:
        problems = check(root)
        for p in problems:
            print(p)
        print(f"{len(problems)} place(s) disagree with repository.url = {repo.url}" if problems
              else f"install cells and mentions agree with repository.url = {repo.url}")
        return 1 if problems else 0
    cells = write_install_cells(root, repo)
    files = rewrite_mentions(root, repo)
    for path in cells + files:
        print(f"rewrote {path.relative_to(root)}")
    print(f"{len(cells)} install cell(s) and {len(files)} other file(s) rewritten for {repo.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
