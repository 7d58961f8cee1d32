"""Small fixes to the HTML that Jupyter Book 1.0.4 (Sphinx 7.4) writes, found by tests/test_browser.py.

Loaded from _config.yml (`sphinx: local_extensions`).

- Inline scripts added by extensions after the builder starts (sphinx-togglebutton's selector,
  sphinx-thebe's `const THEBE_JS_URL = ...`) end up twice in every page; the second `const`
  declaration is a JavaScript error ("Identifier 'THEBE_JS_URL' has already been declared").
  Each page gets every script once.
- Notebook execution (myst-nb / jupyter-cache, through nbclient) waits for each cell's reply in short
  polls (nbclient_short_poll.py, shared with the test runner): a lost wake-up of nbclient's one long
  poll once held an explorer cell for the whole cell timeout.
"""
from __future__ import annotations


def _script_key(js) -> tuple:
    filename = getattr(js, "filename", js) or ""
    attributes = getattr(js, "attributes", {}) or {}
    return (filename, tuple(sorted((k, str(v)) for k, v in attributes.items() if k != "priority")))


def dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        key = _script_key(js)
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def setup(app):
    import os
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    from nbclient_short_poll import install

    install()
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
