"""dskd.report.studies: the ablation chapters' 40-epoch sections, on fake results trees."""
import json
from pathlib import Path

import pytest

from dskd.ablation import load_study
from dskd.report import studies

REPO = Path(__file__).resolve().parents[1]
SHORT = REPO / "results" / "ablations" / "mt-defects"


def _longer_tree(tmp_path: Path, study: str, seeds: tuple[int, ...], flip: bool = False) -> Path:
    """The recorded 5-epoch study rewritten as a 40-epoch one with only ``seeds`` (``flip``: the variants'
    image AUROCs reversed, so that their order changes)."""
    data = json.loads((SHORT / f"{study}.json").read_text())
    recs = [dict(r, config=dict(r["config"], epochs=40)) for r in data["records"] if r["seed"] in seeds]
    if flip:
        for r in recs:
            r["image_auroc"] = 2.0 - r["image_auroc"] if r["image_auroc"] is not None else None
    folder = tmp_path / "ablations-40-epochs" / "mt-defects"
    folder.mkdir(parents=True)
    (folder / f"{study}.json").write_text(json.dumps(dict(data, records=recs)))
    return folder


def test_a_study_not_recorded_at_40_epochs_names_its_command(tmp_path):
    text = studies.longer_budget_markdown(studies.longer_budget_study("dfe-blocks", tmp_path))
    assert "No record yet" in text and str(tmp_path / "dfe-blocks.json") in text
    assert "--study dfe-blocks" in text and "--epochs 40" in text and "--precision bf16" in text
    assert "--out-dir results/ablations-40-epochs" in text


def test_one_seed_is_said_and_the_order_is_compared_with_5_epochs(tmp_path):
    folder = _longer_tree(tmp_path, "dfe", seeds=(0,))
    longer, shorter = studies.longer_budget_study("dfe", folder), load_study(SHORT, "dfe")
    text = studies.longer_budget_markdown(longer, shorter)
    assert "So far 1 seed (0) of the three: there is no spread over seeds yet" in text
    two = studies.longer_budget_markdown(studies.longer_budget_study("dfe", _longer_tree(tmp_path / "two", "dfe",
                                                                                          seeds=(0, 1))), shorter)
    assert "So far 2 seeds (0, 1) of the three: the ± is the spread of two runs" in two
    assert "40 epochs" in text and "By image AUROC, best first:" in text
    assert "| with DFE |" in text or "with DFE" in text  # the table of the records
    caption = studies.longer_budget_caption(longer)
    assert caption.startswith("*dfe (mt-defects, 128x128, 40 epochs, seed 0;") and "5-epoch figure" in caption


def test_a_changed_order_is_said(tmp_path):
    shorter = load_study(SHORT, "architecture")
    same = studies.longer_budget_markdown(studies.longer_budget_study("architecture",
                                                                      _longer_tree(tmp_path / "a", "architecture",
                                                                                   (0, 1, 2))), shorter)
    flipped = studies.longer_budget_markdown(studies.longer_budget_study("architecture",
                                                                         _longer_tree(tmp_path / "b", "architecture",
                                                                                      (0, 1, 2), flip=True)), shorter)
    assert "the same order as" in same and "So far" not in same
    assert "the longer training changed the order" in flipped


def test_every_chapter_shows_the_40_epoch_studies_it_is_listed_for():
    import nbformat

    for stem, names in studies.CHAPTER_STUDIES.items():
        nb = nbformat.read(REPO / "notebooks" / f"{stem}.ipynb", as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert f'CHAPTER_STUDIES["{stem}"]' in code, f"{stem} does not show its 40-epoch studies {names}"
        assert "longer_budget_markdown(" in code and "longer_budget_caption(" in code, stem


def test_a_recorded_command_reads_as_a_reader_types_it():
    from dskd.provenance import shown_command

    assert shown_command("/work/x/dskd/__main__.py ablate --study pairs") == "dskd ablate --study pairs"
    assert shown_command(".venv/bin/dskd ablate --study teacher") == "dskd ablate --study teacher"
    assert shown_command("/usr/local/bin/dskd reproduce mt-defects") == "dskd reproduce mt-defects"
    assert shown_command("benchmarks/speed.py --onnx-only") == "benchmarks/speed.py --onnx-only"  # not dskd's CLI
    # a study read back shows the command that way, whatever the record holds
    rec = {"study": "dfe", "variant": "with DFE", "seed": 0, "image_auroc": 0.9, "pixel_auroc": 0.8, "pro": 0.5,
           "config": {"epochs": 40}, "provenance": {"teacher": "random", "command": "/a/b/dskd/__main__.py ablate x"}}
    from dskd.ablation import study_results

    res = study_results({"study": "dfe", "dataset": "mt-defects", "records": [rec]}, "dfe")
    assert res.commands == ["dskd ablate x"]


def test_recorded_files_are_named_as_results_paths_not_as_this_machine_s_paths(tmp_path):
    from dskd.results import results_root, shown_path

    assert shown_path(results_root() / "ablations-40-epochs" / "mt-defects" / "dfe.json") == \
        "results/ablations-40-epochs/mt-defects/dfe.json"
    assert shown_path(tmp_path / "dfe.json") == str(tmp_path / "dfe.json")  # elsewhere: as given
    text = studies.longer_budget_markdown(studies.longer_budget_study("architecture"))
    assert "Recorded** in `results/ablations-40-epochs/mt-defects/architecture.json`" in text


def _build_study(study: str, aurocs: dict[str, list[float]]):
    """A recorded build-choice study with the given image AUROCs per variant (one per seed)."""
    from dskd.ablation import study_results

    recs = [{"study": study, "variant": v, "seed": s, "image_auroc": a, "pixel_auroc": 0.9, "pro": 0.5,
             "config": {"epochs": 40}, "provenance": {"teacher": "random", "command": "dskd ablate"}}
            for v, values in aurocs.items() for s, a in enumerate(values)]
    return study_results({"study": study, "dataset": "mt-defects", "records": recs}, study)


def test_a_build_choice_is_decided_by_three_seeds_then_by_the_paper_s_text():
    from dskd.build_choices import build_verdict, default_variant
    from dskd.config import TrainConfig

    assert default_variant("dfe-input") == "normalized" and default_variant("dfe-blocks") == "1 block"
    assert default_variant("decoder-gradient") == "separate"
    assert default_variant("dfe-input", TrainConfig(dfe_input="raw")) == "raw"
    # two seeds: nothing is decided, the default stays
    two = build_verdict(_build_study("dfe-input", {"raw": [0.90, 0.92], "normalized": [0.99, 0.98]}))
    assert not two.decided and two.agrees and two.n_seeds == 2
    text = studies.build_verdict_markdown(two)
    assert "builds *normalized* (`dfe_input`)" in text and "2 seeds of each so far: nothing is decided" in text
    # three seeds, a gap beyond the spread: the records decide, whichever way
    ahead = build_verdict(_build_study("dfe-input", {"raw": [0.95, 0.96, 0.94], "normalized": [0.90, 0.91, 0.89]}))
    assert (ahead.variant, ahead.by, ahead.agrees) == ("raw", "the records", False)
    assert "*raw* is ahead by 0.050, more than the spread (0.010): the records decide. The default still builds " \
        "*normalized*" in studies.build_verdict_markdown(ahead)
    behind = build_verdict(_build_study("dfe-blocks", {"1 block": [0.90, 0.91, 0.89], "2 blocks": [0.95, 0.96, 0.94]}))
    assert (behind.variant, behind.by, behind.agrees) == ("2 blocks", "the records", False)
    assert "The default still builds *1 block*" in studies.build_verdict_markdown(behind)
    # three seeds within the spread: the paper's text decides (Algorithm 2 embeds the normalised features)
    tie = build_verdict(_build_study("dfe-input", {"raw": [0.90, 0.95, 0.85], "normalized": [0.91, 0.93, 0.88]}))
    assert (tie.variant, tie.by, tie.agrees) == ("normalized", "the paper's text", True)
    assert "the records cannot choose, so the paper's text does: *normalized*. The default builds it; runs recorded " \
        "before it changed built *raw*, and Table 5 was recorded again with the new build (chapter 15)." \
        in studies.build_verdict_markdown(tie)
    kept = build_verdict(_build_study("dfe-blocks", {"1 block": [0.90, 0.91, 0.89], "2 blocks": [0.90, 0.60, 0.88]}))
    assert studies.build_verdict_markdown(kept).endswith("the paper's text does: *1 block*. The default builds it.")
    # the rule is stated once a chapter: later build choices refer to it
    assert "The rule, set before the three-seed records came in" in studies.build_verdict_markdown(tie)
    short = studies.build_verdict_markdown(tie, with_rule=False)
    assert "The rule" not in short and "Under the rule above, with 3 seeds, the gap" in short
    with pytest.raises(ValueError, match="not a build-choice study"):
        build_verdict(_build_study("dfe", {"with DFE": [0.9] * 3, "without DFE": [0.8] * 3}))


def test_the_package_defaults_build_what_the_recorded_verdicts_chose():
    """Once a build-choice study holds three seeds, TrainConfig's default must follow its verdict (and
    Table 5 be re-recorded with it): this fails the moment the records decide against the default."""
    from dskd.build_choices import BUILD_CHOICES, build_verdict

    for study in BUILD_CHOICES:
        verdict = build_verdict(studies.longer_budget_study(study))
        assert verdict.agrees, (f"{study}: the 40-epoch records choose {verdict.variant!r} ({verdict.by}), the "
                                f"default builds {verdict.package_variant!r}")


def test_a_study_recorded_piece_by_piece_names_one_command_with_its_pieces():
    from dskd.provenance import grouped_commands

    by_seed = [f"dskd ablate --study dfe --seeds {s} --preset paper" for s in (0, 1, 2)]
    assert grouped_commands(by_seed) == [("dskd ablate --study dfe --seeds <seed> --preset paper", "<seed> in 0, 1, 2")]
    runs = [("1 block", 0), ("2 blocks", 0), ("2 blocks", 1)]  # not every combination: each one named
    pieces = [f"dskd ablate --study dfe-blocks --variants '{v}' --seeds {s} --epochs 40" for v, s in runs]
    assert grouped_commands(pieces) == [("dskd ablate --study dfe-blocks --variants <variant> --seeds <seed> --epochs 40",
                                         "(<variant>, <seed>) in ('1 block', 0), ('2 blocks', 0), ('2 blocks', 1)")]
    full = pieces[:2]  # one seed, both variants: the seed stays in the command
    assert grouped_commands(full) == [("dskd ablate --study dfe-blocks --variants <variant> --seeds 0 --epochs 40",
                                       "<variant> in '1 block', '2 blocks'")]
    alone = ["dskd ablate --study a --seeds 0,1,2", 'benchmarks/x.py "unclosed']  # nothing to group; not shell
    assert grouped_commands(alone) == [(alone[0], ""), (alone[1], "")]
    # the chapters' text: one command for the recorded 40-epoch dfe study, its seeds after it in code
    text = studies.longer_budget_study("dfe").markdown()
    assert "--seeds <seed> --preset paper" in text and "for `<seed> in 0, 1, 2`" in text
    assert text.count("dskd ablate") == 1


def test_batchnorm_checks_of_a_study_are_told_run_by_run(tmp_path):
    def check(variant, ratio, layer, drift, image, image_fixed):
        return {"study": "dfe-blocks", "variant": variant, "seed": 0,
                "as_recorded": {"losses": {"eval_over_train": ratio}, "drift": {layer: drift, "other": 1.0},
                                "image_auroc": image, "pixel_auroc": 0.5, "pro": 0.1},
                "statistics_recomputed_over_the_training_split": {
                    "losses": {"eval_over_train": 0.9}, "drift": {layer: 1.0}, "image_auroc": image_fixed,
                    "pixel_auroc": 0.6, "pro": 0.2}}
    assert studies.batchnorm_check_markdown("dfe-blocks", tmp_path) == ""  # nothing checked: nothing said
    (tmp_path / "batchnorm_dfe-blocks_2-blocks_seed0.json").write_text(
        json.dumps(check("2 blocks", 3.16, "students.decoder.layer2.0.bn2", 2947.3, 0.451, 0.695)))
    (tmp_path / "batchnorm_dfe-blocks_1-block_seed0.json").write_text(
        json.dumps(check("1 block", 0.43, "students.embedding.fuse.bn1", 0.73, 0.955, 0.923)))
    (tmp_path / "batchnorm_dfe_with-DFE_seed0.json").write_text(json.dumps(dict(check("x", 1, "l", 1, 0, 0),
                                                                              study="dfe")))
    text = studies.batchnorm_check_markdown("dfe-blocks", tmp_path)
    one, two = text.split("\n")[-2:]
    assert one.startswith("- *1 block*, seed 0: on training images the eval-mode loss is 0.43 times")
    assert "no student layer's input varies more than 0.73 times its running variance" in one
    assert ("the largest drift is in `students.decoder.layer2.0.bn2`, whose input varies 2,947 times as much as "
            "its running variance says") in two
    assert "image AUROC 0.451 -> 0.695, pixel AUROC 0.500 -> 0.600." in two
    assert "No drift" not in one + two  # drift (two), or no drift and no help from recomputing (one)
    assert "*x*" not in text  # another study's check is not told here
    # no drift, and recomputed statistics still lift it: said so
    (tmp_path / "batchnorm_dfe-blocks_2-blocks_seed0.json").write_text(
        json.dumps(check("2 blocks", 0.39, "students.embedding.down2.1", 0.96, 0.616, 0.852)))
    assert "No drift, so this is not a network that differs from the one trained; yet the recomputed statistics " \
        "lift it" in studies.batchnorm_check_markdown("dfe-blocks", tmp_path)
