"""The built book as a reader meets it: every page opened in headless Chromium.

The book comes from the session's `built_book` fixture (tests/conftest.py: built once, from the notebooks
the session executed). It is served from 127.0.0.1 by `python -m http.server` and every page is opened
in Debian's Chromium (/usr/bin/chromium, installed by `make browser`; never a browser download), driven
by Playwright. One visit per page, at desktop and at phone width, records what the tests below check:

- no console error and no JavaScript exception, apart from requests to other hosts, which are blocked
  (the book must work offline) and only listed, as "external, offline";
- every image has loaded (natural width > 0);
- every internal link points at a file of the site, and every ``#anchor`` at an id on its page;
- every equation was typeset by MathJax, without errors, and no raw ``$$``, ``\\(`` or ``\\[`` is left;
- every code cell that has outputs in the executed notebook shows them;
- the Colab and Binder launch buttons open the page's own notebook in the repository of _config.yml;
- no horizontal overflow at phone width; at desktop width, no table of up to nine columns scrolls sideways
  (the paper's comparison tables, one column per method, may);
- what a reader sees, at desktop and phone width: no paragraph or cell holding a Markdown table row
  (``| --- |``) or a ``$...$`` span that MathJax did not typeset; no code line wider than its block
  without wrapping; no display equation clipped (too wide for its box, which does not scroll); every
  figure of a cell output opens full size on a click; the text column at least as wide as the figures
  are drawn for (``dskd.plotting.style.COLUMN_PX``: the plotting tests check every figure's smallest
  text against it);
- every explorer shows a working client-side control (a change shows another precomputed view) and
  its page requests nothing from another host (no CDN);
- the landing page links every page of _toc.yml from its own text.

Also: search finds a chapter, exercise solutions start collapsed, and screenshots of the landing page,
the runs page, and chapters with equations, tables and an explorer, at desktop and phone width, go to
``_build/screenshots/`` (git-ignored).

Skipped, with the reason, only where there is no browser: `make test` first runs `make browser`, which
installs Debian's chromium where apt-get and root allow it. A missing Playwright is a failure, since
`pip install -e '.[dev]'` installs it.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterable, Optional
from urllib.parse import quote, unquote, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("DSKD_CHROMIUM", "/usr/bin/chromium"))
#: as root Chromium needs --no-sandbox; the rest keeps it from phoning home or doing first-run work
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm, too small for long pages
]
SCREENSHOTS = REPO / "_build" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SEARCH_TERM = "PRO"
PAGE_TIMEOUT_MS = 60_000
#: folders of the built site that hold no pages
_NOT_PAGES = {"_static", "_sources", "_images", "_downloads", "reports", "_sphinx_design_static"}
#: tags that keep a cell's output from being rendered (or shown without a click)
_REMOVE_OUTPUT_TAGS = {"remove-output", "remove_output", "remove-cell", "remove_cell"}
_HIDDEN_OUTPUT_TAGS = {"hide-output", "hide_output", "hide-cell", "hide_cell"}
#: output types the book cannot show without a kernel (or a CDN, offline): no visible output expected
_KERNEL_ONLY_MIME = {"application/vnd.jupyter.widget-view+json", "application/javascript"}
_SHOWN_MIME = {"text/plain", "text/html", "text/markdown", "text/latex", "image/png", "image/jpeg",
               "image/svg+xml", "image/gif"}


# ----------------------------------------------------------------------------- helpers (unit tested)


def is_external(url: str, origin: str) -> bool:
    """True for an http(s) URL on another host than ``origin`` (``http://127.0.0.1:8000``)."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https", "ws", "wss") and f"{parts.scheme}://{parts.netloc}" != origin


def site_file(url: str, origin: str, html_root: Path) -> Optional[Path]:
    """The file under ``html_root`` that a URL of the site serves (``None`` for another site)."""
    parts = urlsplit(url)
    if f"{parts.scheme}://{parts.netloc}" != origin:
        return None
    path = unquote(parts.path).lstrip("/")
    if path == "" or path.endswith("/"):
        path += "index.html"
    return html_root / path


class _IdCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        for name, value in attrs:
            if value and (name == "id" or (tag == "a" and name == "name")):
                self.ids.add(value)


def html_ids(html: str) -> set[str]:
    """Every ``id`` (and ``<a name>``) in a page: the targets a ``#fragment`` can point at."""
    collector = _IdCollector()
    collector.feed(html)
    collector.close()
    return collector.ids


def broken_links(hrefs: Iterable[str], origin: str, html_root: Path, ids_of: Any) -> list[str]:
    """The internal links among ``hrefs`` (absolute URLs) whose file or ``#anchor`` is missing.

    ``ids_of(path)`` returns the ids of the page at ``path``."""
    broken = []
    for href in dict.fromkeys(hrefs):  # unique, in order
        target = site_file(href, origin, html_root)
        if target is None:
            continue
        if not target.is_file():
            broken.append(f"{href} (no file {target.relative_to(html_root)})")
            continue
        fragment = unquote(urlsplit(href).fragment)
        if fragment and target.suffix == ".html" and fragment not in ids_of(target):
            broken.append(f"{href} (no id {fragment!r} on {target.relative_to(html_root)})")
    return broken


def expected_launch_urls(config: dict[str, Any], notebook: str) -> dict[str, str]:
    """The Colab and Binder URLs that open ``notebook`` (a path in the repository) as _config.yml says."""
    repo_url = config["repository"]["url"].rstrip("/")
    branch = config["repository"].get("branch", "main")
    book_path = (config["repository"].get("path_to_book") or "").strip("/")
    path = f"{book_path}/{notebook}" if book_path else notebook
    owner_repo = urlsplit(repo_url).path.strip("/")
    launch = config.get("launch_buttons", {})
    urls = {}
    if launch.get("colab_url"):
        urls["colab"] = f"{launch['colab_url'].rstrip('/')}/github/{owner_repo}/blob/{branch}/{path}"
    if launch.get("binderhub_url"):
        ui = {"classic": "tree", "jupyterlab": "lab/tree"}[launch.get("notebook_interface", "classic")]
        urls["binder"] = f"{launch['binderhub_url'].rstrip('/')}/v2/gh/{owner_repo}/{branch}?urlpath={ui}/{path}"
    return urls


def expected_outputs(nb: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per code cell the book renders: does it have an output, must that be visible?"""
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & {"remove-cell", "remove_cell"}:
            continue
        outputs = [] if tags & _REMOVE_OUTPUT_TAGS else [
            o for o in cell.get("outputs", [])
            if not (o["output_type"] == "stream" and f"remove-{o.get('name')}" in tags)  # remove-stderr/-stdout
        ]
        mimes = set().union(*(o.get("data", {}).keys() for o in outputs)) if outputs else set()
        # a widget view alone shows nothing in the book; with an HTML twin (an explorer's static player,
        # dskd/widgets/static.py) the book shows the twin, since _config.yml drops the widget view
        shown = any(o["output_type"] in ("stream", "error") for o in outputs) or bool(
            mimes & _SHOWN_MIME and (not mimes & _KERNEL_ONLY_MIME or "text/html" in mimes))
        cells.append({"has_output": bool(outputs), "visible": shown and not tags & _HIDDEN_OUTPUT_TAGS,
                      "source": cell["source"][:60]})
    return cells


def site_pages(html_root: Path) -> list[str]:
    """Every page of the built site (paths relative to its root), except the index.html redirect."""
    pages = []
    for path in sorted(html_root.rglob("*.html")):
        rel = path.relative_to(html_root)
        if rel.parts[0] in _NOT_PAGES or rel.as_posix() == "index.html":
            continue
        pages.append(rel.as_posix())
    return pages


# ----------------------------------------------------------------------------- in the browser (JS)

_JS_IMAGES = """async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { if (i.loading === "lazy") i.loading = "eager"; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener("load", r); i.addEventListener("error", r); setTimeout(r, 15000); })));
  return imgs.map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0}));
}"""

_JS_MATHJAX_DONE = """async () => {
  if (!document.querySelector(".math")) return "no math";
  for (let i = 0; i < 300 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++)
    await new Promise(r => setTimeout(r, 100));
  if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return "MathJax did not start";
  await MathJax.startup.promise;
  return "typeset";
}"""

_JS_MATH = """() => {
  const maths = Array.from(document.querySelectorAll(".math"));
  const unrendered = maths.filter(m => !m.querySelector("mjx-container")).map(m => m.textContent.trim().slice(0, 80));
  const errors = Array.from(document.querySelectorAll("mjx-merror")).map(e =>
      (e.getAttribute("data-mjx-error") || e.textContent).slice(0, 80));
  // an undefined macro is typeset as its name in red (MathJax's noundefined extension); CHTML draws
  // characters with classes (mjx-c5C is a backslash), so read the name from those
  document.querySelectorAll("mjx-container mjx-mtext[style*='color: red']").forEach(e => {
      const chars = Array.from(e.querySelectorAll("mjx-c")).map(c =>
          String.fromCodePoint(parseInt((c.className.match(/mjx-c([0-9A-F]+)/) || [, "3F"])[1], 16))).join("");
      if (chars.startsWith("\\\\")) errors.push(`undefined macro ${chars}`); });
  const main = (document.querySelector("main") || document.body).cloneNode(true);
  main.querySelectorAll("pre, code, script, style, textarea, mjx-container, .highlight").forEach(e => e.remove());
  const text = main.textContent;
  const raw = ["$$", "\\\\(", "\\\\["].filter(t => text.includes(t)).map(t => {
      const at = text.indexOf(t); return text.slice(Math.max(0, at - 30), at + 40).replace(/\\s+/g, " "); });
  return {count: maths.length, unrendered, errors, raw};
}"""

_JS_LINKS = """() => Array.from(document.querySelectorAll("a[href]")).map(a => a.href)"""

_JS_CELLS = """() => Array.from(document.querySelectorAll("div.cell")).map(c => {
  const o = c.querySelector(".cell_output");
  let visible = false;
  if (o) { const r = o.getBoundingClientRect(); visible = r.height > 0 && getComputedStyle(o).visibility !== "hidden"; }
  return {has_output: !!o, visible, text: (c.querySelector(".cell_input") || c).textContent.trim().slice(0, 60)};
})"""

_JS_OVERFLOW = """() => {
  // The layout viewport: with mobile emulation a page wider than the screen is zoomed out, which
  // widens window.innerWidth to the page's width, so innerWidth alone would hide the overflow.
  const W = Math.min(window.innerWidth, document.documentElement.clientWidth);
  const sw = document.documentElement.scrollWidth;
  const result = {scrollWidth: sw, innerWidth: W, culprits: []};
  if (sw <= W + 1) return result;
  const scrolls = el => { for (let a = el.parentElement; a; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.position === "fixed") return true;
      if (s.overflowX !== "visible" && a.getBoundingClientRect().right <= W + 1) return true; }
    return false; };
  for (const el of document.body.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.right <= W + 1) continue;
    if (Array.from(el.children).some(k => k.getBoundingClientRect().right > W + 1)) continue;
    if (scrolls(el)) continue;
    const cls = typeof el.className === "string" ? el.className : "";
    result.culprits.push(`${el.tagName.toLowerCase()}.${cls.split(/\\s+/).join(".")} right=${Math.round(r.right)}px `
        + `"${el.textContent.trim().slice(0, 40)}"`);
    if (result.culprits.length >= 6) break;
  }
  return result;
}"""

_JS_READER = """() => {
  const main = document.querySelector("main") || document.body;
  const W = Math.min(window.innerWidth, document.documentElement.clientWidth);
  const skip = "pre, code, script, style, textarea, mjx-container, .math, .highlight, .dskd-player";
  const raw = [];
  main.querySelectorAll("p, li, td, th, dd, div.cell_output div.output").forEach(el => {
    if (el.closest(skip)) return;
    const clone = el.cloneNode(true);
    clone.querySelectorAll(skip).forEach(e => e.remove());
    const t = clone.textContent.replace(/\\s+/g, " ");
    if (/\\|\\s*:?-{3,}:?\\s*\\|/.test(t) || /\\|\\s*\u2014+\\s*\\|/.test(t))
      raw.push(`a Markdown table row shown as text: "${t.trim().slice(0, 70)}"`);
    const m = t.match(/\\$[^\\s$][^$]{0,200}?\\$/);
    if (m) raw.push(`TeX outside MathJax: "${m[0].slice(0, 60)}"`);
  });
  const code = [];
  main.querySelectorAll("pre").forEach(pre => {
    const ws = getComputedStyle(pre).whiteSpace;
    if (pre.scrollWidth > pre.clientWidth + 1 && (ws === "pre" || ws === "nowrap"))
      code.push(`"${pre.textContent.split("\\n").sort((a, b) => b.length - a.length)[0].trim().slice(0, 60)}" `
                + `(${pre.scrollWidth} px in a ${pre.clientWidth} px block)`);
  });
  // cell code that had to wrap: its longest line is wider than the block (the chapters keep lines within
  // 88 characters, which must fit the desktop column)
  const wrapped = [];
  main.querySelectorAll("div.cell_input pre").forEach(pre => {
    if (pre.textContent.includes('find_spec("dskd")')) return;  // the install cell (issue 15's) may wrap
    const saved = pre.style.whiteSpace;
    pre.style.whiteSpace = "pre";
    if (pre.scrollWidth > pre.clientWidth + 1)
      wrapped.push(`"${pre.textContent.split("\\n").sort((a, b) => b.length - a.length)[0].trim().slice(0, 60)}" `
                   + `(${pre.scrollWidth} px in a ${pre.clientWidth} px block)`);
    pre.style.whiteSpace = saved;
  });
  const clipped = [];
  main.querySelectorAll('mjx-container[display="true"]').forEach(m => {
    for (let el = m; el && el !== main; el = el.parentElement) {
      const ox = getComputedStyle(el).overflowX;
      if (el.scrollWidth > el.clientWidth + 1 && (ox === "hidden" || ox === "clip")) {
        clipped.push(`${el.tagName.toLowerCase()}.${(el.className || "").toString().split(" ")[0]} clips an equation `
                     + `(${el.scrollWidth} px in ${el.clientWidth} px)`); break; }
      if (ox === "auto" || ox === "scroll") break;
    }
    if (m.getBoundingClientRect().left < -1) clipped.push("an equation starts left of the screen");
  });
  const players = Array.from(main.querySelectorAll(".dskd-player")).map(p => ({
    id: p.id, controls: p.querySelectorAll("[data-control]").length,
    frames: JSON.parse((p.querySelector("script.dskd-player-frames") || {textContent: "[]"}).textContent).length,
    shown: p.getAttribute("data-shown")}));
  const unlinked = Array.from(main.querySelectorAll(".cell_output img")).filter(i => !i.closest(".dskd-player"))
    .filter(i => { const a = i.closest("a"); return !(a && a.href && a.href.split("#")[0] === i.src.split("#")[0]); })
    .map(i => (i.getAttribute("src") || "").slice(-60));
  const images = Array.from(main.querySelectorAll(".cell_output img")).filter(i => !i.closest(".dskd-player")).length;
  const art = document.querySelector(".bd-article") || main;
  const cs = getComputedStyle(art);
  const column = art.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  const article_links = Array.from(art.querySelectorAll("a[href]")).map(a => a.href);
  // tables wider than the box they sit in (they scroll sideways): columns, widths and the header
  const tables = Array.from(main.querySelectorAll("table")).map(t => {
    let box = t.parentElement;
    while (box && getComputedStyle(box).display.startsWith("inline")) box = box.parentElement;
    return {columns: t.rows.length ? t.rows[0].cells.length : 0, width: t.scrollWidth, box: box.clientWidth,
            head: t.rows.length ? t.rows[0].innerText.replace(/\\s+/g, " ").trim().slice(0, 60) : ""};
  }).filter(t => t.width > t.box + 1);
  return {raw, code, wrapped, clipped, players, unlinked, images, column, article_links, tables};
}"""

_JS_PLAYER_WORKS = """async (id) => {
  const p = document.getElementById(id);
  const img = p.querySelector("img.dskd-player-frame");
  const before = [img.src, p.getAttribute("data-shown")];
  const c = p.querySelector("[data-control]");
  if (!c) return {ok: false, why: "no control"};
  if (c.tagName === "SELECT") {
    const other = Array.from(c.options).find(o => o.value !== c.value);
    if (!other) return {ok: false, why: "a menu with one option"};
    c.value = other.value;
  } else {
    c.value = String(+c.value === +c.max ? c.min : c.max);
  }
  c.dispatchEvent(new Event("input", {bubbles: true}));
  c.dispatchEvent(new Event("change", {bubbles: true}));
  await new Promise(r => setTimeout(r, 50));
  const after = [img.src, p.getAttribute("data-shown")];
  return {ok: after[0] !== before[0] && after[1] !== before[1] && img.naturalWidth > 0,
          why: `view ${before[1]} -> ${after[1]}, image changed: ${after[0] !== before[0]}`};
}"""

_JS_SEARCH_DONE = """() => {
  const s = document.querySelector("#search-results .search-summary, #search-results p");
  return !!s && /finished|did not match|found/i.test(s.textContent);
}"""

_JS_DROPDOWNS = """() => Array.from(document.querySelectorAll(".admonition.dropdown")).map(d => {
  const body = Array.from(d.children).filter(c => !c.classList.contains("admonition-title"));
  const shown = body.some(c => c.getBoundingClientRect().height > 0 && getComputedStyle(c).visibility !== "hidden");
  return {id: d.id, title: (d.querySelector(".admonition-title") || d).textContent.trim().slice(0, 40), shown};
})"""


# ----------------------------------------------------------------------------- fixtures


def _browser_or_skip() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: `pip install -e '.[dev]'` installs it (the dev extra lists it)")
    if not CHROMIUM.is_file():
        # `make test` runs `make browser` first, so here the install was impossible or failed.
        can_apt = shutil.which("apt-get") is not None and os.geteuid() == 0
        how = ("`make browser` (apt-get install -y chromium) installs it; if it ran, it failed: see its output"
               if can_apt else "installing it needs apt-get as root, which this machine does not offer")
        pytest.skip(f"no browser: Debian's chromium is not at {CHROMIUM}; {how}")
    return sync_playwright


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def site(built_book):
    """``(origin, html_root)``: the built book served on 127.0.0.1 by ``python -m http.server``."""
    html = built_book.html
    if not (html / "index.html").is_file():
        pytest.fail(f"the book did not build (no {html / 'index.html'}); see tests/test_book.py")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(html)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    origin = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{origin}/index.html", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"python -m http.server exited with {server.returncode}")
                time.sleep(0.1)
        else:
            pytest.fail(f"python -m http.server did not answer on {origin}")
        yield origin, html
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="session")
def playwright_and_chromium():
    """Playwright's entry point, or skip (or fail) at once: session-scoped, and asked for first by every
    browser test, so that without a browser the tests skip before the book is built."""
    return _browser_or_skip()


@pytest.fixture(scope="module")
def browser(playwright_and_chromium):
    with playwright_and_chromium() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class PageReport:
    page: str
    console_errors: list[str] = field(default_factory=list)    # local resources and JS exceptions
    external: list[str] = field(default_factory=list)          # blocked requests to other hosts
    broken_images: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)             # every a[href], absolute
    math: dict[str, Any] = field(default_factory=dict)
    cells: list[dict[str, Any]] = field(default_factory=list)
    launch: list[str] = field(default_factory=list)            # hrefs of Colab / Binder links
    overflow: dict[str, Any] = field(default_factory=dict)     # at phone width
    dropdowns: list[dict[str, Any]] = field(default_factory=list)  # .admonition.dropdown, before a click
    reader: dict[str, Any] = field(default_factory=dict)       # _JS_READER at desktop width
    reader_phone: dict[str, Any] = field(default_factory=dict)  # _JS_READER at phone width


def _new_context(browser, viewport: dict[str, int], origin: str, sink: dict[str, list[str]], phone: bool = False):
    """A browser context that blocks other hosts, appending their URLs to ``sink["external"]``."""
    context = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone, device_scale_factor=1)
    context.set_default_timeout(PAGE_TIMEOUT_MS)

    def block_other_hosts(route):
        url = route.request.url
        if is_external(url, origin):
            sink["external"].append(url)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    context.route("**/*", block_other_hosts)
    return context


def _open(context, url: str, origin: str, errors: list[str]):
    page = context.new_page()

    def on_console(msg):
        if msg.type != "error":
            return
        where = (msg.location or {}).get("url", "")
        if where and is_external(where, origin):
            return  # a blocked request to another host: listed in PageReport.external
        errors.append(f"console: {msg.text} ({where or 'no location'})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"JavaScript exception: {exc}"))
    page.on("requestfailed", lambda req: None if is_external(req.url, origin) else errors.append(
        f"request failed: {req.url} ({req.failure})"))
    page.on("response", lambda resp: errors.append(f"HTTP {resp.status}: {resp.url}")
            if resp.status >= 400 and not is_external(resp.url, origin) else None)
    page.goto(url, wait_until="load")  # async scripts, images and style sheets have loaded (or failed)
    state = page.evaluate(_JS_MATHJAX_DONE)
    if state == "MathJax did not start":
        errors.append("MathJax did not start on a page with math")
    return page


#: the pages whose screenshots are kept, besides the landing page and the first chapter (when they exist):
#: equations (chapter 6), generated tables (15), an explorer (2), the runs page
SCREENSHOT_PAGES = {"equations": "notebooks/06_loss", "tables": "notebooks/15_results",
                    "explorer": "notebooks/02_teacher", "runs": "book/runs_in_this_book"}


def _landing_and_chapter(built_book) -> dict[str, str]:
    """Screenshot name -> page: the landing page, the first chapter, and SCREENSHOT_PAGES that exist."""
    from test_book import read_toc, toc_files

    docs = toc_files(read_toc())
    chapters = [d for d in docs if f"{d}.ipynb" in built_book.notebooks]
    chapter = chapters[0] if chapters else ("book/preface" if "book/preface" in docs else docs[-1])
    shots = {"landing": f"{docs[0]}.html", "chapter": f"{chapter}.html"}
    shots.update({kind: f"{doc}.html" for kind, doc in SCREENSHOT_PAGES.items() if doc in docs})
    return shots


@pytest.fixture(scope="module")
def reports(playwright_and_chromium, browser, site, built_book) -> dict[str, PageReport]:
    """Visit every page at desktop width, then at phone width; take the screenshots on the way.

    (``playwright_and_chromium`` comes first: without a browser the tests skip before the book is built.)"""
    origin, html = site
    pages = site_pages(html)
    shots = _landing_and_chapter(built_book)
    if SCREENSHOTS.is_dir():
        for old in SCREENSHOTS.glob("*.png"):
            old.unlink()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = {name: PageReport(name) for name in pages}

    sink: dict[str, list[str]] = {"external": []}
    desktop = _new_context(browser, DESKTOP, origin, sink)
    phone = _new_context(browser, PHONE, origin, sink, phone=True)
    try:
        for name in pages:
            rep = out[name]
            sink["external"] = rep.external
            page = _open(desktop, f"{origin}/{quote(name)}", origin, rep.console_errors)
            rep.broken_images = [i["src"] for i in page.evaluate(_JS_IMAGES) if not i["ok"]]
            rep.links = page.evaluate(_JS_LINKS)
            rep.math = page.evaluate(_JS_MATH)
            rep.cells = page.evaluate(_JS_CELLS)
            rep.dropdowns = page.evaluate(_JS_DROPDOWNS)
            rep.launch = [h for h in rep.links if "colab.research.google.com" in h or "mybinder.org" in h]
            rep.reader = page.evaluate(_JS_READER)
            for kind, doc in shots.items():
                if doc == name:
                    page.screenshot(path=str(SCREENSHOTS / f"{kind}-desktop-1280.png"), full_page=True)
            page.close()

            phone_errors: list[str] = []
            page = _open(phone, f"{origin}/{quote(name)}", origin, phone_errors)
            rep.console_errors += [f"{e} (at phone width)" for e in phone_errors if e not in rep.console_errors]
            rep.overflow = page.evaluate(_JS_OVERFLOW)
            rep.reader_phone = page.evaluate(_JS_READER)
            for kind, doc in shots.items():
                if doc == name:
                    page.screenshot(path=str(SCREENSHOTS / f"{kind}-phone-390.png"), full_page=True)
            page.close()
    finally:
        desktop.close()
        phone.close()
    return out


def _summary(failures: dict[str, list[str]], limit: int = 12) -> str:
    lines = []
    for page, items in list(failures.items())[:limit]:
        lines.append(f"{page}:")
        lines += [f"    {item}" for item in items[:8]]
    if len(failures) > limit:
        lines.append(f"... and {len(failures) - limit} more pages")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- unit tests of the helpers


def test_is_external():
    origin = "http://127.0.0.1:8123"
    assert not is_external("http://127.0.0.1:8123/book/intro.html#x", origin)
    assert is_external("https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js", origin)
    assert is_external("http://127.0.0.1:9999/other-server", origin)
    assert not is_external("data:image/png;base64,AAAA", origin)
    assert not is_external("blob:http://127.0.0.1:8123/1234", origin)


def test_broken_links_finds_missing_files_and_anchors(tmp_path):
    origin = "http://127.0.0.1:8123"
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "a.html").write_text('<h1 id="top">A</h1><a name="legacy"></a>')
    (tmp_path / "index.html").write_text("<p>home</p>")
    ids = lambda p: html_ids(p.read_text())  # noqa: E731
    hrefs = [
        f"{origin}/book/a.html", f"{origin}/book/a.html#top", f"{origin}/book/a.html#legacy",
        f"{origin}/", f"{origin}/book/a.html?q=x", "https://example.org/missing.html",
        f"{origin}/book/a.html#nowhere", f"{origin}/book/b.html", f"{origin}/book/a.html#top",
        f"{origin}/book/a%20b.html",
    ]
    assert broken_links(hrefs, origin, tmp_path, ids) == [
        f"{origin}/book/a.html#nowhere (no id 'nowhere' on book/a.html)",
        f"{origin}/book/b.html (no file book/b.html)",
        f"{origin}/book/a%20b.html (no file book/a b.html)",
    ]


def test_expected_launch_urls_follow_the_config():
    config = {
        "repository": {"url": "https://github.com/dskd-book/dskd", "path_to_book": "", "branch": "main"},
        "launch_buttons": {"notebook_interface": "jupyterlab", "colab_url": "https://colab.research.google.com",
                           "binderhub_url": "https://mybinder.org"},
    }
    assert expected_launch_urls(config, "notebooks/01_data.ipynb") == {
        "colab": "https://colab.research.google.com/github/dskd-book/dskd/blob/main/notebooks/01_data.ipynb",
        "binder": "https://mybinder.org/v2/gh/dskd-book/dskd/main?urlpath=lab/tree/notebooks/01_data.ipynb",
    }
    config["repository"]["path_to_book"] = "docs/"
    assert expected_launch_urls(config, "x.ipynb")["colab"].endswith("/blob/main/docs/x.ipynb")


def test_expected_outputs_reads_tags_and_output_types():
    def code(outputs, tags=()):
        return {"cell_type": "code", "source": "x", "metadata": {"tags": list(tags)}, "outputs": outputs}

    png = {"output_type": "display_data", "data": {"image/png": "..", "text/plain": "<Figure>"}}
    widget = {"output_type": "display_data",
              "data": {"application/vnd.jupyter.widget-view+json": {}, "text/plain": "IntSlider()"}}
    stream = {"output_type": "stream", "name": "stdout", "text": "hi"}
    nb = {"cells": [
        {"cell_type": "markdown", "source": "# t", "metadata": {}},
        code([png]), code([]), code([widget]), code([stream], ["hide-output"]), code([stream], ["remove-cell"]),
        code([png], ["remove-output"]),
        code([{"output_type": "stream", "name": "stderr", "text": "progress"}], ["remove-stderr"]),
        code([stream, {"output_type": "stream", "name": "stderr", "text": "progress"}], ["remove-stderr"]),
    ]}
    got = [(c["has_output"], c["visible"]) for c in expected_outputs(nb)]
    assert got == [(True, True), (False, False), (True, False), (True, False), (False, False), (False, False),
                   (True, True)]


def test_site_pages_skips_assets_and_the_redirect(tmp_path):
    for rel in ("index.html", "genindex.html", "book/intro.html", "_static/x.html", "_sources/y.html"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("<p></p>")
    assert site_pages(tmp_path) == ["book/intro.html", "genindex.html"]


# ----------------------------------------------------------------------------- the book in the browser


@pytest.mark.slow
def test_pages_have_no_console_errors(playwright_and_chromium, reports):
    failures = {p: r.console_errors for p, r in reports.items() if r.console_errors}
    external = sorted({u for r in reports.values() for u in r.external})
    if external:
        print(f"external, offline (blocked, not errors): {len(external)} request(s):\n  " + "\n  ".join(external))
    assert not failures, f"console errors (local resources or JavaScript exceptions):\n{_summary(failures)}"


@pytest.mark.slow
def test_every_image_loads(playwright_and_chromium, reports):
    failures = {p: r.broken_images for p, r in reports.items() if r.broken_images}
    assert not failures, f"images that did not load (natural width 0):\n{_summary(failures)}"


@pytest.mark.slow
def test_internal_links_and_anchors_resolve(playwright_and_chromium, reports, site):
    origin, html = site
    cache: dict[Path, set[str]] = {}

    def ids_of(path: Path) -> set[str]:
        if path not in cache:
            cache[path] = html_ids(path.read_text(encoding="utf-8", errors="replace"))
        return cache[path]

    failures = {p: broken_links(r.links, origin, html, ids_of) for p, r in reports.items()}
    failures = {p: b for p, b in failures.items() if b}
    checked = sum(1 for r in reports.values() for h in r.links if not is_external(h, origin))
    assert checked > 0, "no internal links found at all"
    assert not failures, f"internal links whose page or anchor does not exist:\n{_summary(failures)}"


@pytest.mark.slow
def test_math_is_rendered(playwright_and_chromium, reports):
    failures = {}
    for p, r in reports.items():
        problems = [f"not typeset: {m}" for m in r.math.get("unrendered", [])]
        problems += [f"MathJax error: {e}" for e in r.math.get("errors", [])]
        problems += [f"raw TeX in the text: ...{t}..." for t in r.math.get("raw", [])]
        if problems:
            failures[p] = problems
    assert sum(r.math.get("count", 0) for r in reports.values()) > 0, "no equation anywhere in the book"
    assert not failures, f"math that MathJax did not render:\n{_summary(failures)}"


@pytest.mark.slow
def test_code_cells_show_their_outputs(playwright_and_chromium, reports, built_book):
    import nbformat

    failures = {}
    for rel in built_book.notebooks:
        page = rel[: -len(".ipynb")] + ".html"
        if page not in reports:
            failures[page] = ["no page"]
            continue
        expected = expected_outputs(nbformat.read(built_book.source / rel, as_version=4))
        shown = reports[page].cells
        if len(shown) != len(expected):
            failures[page] = [f"{len(shown)} code cells on the page, {len(expected)} in the notebook"]
            continue
        problems = []
        for i, (want, got) in enumerate(zip(expected, shown)):
            if want["has_output"] and not got["has_output"]:
                problems.append(f"cell {i} ({want['source']!r}...): its output is missing")
            elif want["visible"] and not got["visible"]:
                problems.append(f"cell {i} ({want['source']!r}...): its output is not visible")
        if problems:
            failures[page] = problems
    if not built_book.notebooks:
        pytest.skip("no notebook chapter in _toc.yml yet: no code cells to check")
    assert not failures, f"code cells that do not show their outputs:\n{_summary(failures)}"


@pytest.mark.slow
def test_launch_buttons_open_the_pages_notebook(playwright_and_chromium, reports, built_book):
    import yaml

    if not built_book.notebooks:
        pytest.skip("no notebook chapter in _toc.yml yet: no launch buttons to check")
    config = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
    failures = {}
    for rel in built_book.notebooks:
        page = rel[: -len(".ipynb")] + ".html"
        assert (REPO / rel).is_file()
        want = expected_launch_urls(config, rel)
        got = reports[page].launch if page in reports else []
        problems = [f"no {kind} button {url}" for kind, url in want.items() if url not in got]
        problems += [f"unexpected launch link {url}" for url in got if url not in want.values()]
        if problems:
            failures[page] = problems
    assert not failures, f"launch buttons that do not open the page's notebook:\n{_summary(failures)}"


#: tables of more columns than this may scroll sideways at desktop width: the paper's comparison tables
#: (one column per method) and the catalogues of runs and structures; smaller ones must fit the column
SCROLLING_TABLE_COLUMNS = 10


@pytest.mark.slow
def test_tables_of_up_to_nine_columns_fit_the_desktop_column(playwright_and_chromium, reports):
    failures = {
        p: [f"{t['columns']} columns, {t['width']} px in a {t['box']} px box: \"{t['head']}\"" for t in wide]
        for p, r in reports.items()
        if (wide := [t for t in r.reader.get("tables", []) if t["columns"] < SCROLLING_TABLE_COLUMNS])
    }
    assert not failures, ("tables that scroll sideways at desktop width (shorten their labels, leave out "
                          f"empty columns, or split them):\n{_summary(failures)}")


@pytest.mark.slow
def test_no_horizontal_overflow_at_phone_width(playwright_and_chromium, reports):
    failures = {
        p: [f"page is {r.overflow['scrollWidth']} px wide in a {r.overflow['innerWidth']} px window"]
        + r.overflow["culprits"]
        for p, r in reports.items()
        if r.overflow.get("scrollWidth", 0) > min(r.overflow.get("innerWidth", 0), PHONE["width"]) + 1
    }
    assert not failures, f"pages wider than a {PHONE['width']} px phone screen:\n{_summary(failures)}"


@pytest.mark.slow
def test_screenshots_of_the_landing_page_and_a_chapter(playwright_and_chromium, reports, built_book):
    shots = sorted(SCREENSHOTS.glob("*.png"))
    print(f"screenshots ({', '.join(_landing_and_chapter(built_book).values())}) in {SCREENSHOTS}: "
          + ", ".join(s.name for s in shots))
    kinds = _landing_and_chapter(built_book)
    assert [s.name for s in shots] == sorted(
        f"{kind}-{size}.png" for kind in kinds for size in ("desktop-1280", "phone-390"))
    assert all(s.stat().st_size > 5_000 for s in shots), "a screenshot is (nearly) empty"


@pytest.mark.slow
def test_index_redirects_to_the_landing_page(playwright_and_chromium, browser, site, built_book):
    origin, _ = site
    context = _new_context(browser, DESKTOP, origin, {"external": []})
    try:
        page = context.new_page()
        page.goto(f"{origin}/index.html")
        page.wait_for_url(f"{origin}/{_landing_and_chapter(built_book)['landing']}")
    finally:
        context.close()


@pytest.mark.slow
def test_search_finds_a_chapter(playwright_and_chromium, browser, site, built_book):
    from test_book import read_toc, toc_files

    origin, html = site
    docs = toc_files(read_toc())
    word = re.compile(rf"\b{re.escape(SEARCH_TERM)}\b")
    holding = [d for d in docs if (html / f"{d}.html").is_file()
               and word.search(re.sub(r"<[^>]+>", " ", (html / f"{d}.html").read_text(encoding="utf-8")))]
    chapters = [d for d in holding if f"{d}.ipynb" in built_book.notebooks] or holding
    assert chapters, f"no page of the book contains {SEARCH_TERM!r}: choose another SEARCH_TERM"
    errors: list[str] = []  # checked by test_pages_have_no_console_errors, which visits search.html too
    context = _new_context(browser, DESKTOP, origin, {"external": []})
    try:
        page = _open(context, f"{origin}/search.html?q={quote(SEARCH_TERM)}", origin, errors)
        page.wait_for_function(_JS_SEARCH_DONE, timeout=PAGE_TIMEOUT_MS)
        hrefs = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(a => a.href)")
    finally:
        context.close()
    found = {urlsplit(h).path.lstrip("/").removesuffix(".html") for h in hrefs}
    assert found & set(chapters), (
        f"searching {SEARCH_TERM!r} found {sorted(found)}, none of the pages that contain it: {chapters}")


@pytest.mark.slow
def test_solutions_start_collapsed(playwright_and_chromium, reports, site, browser, built_book):
    """Exercise solutions (``{admonition} Solution`` with ``:class: dropdown``) are closed until clicked."""
    origin, _ = site
    chapters = [rel[: -len(".ipynb")] + ".html" for rel in built_book.notebooks]
    with_solutions = [p for p in chapters if p in reports and reports[p].dropdowns]
    if not with_solutions:
        guide = "book/course_guide.html"
        if guide not in reports:
            pytest.skip("no chapter with solutions and no course guide in the book yet")
        with_solutions = [guide]
    failures = {p: [f"{d['title']!r} is open before a click" for d in reports[p].dropdowns if d["shown"]]
                for p in with_solutions}
    failures = {p: f for p, f in failures.items() if f}
    if not reports[with_solutions[0]].dropdowns:
        failures[with_solutions[0]] = ["no .admonition.dropdown on the page"]
    else:  # and one opens when its title is clicked
        context = _new_context(browser, DESKTOP, origin, {"external": []})
        try:
            page = _open(context, f"{origin}/{quote(with_solutions[0])}", origin, [])  # errors: see above
            page.locator(".admonition.dropdown > .admonition-title").first.click()
            first = page.evaluate(_JS_DROPDOWNS)[0]
        finally:
            context.close()
        if not first["shown"]:
            failures.setdefault(with_solutions[0], []).append(f"{first['title']!r} does not open on a click")
    assert not failures, f"solution toggles:\n{_summary(failures)}"


# ----------------------------------------------------------------------------- what a reader sees


def _reader_failures(reports: dict[str, PageReport], key: str) -> dict[str, list[str]]:
    failures: dict[str, list[str]] = {}
    for p, r in reports.items():
        for width, seen in (("1280 px", r.reader), ("390 px", r.reader_phone)):
            for item in seen.get(key, []):
                failures.setdefault(p, []).append(f"{item} (at {width})")
    return failures


@pytest.mark.slow
def test_no_markdown_or_tex_shown_as_text(playwright_and_chromium, reports):
    """Generated tables and formulas render as tables and typeset math (MyST), never as pipes or raw $...$."""
    failures = _reader_failures(reports, "raw")
    assert not failures, f"Markdown or TeX that the reader sees as text:\n{_summary(failures)}"


@pytest.mark.slow
def test_code_lines_wrap_or_fit_their_block(playwright_and_chromium, reports):
    failures = _reader_failures(reports, "code")
    assert not failures, f"code lines wider than their block, not wrapped:\n{_summary(failures)}"


@pytest.mark.slow
def test_chapter_code_fits_the_desktop_column(playwright_and_chromium, reports):
    """At 1280 px no line of a code cell needs to wrap: 88 characters fit the column."""
    failures = {p: [f"wraps: {w}" for w in r.reader.get("wrapped", [])] for p, r in reports.items()}
    failures = {p: f for p, f in failures.items() if f}
    assert not failures, f"code cells whose lines do not fit the column at 1280 px:\n{_summary(failures)}"


@pytest.mark.slow
def test_no_equation_is_clipped(playwright_and_chromium, reports):
    """At phone width a wide display equation scrolls in its box; none is cut off."""
    failures = _reader_failures(reports, "clipped")
    assert not failures, f"display equations cut off:\n{_summary(failures)}"


@pytest.mark.slow
def test_figures_open_full_size(playwright_and_chromium, reports):
    failures = {p: [f"output image not linked to its file: ...{u}" for u in r.reader.get("unlinked", [])]
                for p, r in reports.items()}
    failures = {p: f for p, f in failures.items() if f}
    assert sum(r.reader.get("images", 0) for r in reports.values()) > 50, "the pages show almost no figure"
    assert not failures, f"figures without a link to their full-size file:\n{_summary(failures)}"


@pytest.mark.slow
def test_the_column_is_as_wide_as_the_figures_are_drawn_for(playwright_and_chromium, reports):
    """The plotting tests check every figure's smallest text at ``COLUMN_PX``; the real column must not be
    narrower, or the figures' text would come out smaller on screen than they checked."""
    from dskd.plotting.style import COLUMN_PX

    chapters = {p: r.reader.get("column", 0) for p, r in reports.items() if p.startswith("notebooks/")}
    assert chapters, "no chapter page"
    narrow = {p: w for p, w in chapters.items() if w < COLUMN_PX - 4}
    assert not narrow, f"text column narrower than COLUMN_PX = {COLUMN_PX} px at 1280 px: {narrow}"


@pytest.mark.slow
def test_every_explorer_works_without_a_kernel_or_a_cdn(playwright_and_chromium, reports, site, browser, built_book):
    """Each explorer's static player has a control, and changing it shows another precomputed view; its
    page requests nothing from another host."""
    origin, _ = site
    with_players = {p: r for p, r in reports.items() if r.reader.get("players")}
    explorer_cells = sum(1 for rel, path in built_book.notebooks.items() if "_explorer(" in path.read_text())
    assert with_players, "no page shows an explorer's player"
    assert sum(len(r.reader["players"]) for r in with_players.values()) >= explorer_cells
    failures: dict[str, list[str]] = {}
    for page_name, rep in with_players.items():
        problems = [f"request to another host: {u}" for u in rep.external]
        problems += [f"player {pl['id']} has no control" for pl in rep.reader["players"] if pl["controls"] < 1]
        problems += [f"player {pl['id']} has {pl['frames']} view(s)" for pl in rep.reader["players"] if pl["frames"] < 2]
        sink: dict[str, list[str]] = {"external": []}
        context = _new_context(browser, DESKTOP, origin, sink)
        try:
            page = _open(context, f"{origin}/{quote(page_name)}", origin, [])
            for pl in rep.reader["players"]:
                result = page.evaluate(_JS_PLAYER_WORKS, pl["id"])
                if not result["ok"]:
                    problems.append(f"player {pl['id']}: a change of its first control did nothing ({result['why']})")
        finally:
            context.close()
        problems += [f"request to another host: {u}" for u in sink["external"]]
        if problems:
            failures[page_name] = problems
    assert not failures, f"explorers that do not work in the static book:\n{_summary(failures)}"


@pytest.mark.slow
def test_landing_page_links_every_page_of_the_toc(playwright_and_chromium, reports, site, built_book):
    """From its own text (not the navigation bar): a student sees every chapter as a link."""
    from test_book import read_toc, toc_files

    origin, html = site
    landing = _landing_and_chapter(built_book)["landing"]
    linked = {site_file(h, origin, html) for h in reports[landing].reader.get("article_links", [])}
    docs = toc_files(read_toc())[1:]
    missing = [d for d in docs if html / f"{d}.html" not in linked]
    assert not missing, f"{landing} does not link these pages of _toc.yml from its text: {missing}"


def test_the_static_player_switches_views_in_the_browser(playwright_and_chromium, browser):
    """The explorers' player on its own page (no book needed): a fixed value before the varying ones, a
    menu and a slider; each change shows the matching precomputed view, and a combination that was not
    precomputed snaps the other controls to one that was."""
    from dskd.widgets.static import player_html

    def frame(*labels):
        return {"labels": list(labels), "src": "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///ywAAAAAAQABAAACAUwAOw==#" + "-".join(labels),
                "start": False}

    frames = [frame("fixed", "a", "0"), frame("fixed", "a", "1"), frame("fixed", "a", "2"), frame("fixed", "a", "3"),
              frame("fixed", "a", "4"), frame("fixed", "b", "0")]
    grid = {"k": [("fixed", 1)], "menu": [("a", "a"), ("b", "b")],
            "n": [(str(i), i) for i in range(5)]}
    page_html = "<html><body>" + player_html(frames, grid, {}, title="t", player_id="p") + "</body></html>"
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_content(page_html)
        assert page.get_attribute("#p", "data-shown") == "fixed\u001fa\u001f0"
        result = page.evaluate(_JS_PLAYER_WORKS, "p")  # the first control: the menu, to "b"
        assert result["ok"], result["why"]
        assert page.get_attribute("#p", "data-shown") == "fixed\u001fb\u001f0"
        page.select_option("#p select", "a")
        page.eval_on_selector("#p input[type=range]", "e => { e.value = 3; e.dispatchEvent(new Event('input')); }")
        assert page.get_attribute("#p", "data-shown") == "fixed\u001fa\u001f3"
        assert page.get_attribute("#p img.dskd-player-frame", "src").endswith("#fixed-a-3")
        page.select_option("#p select", "b")  # (b, 3) was not precomputed: the slider snaps to (b, 0)
        assert page.get_attribute("#p", "data-shown") == "fixed\u001fb\u001f0"
        assert page.eval_on_selector("#p input[type=range]", "e => e.value") == "0"
    finally:
        context.close()
