"""The whole book as one PDF, made offline from the built HTML book (``make pdf``).

Chromium (Debian's, driven by Playwright; never a browser download) prints every page of the HTML book in
``_toc.yml``'s order, after MathJax has typeset it and every image has loaded; pypdf joins the pages into
one file with a bookmark per page, titled as the page is::

    python -m tools.book_pdf _build/html _build/pdf/dskd-book.pdf [--copy-to _build/html/downloads/dskd-book.pdf]

``$DSKD_CHROMIUM`` names the browser (default ``/usr/bin/chromium``, which ``make browser`` installs).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: print-only fixes: code wraps at the page's edge instead of being cut off; in-page "Contents" boxes and
#: buttons that do nothing on paper are left out
PRINT_CSS = """
pre, pre code, .highlight pre, div.output pre { white-space: pre-wrap !important; overflow-wrap: anywhere; }
.bd-sidebar-secondary, .header-article, .prev-next-area, .headerlink, .copybtn, .bd-footer-article,
.bd-footer { display: none !important; }
"""
#: how long one page may take to load, typeset and print (ms)
PAGE_TIMEOUT_MS = 120_000

# Wait until MathJax has typeset the page (when it has MathJax) and every image has loaded.
_READY_JS = """async () => {
  for (const img of document.images) { img.loading = "eager"; }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  await Promise.all(Array.from(document.images).map(img => img.complete ? null :
      new Promise(done => { img.addEventListener("load", done); img.addEventListener("error", done); })));
  const h1 = document.querySelector("main h1, article h1, h1");
  return h1 ? h1.textContent.replace(/[#¶]\\s*$/, "").trim() : document.title;
}"""


@dataclass
class PrintedPage:
    """One page of the book in the PDF."""

    docname: str       # its _toc.yml entry, e.g. notebooks/01_data
    title: str         # its first heading, as the reader sees it
    first_page: int    # 0-based index of its first page in the PDF
    n_pages: int


def toc_docnames(toc_path: Path) -> list[str]:
    """Every ``root``/``file`` entry of a Jupyter Book ``_toc.yml``, in reading order, without suffix."""
    import yaml  # comes with jupyter-book

    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    found.append(node[key].rsplit(".", 1)[0] if node[key].endswith((".md", ".ipynb")) else node[key])
            for value in node.values():
                if isinstance(value, (dict, list)):
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(Path(toc_path).read_text(encoding="utf-8")))
    return found


def book_pdf(html_dir: Path | str, out: Path | str, toc_path: Path | str = REPO_ROOT / "_toc.yml",
             chromium: Optional[str] = None) -> list[PrintedPage]:
    """Print every page of the built book at ``html_dir`` (in ``_toc.yml``'s order) into one PDF ``out``.

    Returns where each page landed. Raises ``FileNotFoundError`` when the book is not built (a page of the
    table of contents has no HTML file) or the browser is missing.
    """
    from playwright.sync_api import sync_playwright
    from pypdf import PdfReader, PdfWriter

    html_dir, out = Path(html_dir), Path(out)
    chromium = chromium or os.environ.get("DSKD_CHROMIUM") or DEFAULT_CHROMIUM
    docs = toc_docnames(Path(toc_path))
    missing = [d for d in docs if not (html_dir / f"{d}.html").is_file()]
    if missing:
        raise FileNotFoundError(f"the book is not built in {html_dir} (no {missing[0]}.html, and "
                                f"{len(missing) - 1} more pages): run `make book` first")
    if not Path(chromium).is_file():
        raise FileNotFoundError(f"no browser at {chromium}: `make browser` installs Debian's chromium, or set "
                                "DSKD_CHROMIUM to a Chromium or Chrome binary")
    writer, printed = PdfWriter(), []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.emulate_media(media="print")
            for i, doc in enumerate(docs):
                page.goto((html_dir / f"{doc}.html").resolve().as_uri(), wait_until="load")
                title = page.evaluate(_READY_JS)
                page.add_style_tag(content=PRINT_CSS)
                part = Path(tmp) / f"{i:03d}.pdf"
                page.pdf(path=str(part), format="A4", print_background=True, prefer_css_page_size=False,
                         margin={"top": "15mm", "bottom": "15mm", "left": "14mm", "right": "14mm"})
                reader = PdfReader(part)
                first = len(writer.pages)
                for pdf_page in reader.pages:
                    writer.add_page(pdf_page)
                writer.add_outline_item(title=title, page_number=first)
                printed.append(PrintedPage(doc, title, first, len(reader.pages)))
        finally:
            browser.close()
        writer.add_metadata({"/Title": printed[0].title if printed else "dskd", "/Creator": "tools/book_pdf.py"})
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("wb") as f:
            writer.write(f)
    return printed


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.book_pdf", description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="the built HTML book, e.g. _build/html")
    parser.add_argument("out", type=Path, help="the PDF to write, e.g. _build/pdf/dskd-book.pdf")
    parser.add_argument("--toc", type=Path, default=REPO_ROOT / "_toc.yml", help="the book's _toc.yml")
    parser.add_argument("--copy-to", type=Path, default=None, help="also copy the PDF here (into the HTML book)")
    args = parser.parse_args(argv)
    try:
        printed = book_pdf(args.html, args.out, args.toc)
    except FileNotFoundError as err:
        parser.error(str(err))
    if args.copy_to is not None:
        args.copy_to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.out, args.copy_to)
    n = sum(p.n_pages for p in printed)
    print(f"{args.out}: {n} pages, {len(printed)} book pages, {args.out.stat().st_size / 1e6:.1f} MB"
          + (f" (copied to {args.copy_to})" if args.copy_to else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
