"""Downloads of the chapters for book/run_it_yourself.md: each chapter's student copy, a zip of all of them.

Loaded from _config.yml (`sphinx: local_extensions`). When the HTML builder starts, the student copies of
``notebooks/NN_*.ipynb`` (``dskd.student_copies``: solution cells dropped, outputs cleared, exactly what
``make student-notebooks`` writes) are written to ``_build/html/downloads/notebooks/`` and zipped into
``_build/html/downloads/dskd-notebooks.zip``. The directive

    ```{dskd-chapter-downloads}
    ```

renders a link to the zip and a table with one row per chapter: its page, its student copy, and the
address that opens it in Colab, built from ``repository.url``/``branch`` and ``launch_buttons.colab_url``
in _config.yml exactly as the Colab launch button of the chapter's page is.

The directive ``{dskd-book-pdf}`` links the PDF of the whole book (``downloads/dskd-book.pdf``, which
``make pdf`` prints from the built pages and then rebuilds the pages that link it) where that file
exists, and otherwise says how to make it: a build without ``make pdf`` has no dead link. Pages that use
it are read again on every build, since the file comes and goes outside Sphinx's view.
"""
from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.util.docutils import SphinxDirective

#: where the downloads go, relative to the HTML output folder
DOWNLOADS = "downloads"
ZIP_NAME = "dskd-notebooks.zip"
PDF_NAME = "dskd-book.pdf"


def chapter_notebooks(srcdir: Path) -> list[Path]:
    """Every notebook of the book, in order: the chapters ``notebooks/NN_*.ipynb``, then the appendices."""
    return sorted((Path(srcdir) / "notebooks").glob("*.ipynb"))


def chapter_title(path: Path) -> str:
    """A chapter's title: the first Markdown heading of its notebook, without the ``#``."""
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return path.stem


def colab_url(config, docpath: str) -> str:
    """The Colab address of a file of the repository, as sphinx-book-theme builds the Colab button."""
    theme = config.html_theme_options or {}
    launch = theme.get("launch_buttons") or {}
    org, repo = theme["repository_url"].strip("/").split("/")[-2:]
    base = (launch.get("colab_url") or "https://colab.research.google.com").strip("/")
    book = (theme.get("path_to_docs") or "").strip("/")
    return f"{base}/github/{org}/{repo}/blob/{theme.get('repository_branch') or 'main'}/" \
           f"{book + '/' if book else ''}{docpath}"


def write_downloads(app) -> None:
    """Write the student copies and their zip into the HTML output (builder-inited)."""
    if app.builder.format != "html":
        return
    from dskd.student_copies import make_student_copies, write_student_zip

    src = Path(app.srcdir) / "notebooks"
    out = Path(app.outdir) / DOWNLOADS
    make_student_copies(src, out / "notebooks")
    write_student_zip(src, out / ZIP_NAME)


class ChapterDownloads(SphinxDirective):
    """A link to the zip of all chapters and a table: chapter, student copy, Colab."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        chapters = chapter_notebooks(Path(self.env.srcdir))
        if not chapters:
            raise self.error("dskd-chapter-downloads: no notebooks/NN_*.ipynb found")
        up = "../" * self.env.docname.count("/")  # from this page to the HTML root
        zip_para = nodes.paragraph()
        zip_para += nodes.Text(f"All {len(chapters)} chapters in one file: ")
        zip_para += nodes.reference("", ZIP_NAME, refuri=f"{up}{DOWNLOADS}/{ZIP_NAME}",
                                    classes=["dskd-download-all"])
        zip_para += nodes.Text(" (unpacks into a folder dskd-notebooks/).")

        table = nodes.table(classes=["dskd-chapter-downloads"])
        group = nodes.tgroup(cols=3)
        table += group
        for width in (50, 36, 14):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        group += head
        head += self._row([nodes.Text("Chapter"), nodes.Text("Student copy"), nodes.Text("Colab")])
        body = nodes.tbody()
        group += body
        for path in chapters:
            doc = f"notebooks/{path.stem}"
            self.env.note_dependency(str(path))
            page = addnodes.pending_xref("", nodes.inline("", chapter_title(path)), refdomain="std",
                                         reftype="doc", reftarget=f"/{doc}", refexplicit=True,
                                         refdoc=self.env.docname, refwarn=True)
            copy = nodes.reference("", path.name, refuri=f"{up}{DOWNLOADS}/notebooks/{path.name}",
                                   classes=["dskd-download"])
            colab = nodes.reference("", "open", refuri=colab_url(self.config, f"notebooks/{path.name}"),
                                    classes=["dskd-colab"])
            body += self._row([page, copy, colab])
        return [zip_para, table]

    @staticmethod
    def _row(cells: list[nodes.Node]) -> nodes.row:
        row = nodes.row()
        for content in cells:
            entry = nodes.entry()
            para = nodes.paragraph()
            para += content
            entry += para
            row += entry
        return row


class BookPdf(SphinxDirective):
    """A link to the PDF of the whole book where ``make pdf`` has put it, else how to make it."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        docs = getattr(self.env, "dskd_pdf_docs", set())
        docs.add(self.env.docname)
        self.env.dskd_pdf_docs = docs
        para = nodes.paragraph()
        pdf = Path(self.env.app.outdir) / DOWNLOADS / PDF_NAME
        if pdf.is_file():
            up = "../" * self.env.docname.count("/")
            para += nodes.Text("The whole book as one PDF, printed from these pages: ")
            para += nodes.reference("", PDF_NAME, refuri=f"{up}{DOWNLOADS}/{PDF_NAME}", classes=["dskd-book-pdf"])
            para += nodes.Text(f" ({pdf.stat().st_size / 1e6:.0f} MB).")
        else:
            para += nodes.Text("This build of the book has no PDF: ")
            para += nodes.literal("", "make pdf")
            para += nodes.Text(" prints these pages to one (offline, with Chromium) and links it here.")
        return [para]


def _pdf_pages_are_outdated(app, env, added, changed, removed) -> list[str]:
    return sorted(getattr(env, "dskd_pdf_docs", set()) - set(removed))


def _purge(app, env, docname) -> None:
    getattr(env, "dskd_pdf_docs", set()).discard(docname)


def _merge(app, env, docnames, other) -> None:
    env.dskd_pdf_docs = getattr(env, "dskd_pdf_docs", set()) | (getattr(other, "dskd_pdf_docs", set()) & docnames)


def setup(app):
    app.connect("builder-inited", write_downloads)
    app.connect("env-get-outdated", _pdf_pages_are_outdated)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.add_directive("dskd-chapter-downloads", ChapterDownloads)
    app.add_directive("dskd-book-pdf", BookPdf)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
