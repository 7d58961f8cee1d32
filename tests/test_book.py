"""The book builds with zero warnings, every page of _toc.yml is there, and every notebook chapter
shows at least one figure that its own code produced.

The slow tests use the `built_book` fixture (tests/conftest.py): a copy of the book's sources in a
temporary folder, built as `make book` builds it (`jupyter-book build -W -n --keep-going`), except
that its notebooks are the copies the test session executed (tests/notebook_runner.py, shared with
tests/test_notebooks.py) and the copied _config.yml turns execution off. So the book is built once
and every chapter executed once per session, against the package as it is now, and `_build/` is
neither clobbered nor reused. (A shared jupyter cache would hide a notebook that the package broke:
it keys on the notebook's code, not on the package's.)
"""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterable

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = "notebooks/"
LOG_TAIL_LINES = 80

#: anything in the build log that means the book is not clean
_PROBLEM_PATTERNS = (
    re.compile(r"\bWARNING\b"),
    re.compile(r"\bERROR\b"),
    re.compile(r"\bCRITICAL\b"),
    re.compile(r"Execution Failed"),
    re.compile(r"CellExecutionError"),
    re.compile(r"CellTimeoutError"),
    re.compile(r"DeadKernelError"),
    re.compile(r"Traceback \(most recent call last\)"),
)
#: harmless lines that match the patterns above. ipykernel >= 7 logs this for every kernel it starts
#: on the default TCP transport (the kernel here is local, started by nbclient for one notebook); it
#: goes to the kernel's stderr, not into the book, and `-W` does not see it.
_HARMLESS_PATTERNS = (
    re.compile(r"^\[IPKernelApp\] WARNING \| Kernel is running over TCP without encryption\."),
)
_SOURCE_SUFFIXES = (".md", ".ipynb", ".rst", ".myst")


# ----------------------------------------------------------------------------- helpers


def toc_files(toc: dict[str, Any]) -> list[str]:
    """Every ``file:`` of a jb-book or jb-article toc, root first, in reading order, without suffix."""
    found: list[str] = [toc["root"]]

    def walk(entries: Iterable[dict[str, Any]] | None) -> None:
        for entry in entries or ():
            if "file" in entry:
                found.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts") or ():
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    walk(toc.get("sections"))
    return [_strip_suffix(f) for f in found]


def _strip_suffix(docname: str) -> str:
    for suffix in _SOURCE_SUFFIXES:
        if docname.endswith(suffix):
            return docname[: -len(suffix)]
    return docname


def read_toc(path: Path = REPO / "_toc.yml") -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")  # comes with jupyter-book; the checker tests need only pytest

    return yaml.safe_load(path.read_text(encoding="utf-8"))


class _OutputImageCounter(HTMLParser):
    """Counts ``<img>`` tags inside a myst-nb cell output (``<div class="cell_output ...">``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._inside: list[bool] = []  # one entry per open <div>: is it in a cell output?
        self.images = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "div":
            classes = (dict(attrs).get("class") or "").split()
            parent = self._inside[-1] if self._inside else False
            self._inside.append(parent or "cell_output" in classes)
        elif tag == "img" and self._inside and self._inside[-1]:
            self.images += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._inside:
            self._inside.pop()


def count_output_images(html: str) -> int:
    """Number of images that notebook cells produced in a rendered page (markdown images don't count)."""
    counter = _OutputImageCounter()
    counter.feed(html)
    counter.close()
    return counter.images


def notebook_pages_without_figures(html_root: Path, docnames: Iterable[str]) -> list[str]:
    """The chapters under notebooks/ whose HTML page has no output image (or no page at all)."""
    missing = []
    for doc in docnames:
        if not doc.startswith(NOTEBOOK_DIR):
            continue
        page = html_root / f"{doc}.html"
        if not page.is_file() or count_output_images(page.read_text(encoding="utf-8")) == 0:
            missing.append(doc)
    return missing


def build_problems(log: str) -> list[str]:
    """Lines of a build log that report a warning, an error or a failed notebook."""
    return [
        line for line in log.splitlines()
        if any(p.search(line) for p in _PROBLEM_PATTERNS) and not any(h.search(line) for h in _HARMLESS_PATTERNS)
    ]


def _tail(text: str, n: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-n:])


# ----------------------------------------------------------------------------- unit tests of the checks

_FIGURE_PAGE = """
<html><body><main>
<p><img alt="a diagram" src="../_images/fig3.png"/></p>
<div class="cell docutils container">
  <div class="cell_input docutils container"><pre>plt.plot([1, 2])</pre></div>
  <div class="cell_output docutils container">
    <div class="output text_plain highlight-myst-ansi notranslate"><pre>[&lt;Line2D&gt;]</pre></div>
    <img alt="../_images/abc.png" src="../_images/abc.png" />
  </div>
</div>
</main></body></html>
"""

_NO_FIGURE_PAGE = """
<html><body><main>
<p><img alt="a diagram in markdown, not an output" src="../_images/fig3.png"/></p>
<div class="cell docutils container">
  <div class="cell_input docutils container"><pre>print(1)</pre><img src="icon.png"/></div>
  <div class="cell_output docutils container">
    <div class="output stream highlight-myst-ansi notranslate"><pre>1</pre></div>
  </div>
</div>
<img src="after-the-output.png">
</main></body></html>
"""


def test_count_output_images_finds_a_figure_in_a_cell_output():
    assert count_output_images(_FIGURE_PAGE) == 1


def test_count_output_images_ignores_images_outside_cell_outputs():
    assert count_output_images(_NO_FIGURE_PAGE) == 0
    assert count_output_images("<p>no cells at all</p>") == 0


def test_count_output_images_sees_images_nested_deeper_in_the_output():
    nested = '<div class="cell_output docutils container"><div><div><img src="x.png"></div></div></div>'
    assert count_output_images(nested) == 1


def test_notebook_pages_without_figures_flags_a_chapter_without_a_figure(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_data.html").write_text(_FIGURE_PAGE)
    (tmp_path / "notebooks" / "02_teacher.html").write_text(_NO_FIGURE_PAGE)
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.html").write_text(_NO_FIGURE_PAGE)  # not a notebook chapter: not checked
    docs = ["book/intro", "notebooks/01_data", "notebooks/02_teacher", "notebooks/03_missing"]
    assert notebook_pages_without_figures(tmp_path, docs) == ["notebooks/02_teacher", "notebooks/03_missing"]


def test_toc_files_walks_parts_chapters_and_sections():
    toc = {
        "format": "jb-book",
        "root": "book/intro",
        "parts": [
            {"caption": "A", "chapters": [{"file": "book/preface.md"}]},
            {
                "caption": "B",
                "chapters": [
                    {"file": "notebooks/01_data.ipynb", "sections": [{"file": "notebooks/01b_extra"}]},
                    {"url": "https://example.org", "title": "an external link"},
                ],
            },
        ],
    }
    assert toc_files(toc) == ["book/intro", "book/preface", "notebooks/01_data", "notebooks/01b_extra"]


def test_build_problems_catches_warnings_errors_and_failed_cells():
    log = "\n".join([
        "reading sources... [100%] book/intro",
        "/x/book/intro.md:3: WARNING: undefined label: 'nope'",
        "/x/notebooks/01_data.ipynb: ERROR: Execution Failed with traceback saved in /x/reports/01_data.err.log",
        "CellExecutionError: An error occurred while executing the following cell:",
        "build succeeded.",
        "suppress_warnings=[] is only a config value",
        "[IPKernelApp] WARNING | Kernel is running over TCP without encryption. All communication ...",
        "[IPKernelApp] WARNING | something else the kernel is unhappy about",
    ])
    problems = build_problems(log)
    assert len(problems) == 4
    assert problems[-1].endswith("something else the kernel is unhappy about")
    assert build_problems("build succeeded.\nThe HTML pages are in _build/html.") == []


def test_the_toc_lists_only_pages_that_exist():
    """Jupyter Book fails on a toc entry without a file; say which one, before the slow build does."""
    missing = [
        doc for doc in toc_files(read_toc())
        if not any((REPO / f"{doc}{suffix}").is_file() for suffix in _SOURCE_SUFFIXES)
    ]
    assert missing == [], f"_toc.yml lists pages that do not exist: {missing}"


# ----------------------------------------------------------------------------- the build
# `built_book` (tests/conftest.py) builds the book once per session, for these tests and
# tests/test_browser.py, from the notebooks that `executed_notebook` executed.


@pytest.mark.slow
def test_every_notebook_of_the_book_executes(built_book):
    failed = built_book.notebook_errors
    message = f"{len(failed)} notebook(s) of the book failed to execute: {sorted(failed)}"
    for name, error in list(failed.items())[:3]:
        message += f"\n--- {name} ---\n{_tail(error, 40)}"
    assert not failed, message


@pytest.mark.slow
def test_book_builds_without_warnings(built_book):
    log = built_book.log
    problems = build_problems(log)
    message = (
        f"`jupyter-book {' '.join(built_book.command[1:])}` (the sources of `make book`, with the "
        f"notebooks executed by the test session) exited {built_book.returncode}; "
        f"{len(problems)} problem line(s).\n"
        + "\n".join(problems[:20])
        + f"\n--- last {LOG_TAIL_LINES} lines of {built_book.source / 'build.log'} ---\n{_tail(log)}"
    )
    assert built_book.returncode == 0 and not problems, message


@pytest.mark.slow
def test_every_toc_page_was_built(built_book):
    html = built_book.html
    missing = [doc for doc in toc_files(read_toc()) if not (html / f"{doc}.html").is_file()]
    assert missing == [], f"no HTML page for these _toc.yml entries: {missing} (looked in {html})"


@pytest.mark.slow
def test_every_notebook_chapter_shows_a_figure(built_book):
    html = built_book.html
    without = notebook_pages_without_figures(html, toc_files(read_toc()))
    assert without == [], (
        f"these chapters have no output image (an <img> inside a cell output): {without}; "
        "every notebook chapter should show at least one figure its code produced"
    )


# ----------------------------------------------------------------------------- pages generated at build time


def _fixes():
    import sys

    sys.path.insert(0, str(REPO / "book" / "_ext"))
    import dskd_sphinx_fixes

    return dskd_sphinx_fixes


def test_course_time_adds_up_the_course_guides_own_table():
    guide = """add 30 to 60 minutes for the exercises.

| Chapter | After it | Reading | Running (CPU) |
| --- | --- | --- | --- |
| 1 Data (`01_data`) | ... | about 40 min | up to 3 min |
| 2 Teacher (`02_teacher`) | ... | about 45 min | about 1 min |
| 10-12 Ablations (`10`, `11`, `12`) | ... | 30 min each | up to 3 min each |
"""
    fixes = _fixes()
    assert fixes.course_minutes(guide) == {"reading": 40 + 45 + 3 * 30, "chapters": 5, "exercises_low": 150,
                                           "exercises_high": 300}
    assert fixes.course_hours_text(guide).startswith("About 3 hours of reading for the 5 chapters, plus 2 to 5")
    with pytest.raises(ValueError, match="gives no reading time in minutes"):
        fixes.course_minutes(guide.replace("about 45 min", "a while"))
    with pytest.raises(ValueError, match="no chapter table with reading times"):
        fixes.course_minutes("no table here")


def test_the_real_course_guide_gives_every_chapter_a_time():
    from test_book import read_toc, toc_files  # noqa: F401  (the same REPO)

    minutes = _fixes().course_minutes((REPO / "book" / "course_guide.md").read_text(encoding="utf-8"))
    chapters = [d for d in toc_files(read_toc()) if d.startswith("notebooks/") and d.split("/")[1][:2].isdigit()]
    assert minutes["chapters"] == len(chapters) == 16
