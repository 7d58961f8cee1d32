"""Small fixes to the HTML that Jupyter Book 1.0.4 (Sphinx 7.4) writes, found by tests/test_browser.py.

Loaded from _config.yml (`sphinx: local_extensions`).

- Inline scripts added by extensions after the builder starts (sphinx-togglebutton's selector,
  sphinx-thebe's `const THEBE_JS_URL = ...`) end up twice in every page; the second `const`
  declaration is a JavaScript error ("Identifier 'THEBE_JS_URL' has already been declared").
  Each page gets every script once.
- Notebook execution (myst-nb / jupyter-cache, through nbclient) waits for each cell's reply in short
  polls (nbclient_short_poll.py, shared with the test runner): a lost wake-up of nbclient's one long
  poll once held an explorer cell for the whole cell timeout.

And what the Markdown pages show that must not be written by hand (MyST substitutions, set when the build
starts, so they follow the package and ``results/`` of the build):

- ``{{ build_teacher }}``: the teacher this build used (``$DSKD_TEACHER``), described from its provenance
  file (:func:`dskd.report.teacher.build_teacher_markdown`); ``{{ shipped_teacher }}``: the teacher the
  package ships, from the same file;
- ``{{ runs_table }}`` and ``{{ runs_summary }}``: the "runs in this book" table (:mod:`dskd.report.runs`);
- ``{{ course_hours }}``: the course's total time, added up from the course guide's own table
  (:func:`course_minutes`).
"""
from __future__ import annotations

import re
from pathlib import Path

#: "about 40 min", "30 min each", "40 min" in the Reading column of book/course_guide.md
_MINUTES = re.compile(r"(?:about\s+)?(\d+)\s*min(?:utes)?(\s+each)?")
#: "add 30 to 60 minutes for the exercises"
_EXERCISES = re.compile(r"add (\d+) to (\d+) minutes for the exercises")


def course_minutes(guide: str) -> dict[str, int]:
    """Reading minutes and chapters, added up from the chapter tables of the course guide, and its
    per-chapter allowance for the exercises: ``{"reading": .., "chapters": .., "exercises_low": ..,
    "exercises_high": ..}``. A row naming several chapters ("10-12 ...", "30 min each") counts each."""
    reading = chapters = 0
    for line in guide.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not re.match(r"^\d+(-\d+)?\s", cells[0]):
            continue
        first, *last = cells[0].split()[0].split("-")
        n = int(last[0]) - int(first) + 1 if last else 1
        m = _MINUTES.search(cells[2])
        if not m:
            raise ValueError(f"the course guide's row {cells[0]!r} gives no reading time in minutes: {cells[2]!r}")
        reading += int(m.group(1)) * (n if m.group(2) else 1)
        chapters += n
    ex = _EXERCISES.search(guide)
    if not chapters or not ex:
        raise ValueError("the course guide has no chapter table with reading times, or no exercise allowance")
    return {"reading": reading, "chapters": chapters, "exercises_low": int(ex.group(1)) * chapters,
            "exercises_high": int(ex.group(2)) * chapters}


def course_hours_text(guide: str) -> str:
    """'About 11 hours of reading for the 16 chapters, plus 8 to 16 hours for the exercises'."""
    t = course_minutes(guide)
    return (f"About {t['reading'] / 60:.0f} hours of reading for the {t['chapters']} chapters, plus "
            f"{t['exercises_low'] / 60:.0f} to {t['exercises_high'] / 60:.0f} hours for the exercises")


def set_substitutions(app, config) -> None:
    from dskd.report.runs import runs_markdown, runs_summary
    from dskd.report.teacher import build_teacher_markdown, shipped_teacher_sentence

    guide = Path(app.srcdir) / "book" / "course_guide.md"
    subs = dict(getattr(config, "myst_substitutions", None) or {})
    subs.update({
        "build_teacher": build_teacher_markdown(),
        "shipped_teacher": shipped_teacher_sentence(),
        "runs_table": runs_markdown(base="../notebooks/"),
        "runs_summary": runs_summary(),
        "course_hours": course_hours_text(guide.read_text(encoding="utf-8")),
    })
    config.myst_substitutions = subs


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
    app.connect("config-inited", set_substitutions)
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
