"""Chapter 14's bf16 training prose (dskd.report.complexity.bf16_training_markdown), on a made-up record."""
import json

from dskd.report.complexity import BF16_SPEED, bf16_training_markdown


def _speed(floor: bool) -> dict:
    row = {"image_size": 128, "batch": 16, "precision": "bf16", "gflops_per_s": 250.0}
    training = {"fp32 plain": {**row, "precision": "fp32", "images_per_s": 20.0, "mt_defects_epoch_s": 38.05,
                               "fraction_of_attainable": 0.5},
                "bf16 fast (the default where bf16 is native)": {**row, "images_per_s": 50.0,
                                                                 "mt_defects_epoch_s": 15.22,
                                                                 "fraction_of_attainable": 0.6}}
    speed = {"attainable": {"attainable_gflops_per_s": 200.0, "attainable_bf16_gflops_per_s": 400.0},
             "training": training, "goals": {"bf16_training_fraction": {"goal": 0.85}}}
    if floor:  # the step takes 16 / 50 = 320 ms; its convolutions alone 200 ms
        speed["training_convolution_floor"] = {"median_s": 0.2, "fraction_of_attainable": 0.9,
                                               "share_of_fast_step": 0.625}
    return speed


def _write(tmp_path, speed):
    path = tmp_path / BF16_SPEED
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(speed))


def test_the_floor_explains_how_far_the_step_is_from_the_goal(tmp_path):
    _write(tmp_path, _speed(floor=True))
    text = bf16_training_markdown(tmp_path)
    assert "an epoch takes 15.2 s instead of 38.0 s" in text
    assert "60% of the bf16 ceiling, short of the 85%" in text
    # 200 ms of convolutions in a 320 ms step: 120 ms of other work; at 85 % the step would take
    # 320 * 0.6 / 0.85 = 226 ms, leaving 26 ms for it
    assert "take 200 ms, 90% of the bf16 ceiling, and 62% of the step's 320 ms" in text
    assert "The other 120 ms go to BatchNorm" in text
    assert "would take 226 ms, leaving that work 26 ms." in text


def test_a_goal_below_the_floor_is_called_unreachable(tmp_path):
    speed = _speed(floor=True)
    speed["training_convolution_floor"].update(median_s=0.28, share_of_fast_step=0.875)  # 280 of 320 ms
    _write(tmp_path, speed)
    text = bf16_training_markdown(tmp_path)
    assert "would take 226 ms: less than its convolutions take alone, so no saving" in text
    assert "leaving" not in text


def test_without_a_floor_the_text_says_no_more_than_the_record(tmp_path):
    _write(tmp_path, _speed(floor=False))
    text = bf16_training_markdown(tmp_path)
    assert "short of the 85% the speed issue asked for." in text
    assert "convolutions" not in text


def test_the_training_table_names_each_variant_by_its_options_in_a_short_label(tmp_path):
    from dskd.report.complexity import training_variant_label

    assert training_variant_label("fp32 plain") == "fp32, no options"
    assert training_variant_label("fp32 cached_teacher+fused_adam") == "fp32 + teacher cache, fused Adam"
    assert training_variant_label("bf16 fast (the default where bf16 is native)") == \
        "bf16 + teacher cache, fused Adam, channels-last (default)"
    assert training_variant_label("fp16 something new") == "fp16 something new"  # unknown: as recorded
    _write(tmp_path, _speed(floor=True))
    text = bf16_training_markdown(tmp_path)
    assert "| fp32, no options | 20.0 | 38.0 s | 250 | 50% of fp32 |" in text
    assert "cached_teacher" not in text and "761 training images" in text


def test_the_precision_comparison_reads_the_earlier_build_in_both_precisions():
    """fp32 and bf16 runs of the same build, from the repository's results (Table 5 itself moved on to the
    default build, so the fp32 side is the earlier build's folder)."""
    from pathlib import Path

    text = bf16_training_markdown(Path(__file__).resolve().parents[1] / "results")
    assert "as first recorded in fp32 (`results/mt-defects-fp32/`), trained again in bf16" in text
    assert "| Image AUROC | 90.7 ± 2.0 | 91.7 ± 3.6 | +1.0 |" in text
