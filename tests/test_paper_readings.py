"""The readings of the paper where it is implicit (issue "The paper's own build"): each option does what it
says, the defaults build the paper's text while old records keep their build, and the pairs reading scores
one DS model three ways."""
from __future__ import annotations

import pytest
import torch

from dskd import TrainConfig, evaluate
from dskd.ablation import STUDIES, run_study
from dskd.checkpoint import load_checkpoint
from dskd.inference import InferenceSettings
from dskd.losses import dskd_loss, normalize_features
from dskd.models import DSKD
from dskd.models.embedding import DeepFeatureEmbedding
from dskd.runs import run_key
from dskd.training import build_model, dataset_for, train


def _model(**options) -> DSKD:
    torch.manual_seed(0)
    return DSKD("DS", teacher_weights=None, **options)


def test_the_defaults_build_the_paper_s_text_and_old_records_keep_their_build():
    # the same weights either way: the readings route features, they add no parameter (one DFE block)
    assert list(_model().state_dict()) == list(_model(dfe_input="raw", detach_decoder_input=False).state_dict())
    cfg = TrainConfig.quick(teacher="random")
    assert (cfg.dfe_blocks, cfg.dfe_input, cfg.detach_decoder_input) == (1, "normalized", True)
    m = _model()
    assert (m.students.dfe_input, m.students.detach_decoder_input) == ("normalized", True)
    # a config written before the fields existed reads as the build of that time (1 block, raw, l_d through
    # S_e), and keeps its run name; today's defaults are another run
    legacy = {k: v for k, v in cfg.to_dict().items() if k not in ("dfe_blocks", "dfe_input", "detach_decoder_input")}
    old = TrainConfig.from_dict(legacy)
    assert (old.dfe_blocks, old.dfe_input, old.detach_decoder_input) == (1, "raw", False)
    assert run_key(old) == run_key(cfg.replace(dfe_input="raw", detach_decoder_input=False)) != run_key(cfg)


def test_two_dfe_blocks_add_one_512_channel_residual_block():
    one, two = DeepFeatureEmbedding(blocks=1), DeepFeatureEmbedding(blocks=2)
    extra = sum(p.numel() for p in two.parameters()) - sum(p.numel() for p in one.parameters())
    assert extra == 2 * (512 * 512 * 9 + 2 * 512)  # two 3x3 convs and their BatchNorms' weights and biases
    f = (torch.randn(2, 64, 32, 32), torch.randn(2, 128, 16, 16), torch.randn(2, 256, 8, 8))
    assert two.eval()(f).shape == one.eval()(f).shape == (2, 512, 4, 4)
    with pytest.raises(ValueError, match="blocks=3"):
        DeepFeatureEmbedding(blocks=3)


def test_normalized_dfe_input_embeds_unit_vectors():
    m = _model(dfe_input="normalized").eval()
    seen = []
    m.embedding.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    x = torch.randn(2, 3, 64, 64)
    out = m(x)
    for f, e in zip(seen[0], out.encoder):
        torch.testing.assert_close(f, normalize_features(e))
        torch.testing.assert_close(f.norm(dim=1), torch.ones_like(f.norm(dim=1)))


def test_detached_decoder_input_keeps_l_d_out_of_the_encoder():
    x = torch.randn(2, 3, 64, 64)
    for detach, reaches in ((False, True), (True, False)):
        m = _model(detach_decoder_input=detach).train()
        out = m(x)
        l_d = dskd_loss([(out.teacher, out.decoder)])  # the decoder's term alone
        l_d.backward()
        got = any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.encoder.parameters())
        assert got is reaches
        assert all(p.grad is not None for p in m.decoder.parameters())


def test_each_option_round_trips_through_a_checkpoint(tmp_path):
    cfg = TrainConfig.quick(teacher="random", epochs=1, n_train=16, n_test=8, dfe_blocks=2, dfe_input="normalized",
                            detach_decoder_input=True)
    result = train(cfg, out_dir=tmp_path, progress=False)
    model, loaded, _ = load_checkpoint(result.checkpoint)
    assert (loaded.dfe_blocks, loaded.dfe_input, loaded.detach_decoder_input) == (2, "normalized", True)
    assert isinstance(model.embedding.fuse2, torch.nn.Module) and model.students.detach_decoder_input
    assert run_key(cfg) != run_key(cfg.replace(dfe_blocks=1))
    with pytest.raises(ValueError, match="dfe_input='unit'"):
        cfg.replace(dfe_input="unit")


def test_the_pairs_reading_scores_one_ds_model_three_ways(tmp_path):
    cfg = TrainConfig.quick(teacher="random", epochs=1, n_train=16, n_test=16)
    data = run_study("pairs", cfg, out_dir=tmp_path, progress=False)
    records = {r["variant"]: r for r in data["records"]}
    assert set(records) == {"T vs S_d", "T vs S_e", "S_e vs S_d"}
    assert len({r["run_key"] for r in records.values()}) == 1  # one trained model
    assert records["T vs S_e"]["inference"]["pair"] == ["teacher", "encoder"]
    model = build_model(cfg).eval()
    test = dataset_for(cfg, "test")
    base = evaluate(model, test, InferenceSettings())
    same = evaluate(model, test, InferenceSettings(pair=("teacher", "decoder")))
    assert base.image_auroc == same.image_auroc  # DS's own pair is T vs S_d (Algorithm 2)
    with pytest.raises(ValueError, match="pair"):
        InferenceSettings(pair=("teacher", "teacher"))
    with pytest.raises(ValueError, match="not available in a T-E model"):
        te = DSKD("T-E", teacher_weights=None).eval()
        te.inference_pair(te(torch.randn(1, 3, 64, 64)), ("encoder", "decoder"))
    assert set(STUDIES) >= {"dfe-blocks", "dfe-input", "decoder-gradient", "pairs"}


def test_the_readings_act_on_s_e_only_where_it_feeds_the_dfe():
    """T-D embeds the teacher's raw pyramid whatever ``dfe_input`` says; the detach acts in DS only (E-D has
    no l_e that would train S_e without l_d)."""
    x = torch.randn(2, 3, 64, 64)
    td = DSKD("T-D", teacher_weights=None).eval()
    assert td.students.dfe_input == "normalized"
    out = td(x)
    torch.testing.assert_close(out.decoder.conv2_x, td.decoder(td.embedding(td.teacher(x))).conv2_x)
    torch.manual_seed(0)
    ed = DSKD("E-D", teacher_weights=None).train()
    loss = dskd_loss(ed.loss_pairs(ed(x)), 0.1, "unit", "pixel")
    loss.backward()
    grad_through_dfe = next(ed.encoder.parameters()).grad.clone()
    torch.manual_seed(0)
    joint = DSKD("E-D", teacher_weights=None, detach_decoder_input=False).train()
    dskd_loss(joint.loss_pairs(joint(x)), 0.1, "unit", "pixel").backward()
    torch.testing.assert_close(grad_through_dfe, next(joint.encoder.parameters()).grad)


def test_the_cli_selects_either_reading_of_each_choice():
    from dskd.cli_args import Parser, add_config_arguments, config_from_args

    p = Parser(prog="dskd train")
    add_config_arguments(p)
    default = config_from_args(p.parse_args([]))
    assert (default.dfe_input, default.detach_decoder_input) == ("normalized", True)
    earlier = config_from_args(p.parse_args(["--dfe-input", "raw", "--no-detach-decoder-input", "--dfe-blocks", "2"]))
    assert (earlier.dfe_input, earlier.detach_decoder_input, earlier.dfe_blocks) == ("raw", False, 2)
    assert config_from_args(p.parse_args(["--detach-decoder-input"])).detach_decoder_input is True


def test_a_study_refuses_to_mix_two_builds_under_one_variant(tmp_path):
    """A study file recorded with the earlier build (raw, joint) is not extended with runs of today's default:
    one clear error, before anything trains; naming the recorded build extends it."""
    import json

    from dskd.ablation import results_path

    base = TrainConfig.quick(teacher="random", epochs=1, n_train=8, n_test=4)
    earlier = base.replace(dfe_input="raw", detach_decoder_input=False)
    path = results_path(tmp_path, base, "dfe")
    path.parent.mkdir(parents=True, exist_ok=True)
    legacy = {k: v for k, v in earlier.to_dict().items() if k not in ("dfe_input", "detach_decoder_input")}
    path.write_text(json.dumps({"schema": 1, "study": "dfe", "records": [
        {"variant": "with DFE", "seed": 0, "run_key": run_key(earlier), "config": legacy}]}))
    with pytest.raises(ValueError, match=r"holds 'with DFE' runs of the build 'raw, joint', and these would build "
                                         r"'normalized, separate'.*--\[no-\]detach-decoder-input"):
        run_study("dfe", base, variants=["with DFE"], seeds=(1,), out_dir=tmp_path, progress=False)
    assert json.loads(path.read_text())["records"][0]["seed"] == 0  # nothing written
