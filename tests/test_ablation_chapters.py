"""Chapters 10 to 13 against both kinds of results folder: one holding recorded studies (written for real
by the runner, on tiny synthetic settings, into a temporary folder) and an empty one. The default run of
the chapters (tests/test_notebooks.py) sees whichever the repository holds; these tests see both."""
import pytest

from dskd.ablation import ablate_command, run_study
from dskd.config import TrainConfig

CHAPTERS = {  # chapter -> the studies it reads
    "10_ablation_architecture": ("architecture",),
    "11_ablation_dfe": ("dfe",),
    "12_ablation_layers": ("layers",),
    "13_ablation_extras": ("teacher", "lambda", "normalization", "loss-form", "sigma"),
}
RESULTS_LINE = 'RESULTS = results_path("ablations", "mt-defects")'
LONGER_LINE = 'LONGER = results_path("ablations-40-epochs", "mt-defects")'
CFG_LINE = 'cfg = TrainConfig.quick(category="fabric", epochs=4)'
TINY_LIVE = "cfg = TrainConfig.quick(epochs=1, n_train=16, n_test=24)"  # the live part, shrunk for these runs
FAKE = TrainConfig.quick(teacher="random", image_size=32, epochs=1, n_train=8, n_test=18, batch_size=8)


@pytest.fixture(scope="module")
def fake_results(tmp_path_factory):
    """Every study recorded for real by run_study (two seeds, random teacher) into a temporary folder."""
    out = tmp_path_factory.mktemp("ablations")
    for studies in CHAPTERS.values():
        for study in studies:
            run_study(study, FAKE, variants=["random"] if study == "teacher" else None, seeds=(0, 1), out_dir=out,
                      progress=False)
    return out / "synthetic-disc"


def _run(name, results, tmp_path):
    import nbformat
    from notebook_runner import NOTEBOOKS, budget_problems, execute, figure_count

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert RESULTS_LINE in cell.source and CFG_LINE in cell.source and LONGER_LINE in cell.source, \
        f"{name}: the parameters cell changed"
    longer = tmp_path / "no-40-epoch-records"  # the 40-epoch section: nothing recorded (tests/test_report_studies.py
    longer.mkdir()                             # checks it with records)
    cell.source = (cell.source.replace(RESULTS_LINE, f"RESULTS = Path({str(results)!r})").replace(CFG_LINE, TINY_LIVE)
                   .replace(LONGER_LINE, f"LONGER = Path({str(longer)!r})"))
    if "from pathlib import Path" not in "\n".join(c.source for c in nb.cells):
        cell.source = "from pathlib import Path\n" + cell.source
    (tmp_path / "nb").mkdir()
    path = tmp_path / "nb" / f"{name}.ipynb"  # runs from there: its live runs/ folder is a temporary one too
    nbformat.write(nb, path)
    run = execute(path, tmp_path)
    assert run.error is None, f"{name} failed:\n{run.error[-3000:]}"
    assert not budget_problems(run), f"{name}: {run.timing_report()}"
    out = "\n".join(o.get("text", "") + o.get("data", {}).get("text/markdown", "")
                    for c in run.notebook.cells if c.cell_type == "code" for o in c.outputs)
    return out, figure_count(run.notebook)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CHAPTERS))
def test_chapter_reads_recorded_studies(name, fake_results, tmp_path):
    from dskd.report.studies import CHAPTER_STUDIES, longer_budget_command

    out, figures = _run(name, fake_results, tmp_path)
    assert "Not recorded yet" not in out
    for study in CHAPTER_STUDIES[name]:  # the 40-epoch section names what records each study
        assert f"**{study}** at 40 epochs. No record yet" in out and longer_budget_command(study) in out
    assert out.count("**Recorded** in `") == len(CHAPTERS[name])
    for study in CHAPTERS[name]:
        assert str(fake_results / f"{study}.json") in out
    # teacher, data, epochs and seeds come from the records, and the random teacher is called what it is
    assert "teacher random init (no pretraining)" in out and "synthetic/disc, 32x32, 1 epochs, seeds 0,1" in out
    assert "random network distillation" in out
    if name != "13_ablation_extras":
        assert "What the records say, metric by metric" in out and "Kendall's tau" in out
        assert "Showing the **recorded** examples" in out
        assert figures >= 8
    else:
        assert "Recorded: across the 4 values of $\\lambda$" in out
        assert "'lambda': 'recorded'" in out and figures >= 7


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CHAPTERS))
def test_chapter_says_plainly_when_nothing_is_recorded(name, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out, figures = _run(name, empty, tmp_path)
    assert out.count("**Not recorded yet.**") == len(CHAPTERS[name]) and "**Recorded**" not in out
    for study in CHAPTERS[name]:
        assert ablate_command(study) in out  # the exact command that fills the file
    assert "Showing the **recorded** examples" not in out and figures >= 6
