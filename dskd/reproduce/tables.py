"""The paper's Tables 1 to 5 with this rebuild's numbers beside them, built from the result files."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from ..paper_results import (
    OURS, TABLE1, TABLE1_METHODS, TABLE2, TABLE2_METHODS, TABLE3, TABLE3_METHODS, TABLE4, TABLE5, TABLE5_METHODS,
    display_name,
)
from ..provenance import provenance, write_json
from .jobs import BENCHMARKS, METRICS, PathLike, read_result, reproduce_command
from .report import format_percent, run_field, run_rows, runs_markdown



def collect_results(out_dir: PathLike, benchmark: str) -> dict[Optional[str], list[dict[str, Any]]]:
    """Finished result records under ``<out_dir>/<benchmark>``, grouped by category (None for MT)."""
    base = Path(out_dir) / benchmark
    found: dict[Optional[str], list[dict[str, Any]]] = {}
    if not base.is_dir():
        return found
    for path in sorted(base.rglob("seed*.json")):
        data = read_result(path)
        if data is None or data.get("status") != "done" or data.get("benchmark") != benchmark:
            continue
        data["_path"] = str(path.relative_to(base))
        found.setdefault(data.get("category"), []).append(data)
    return found



def _nanmean(values: Sequence[Optional[float]]) -> tuple[Optional[float], Optional[float]]:
    v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if not len(v):
        return None, None
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else None)



def _ours(records: list[dict[str, Any]],
          getter: Callable[[dict[str, Any]], Optional[float]]) -> Optional[dict[str, Any]]:
    """Mean (and std over seeds) of one metric, in percent, with where it came from."""
    if not records:
        return None
    mean, std = _nanmean([getter(r) for r in records])
    devs = sorted({d for r in records for d in r.get("deviations_from_paper", [])})
    return {
        "value": None if mean is None else round(100 * mean, 2),
        "std": None if std is None else round(100 * std, 2),
        "n_seeds": len(records),
        "seeds": sorted(r["seed"] for r in records),
        "paper_setting": not devs,
        "deviations": devs,
        "teacher": sorted({r["provenance"]["teacher"] for r in records}),
        "epochs": sorted({e for r in records if (e := run_field(r, "epochs")) is not None}),
        "image_size": sorted({e for r in records if (e := run_field(r, "image_size")) is not None}),
        "devices": sorted({d for r in records if (d := r.get("provenance", {}).get("device"))}),
        "results": [r["_path"] for r in records],
    }



def _in_paper_order(benchmark: str, results: dict[Optional[str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    order = {c: i for i, c in enumerate(BENCHMARKS[benchmark]["categories"])}
    return sorted((r for recs in results.values() for r in recs),
                  key=lambda r: (order.get(r.get("category"), len(order)), r.get("seed", 0)))



def _metric(name: str) -> Callable[[dict[str, Any]], Optional[float]]:
    return lambda r: r["metrics"].get(name)



def _table_rows(benchmark: str, results: dict, out_dir: PathLike, columns: dict[str, Callable]) -> tuple[list, dict]:
    """Per-category 'ours' cells (a dict per metric) and the mean row (only when every category has a result)."""
    rows, per_metric = [], {m: [] for m in columns}
    for cat in BENCHMARKS[benchmark]["categories"]:
        recs = results.get(cat, [])
        ours = {m: _ours(recs, get) for m, get in columns.items()}
        rows.append({"category": cat, "name": display_name(cat), "ours": ours if recs else None,
                     "command": reproduce_command(benchmark, [cat], out_dir=out_dir) if not recs else
                     recs[0].get("reproduce_command")})
        for m in columns:
            per_metric[m].append(ours[m]["value"] if recs and ours[m] else None)
    n = len(BENCHMARKS[benchmark]["categories"])
    mean = {}
    for m, vals in per_metric.items():
        have = [v for v in vals if v is not None]
        mean[m] = {"value": round(float(np.mean(have)), 2) if len(have) == n else None,
                   "n_categories": len(have),
                   "partial_mean": round(float(np.mean(have)), 2) if 0 < len(have) < n else None}
    return rows, mean



def build_tables(out_dir: PathLike, benchmark: str, *,
                 command_out_dir: Optional[PathLike] = None) -> dict[str, dict[str, Any]]:
    """The benchmark's tables as dicts (paper numbers, ours, the runs behind ours, commands for missing
    cells, provenance). ``command_out_dir``: the ``--out-dir`` those commands name (default ``out_dir``;
    a notebook in ``notebooks/`` reads ``../results`` but prints commands for the repository root)."""
    results = collect_results(out_dir, benchmark)
    cmd_out = out_dir if command_out_dir is None else command_out_dir
    missing = [c for c in BENCHMARKS[benchmark]["categories"] if c not in results]
    fill = (reproduce_command(benchmark, missing if benchmark != "mt-defects" else [], out_dir=cmd_out)
            if missing else None)
    common = {"benchmark": benchmark, "unit": "%", "fill_missing": fill,
              "runs": run_rows(_in_paper_order(benchmark, results)),
              "provenance": provenance("cpu", made_by="dskd.reproduce.build_tables", results_dir=str(out_dir))}
    common["provenance"].pop("device")
    tables: dict[str, dict[str, Any]] = {}
    image = {"image_auroc": _metric("image_auroc")}
    pixel = {"pixel_auroc": _metric("pixel_auroc"), "pro": _metric("pro")}
    # (key, table, title, methods, paper numbers, columns) of the category tables
    layouts = {
        "mvtec": [("table1", "Table 1", "Image-level AUROC (%) on MVTec AD", TABLE1_METHODS, TABLE1, image),
                  ("table2", "Table 2", "Pixel-level AUROC (%) / PRO (%) on MVTec AD", TABLE2_METHODS, TABLE2, pixel)],
        "mvtec3d": [("table3", "Table 3", "Image-level AUROC (%) on MVTec 3D-AD (RGB)", TABLE3_METHODS, TABLE3, image),
                    ("table4", "Table 4", "Pixel-level AUROC (%) and PRO (%) on MVTec 3D-AD (RGB)", (OURS,),
                     {OURS: TABLE4}, pixel)],
    }
    if benchmark in layouts:
        for key, name, title, methods, paper, columns in layouts[benchmark]:
            rows, mean = _table_rows(benchmark, results, cmd_out, columns)
            tables[key] = {"table": name, "title": title, "methods": list(methods), "paper": paper, "rows": rows,
                           "mean": mean, **common}
    else:
        recs = results.get(None, [])
        ours = {m: _ours(recs, _metric(m)) for m in METRICS} if recs else None
        types = sorted({t for r in recs for t in r["metrics"].get("per_defect_type", {})})
        per_type = {t: {m: _ours(recs, lambda r, t=t, m=m: r["metrics"]["per_defect_type"].get(t, {}).get(m))
                        for m in METRICS} for t in types}
        tables["table5"] = {"table": "Table 5", "title": "Anomaly detection results on MT Defects (%)",
                            "methods": list(TABLE5_METHODS), "metrics": list(METRICS),
                            "paper": {m: list(v) for m, v in TABLE5.items()}, "ours": ours, "per_defect_type": per_type,
                            "command": (recs[0]["reproduce_command"] if recs
                                        else reproduce_command(benchmark, out_dir=cmd_out)),
                            **common}
    return tables



DASH = "—"



def _fmt_paper(v: Optional[float]) -> str:
    if v is None:
        return "-"
    return str(v) if isinstance(v, int) else f"{v:.1f}"



def _fmt_ours(cell: Optional[dict[str, Any]]) -> str:
    if cell is None:
        return DASH
    if cell["value"] is None:
        return "n/a"
    text = f"{cell['value']:.1f}"
    if cell.get("std") is not None:
        text += f" ± {cell['std']:.1f}"
    return text + ("" if cell["paper_setting"] else "*")



def _notes(table: dict[str, Any], cells: Iterable[Optional[dict[str, Any]]], generated: bool = True) -> list[str]:
    cells = [c for c in cells if c]
    lines = ["", f"Paper's numbers: Table {table['table'].split()[-1]} of Yao et al. (transcribed in "
             "`dskd/paper_results.py`; '-' = not reported there). \"Ours (rebuild)\": this package, mean over seeds "
             "(± standard deviation when more than one), from the result files beside this table."]
    devs = sorted({d for c in cells for d in c["deviations"]})
    if devs:
        lines.append(f"\\* not the paper's setting: {'; '.join(devs)}.")
    teachers = sorted({t for c in cells for t in c["teacher"]})
    if teachers:
        lines.append(f"Teacher weights of the rebuild's runs: {', '.join(teachers)}.")
    if table.get("runs"):
        metrics = {"Table 1": ("image_auroc",), "Table 3": ("image_auroc",), "Table 2": ("pixel_auroc", "pro"),
                   "Table 4": ("pixel_auroc", "pro")}.get(table["table"], METRICS)
        lines += ["", "Runs behind \"Ours (rebuild)\" (one row per result file, as each file records them):", "",
                  runs_markdown(table["runs"], metrics=metrics)]
    if table.get("fill_missing"):
        lines += ["", f"{DASH}: no run yet. Fill the missing cells with:", "", "```", table["fill_missing"], "```"]
    if generated:
        prov = table["provenance"]
        lines += ["", f"Generated {prov['time_utc']} by `{prov['command']}` at commit {prov['git_commit']}."]
    return lines



def table_markdown(table: dict[str, Any], *, generated: bool = True) -> str:
    """A table in the paper's layout, as Markdown, with the paper's and the rebuild's numbers side by side.

    ``generated=False`` leaves out the last line (when, by which command and at which commit the table
    was built), for a page that builds the table itself from the result files."""
    title = f"# {table['table']}. {table['title']}"
    name = table["table"]
    lines = [title, ""]
    if name in ("Table 1", "Table 3"):
        methods = [m for m in table["methods"] if m != OURS]
        header = ["Category", *methods, "Ours (paper)", "Ours (rebuild)"]
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        for row in table["rows"]:
            cell = row["ours"]["image_auroc"] if row["ours"] else None
            vals = [_fmt_paper(table["paper"][m][row["category"]]) for m in methods]
            lines.append(f"| {row['name']} | " + " | ".join([*vals, _fmt_paper(table["paper"][OURS][row["category"]]),
                                                           _fmt_ours(cell)]) + " |")
        mean = table["mean"]["image_auroc"]
        vals = [_fmt_paper(table["paper"][m]["mean"]) for m in methods]
        ours = f"{mean['value']:.1f}" if mean["value"] is not None else DASH
        lines.append("| **Mean** | " + " | ".join([*vals, _fmt_paper(table["paper"][OURS]["mean"]), ours]) + " |")
        cells = [r["ours"]["image_auroc"] for r in table["rows"] if r["ours"]]
        if mean["partial_mean"] is not None:
            lines += ["", f"Mean of the {mean['n_categories']} categories run so far: {mean['partial_mean']:.1f} "
                      "(not comparable with the paper's mean over all categories)."]
    elif name == "Table 2":
        methods = [m for m in table["methods"] if m != OURS]
        header = ["Category", *methods, "Ours (paper)", "Ours (rebuild)"]
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]

        def pair(v: tuple) -> str:
            return f"{_fmt_paper(v[0])}/{_fmt_paper(v[1])}"

        for row in table["rows"]:
            o = row["ours"]
            ours = f"{_fmt_ours(o['pixel_auroc'])}/{_fmt_ours(o['pro'])}" if o else DASH
            vals = [pair(table["paper"][m][row["category"]]) for m in methods]
            lines.append(f"| {row['name']} | " + " | ".join([*vals, pair(table["paper"][OURS][row["category"]]), ours])
                         + " |")
        mean = table["mean"]
        ours = (f"{mean['pixel_auroc']['value']:.1f}/{mean['pro']['value']:.1f}"
                if mean["pixel_auroc"]["value"] is not None and mean["pro"]["value"] is not None else DASH)
        vals = [pair(table["paper"][m]["mean"]) for m in methods]
        lines.append("| **Mean** | " + " | ".join([*vals, pair(table["paper"][OURS]["mean"]), ours]) + " |")
        cells = [r["ours"][m] for r in table["rows"] if r["ours"] for m in ("pixel_auroc", "pro")]
        if mean["pixel_auroc"]["partial_mean"] is not None:
            lines += ["", f"Mean of the {mean['pixel_auroc']['n_categories']} categories run so far: "
                      f"{format_percent(mean['pixel_auroc']['partial_mean'])}/{format_percent(mean['pro']['partial_mean'])} "
                      "(not comparable with the paper's mean over all categories)."]
    elif name == "Table 4":
        header = ["Category", "AUROC (paper)", "PRO (paper)", "AUROC (rebuild)", "PRO (rebuild)"]
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        paper = table["paper"][OURS]
        for row in table["rows"]:
            o = row["ours"]
            a, p = paper[row["category"]]
            lines.append(f"| {row['name']} | {_fmt_paper(a)} | {_fmt_paper(p)} | "
                         f"{_fmt_ours(o['pixel_auroc']) if o else DASH} | {_fmt_ours(o['pro']) if o else DASH} |")
        mean = table["mean"]
        a, p = paper["mean"]
        fm = [f"{mean[m]['value']:.1f}" if mean[m]["value"] is not None else DASH for m in ("pixel_auroc", "pro")]
        lines.append(f"| **Mean** | {_fmt_paper(a)} | {_fmt_paper(p)} | {fm[0]} | {fm[1]} |")
        cells = [r["ours"][m] for r in table["rows"] if r["ours"] for m in ("pixel_auroc", "pro")]
        if mean["pixel_auroc"]["partial_mean"] is not None:
            lines += ["", f"Mean of the {mean['pixel_auroc']['n_categories']} categories run so far: "
                      f"{format_percent(mean['pixel_auroc']['partial_mean'])} / {format_percent(mean['pro']['partial_mean'])} "
                      "(not comparable with the paper's mean over all categories)."]
    else:  # Table 5
        header = ["Method", "Image-level AUROC", "Pixel-level AUROC", "PRO"]
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        for m in table["methods"]:
            label = "Ours (paper)" if m == OURS else m
            lines.append(f"| {label} | " + " | ".join(_fmt_paper(v) for v in table["paper"][m]) + " |")
        o = table["ours"]
        lines.append("| Ours (rebuild) | " + " | ".join(_fmt_ours(o[m]) if o else DASH for m in METRICS) + " |")
        cells = [o[m] for m in METRICS] if o else []
        if not o:
            table = {**table, "fill_missing": table["command"]}
        if table["per_defect_type"]:
            lines += ["", "Per defect type (the rebuild only: the paper reports no per-type numbers); each type is "
                      "scored against all normal test images.", "",
                      "| Defect type | Image-level AUROC | Pixel-level AUROC | PRO |", "| --- | --- | --- | --- |"]
            for t, ms in table["per_defect_type"].items():
                lines.append(f"| {t} | " + " | ".join(_fmt_ours(ms[m]) for m in METRICS) + " |")
    lines += _notes(table, cells, generated)
    return "\n".join(lines) + "\n"



def write_tables(out_dir: PathLike, benchmark: str) -> list[Path]:
    """Write ``table<N>.json`` and ``table<N>.md`` for a benchmark; returns the paths."""
    paths = []
    for key, table in build_tables(out_dir, benchmark).items():
        base = Path(out_dir) / benchmark / key
        paths.append(write_json(base.with_suffix(".json"), table))
        base.with_suffix(".md").write_text(table_markdown(table))
        paths.append(base.with_suffix(".md"))
    return paths
