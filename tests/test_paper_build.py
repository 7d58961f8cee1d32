"""dskd.paper_build: Table 6's parameters, MACs and size from the paper's probable build, beside ours."""
import json

import pytest
import torch
import torchvision

from dskd.cli import main
from dskd.models import DSKD, DeepFeatureEmbedding, Pyramid
from dskd.paper_build import (
    PaperBuild, RD4ADBottleneck, WholeResNet18, component_macs, component_parameters, format_paper_accounting,
    paper_accounting,
)
from dskd.paper_results import TABLE6
from dskd.profiling import count_flops, count_parameters

PAPER = TABLE6["DSKD (paper)"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def accounting():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return paper_accounting()
    finally:
        torch.set_num_threads(saved)


def _row(rows, component):
    return next(r for r in rows if r["component"] == component)


# ------------------------------------------------------------------------------------ the modules
def test_whole_resnet18_is_torchvisions_resnet18():
    ours, tv = WholeResNet18(), torchvision.models.resnet18(weights=None)
    assert list(ours.state_dict()) == list(tv.state_dict())  # a torchvision checkpoint loads as it is
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in tv.parameters()) == 11_689_512
    f = ours.eval()(torch.randn(1, 3, 64, 64))
    assert [tuple(x.shape) for x in f] == [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4)]


def test_rd4ad_bottleneck_has_rd4ads_parameter_count():
    """Counted from the layer shapes of RD4AD's BN_layer(AttnBasicBlock, 2) (its models/resnet.py)."""
    convs = 9 * (64 * 128 + 128 * 256 + 128 * 256       # conv1, conv2 (F1), conv3 (F2): 3x3, stride 2
                 + 768 * 512 + 512 * 512               # bn_layer[0]: 3x3 768->512 stride 2, 3x3 512->512
                 + 2 * 512 * 512)                      # bn_layer[1]: two 3x3 512->512
    convs += 768 * 512 + 1024 * 512                    # bn_layer[0]'s 1x1 shortcut; the unused conv4
    batchnorms = 2 * (128 + 256 + 256 + 512 + 3 * 512 + 2 * 512)  # bn1..bn4; 3 BNs in block 0, 2 in block 1
    b = RD4ADBottleneck()
    assert sum(p.numel() for p in b.parameters()) == convs + batchnorms == 12_205_312
    assert set(dict(b.named_children())) == {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "relu", "conv4", "bn4",
                                             "bn_layer"}


def _dfe_into_bottleneck(dfe: DeepFeatureEmbedding, b: RD4ADBottleneck) -> None:
    names = {"down1.0.0": "conv1", "down1.0.1": "bn1", "down1.1.0": "conv2", "down1.1.1": "bn2",
             "down2.0": "conv3", "down2.1": "bn3", "fuse": "bn_layer.0"}
    state = {}
    for k, v in dfe.state_dict().items():
        prefix = next(p for p in names if k.startswith(p + "."))
        state[names[prefix] + k[len(prefix):]] = v
    b.load_state_dict(state)


def test_one_block_bottleneck_without_the_unused_conv_is_our_dfe():
    torch.manual_seed(0)
    dfe, b = DeepFeatureEmbedding().eval(), RD4ADBottleneck(blocks=1, unused_conv=False).eval()
    assert sum(p.numel() for p in b.parameters()) == sum(p.numel() for p in dfe.parameters()) == 6_959_360
    _dfe_into_bottleneck(dfe, b)
    x = Pyramid(torch.randn(2, 64, 32, 32), torch.randn(2, 128, 16, 16), torch.randn(2, 256, 8, 8))
    with torch.inference_mode():
        torch.testing.assert_close(b(x), dfe(x))


def test_paper_build_with_one_block_computes_what_our_ds_computes():
    """Held-but-unused modules and the bottleneck's names aside, the paper build is our DS plus one block."""
    torch.manual_seed(0)
    ds, paper = DSKD("DS", teacher_weights=None).eval(), PaperBuild(bottleneck_blocks=1, unused_conv=False).eval()
    for net in ("teacher", "encoder"):
        missing, unexpected = getattr(paper, net).load_state_dict(getattr(ds, net).state_dict(), strict=False)
        assert not unexpected and all(k.startswith(("layer4.", "fc.")) for k in missing)
    _dfe_into_bottleneck(ds.embedding, paper.embedding)
    paper.decoder.load_state_dict(ds.decoder.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        for a, b in zip(paper(x), ds(x)):
            for fa, fb in zip(a, b):
                torch.testing.assert_close(fa, fb)


def test_bad_bottleneck_is_refused():
    with pytest.raises(ValueError, match="at least one residual block"):
        RD4ADBottleneck(blocks=0)


def test_component_counts_agree_with_the_profilers():
    ds = DSKD("DS", teacher_weights=None)
    p = component_parameters(ds)
    assert p["total"] == count_parameters(ds)["total"] == 16_228_096
    m = component_macs(ds, 64)
    assert 2 * m["total"] == count_flops(ds, 64)["flops"]["total"]
    assert 2 * m["anomaly_map"] == count_flops(ds, 64)["flops"]["anomaly_map"]


# ------------------------------------------------------------------------------------ Table 6
def test_parameters_reproduce_table6_to_the_parameter(accounting):
    rows = accounting["parameters"]
    assert [r["component"] for r in rows] == ["T", "S_e", "DFE / bottleneck", "S_d", "total"]
    assert _row(rows, "T")["ours"] == _row(rows, "S_e")["ours"] == 2_782_784
    assert _row(rows, "T")["paper_build"] == _row(rows, "S_e")["paper_build"] == 11_689_512
    assert _row(rows, "DFE / bottleneck")["ours"] == 6_959_360
    assert _row(rows, "DFE / bottleneck")["paper_build"] == 12_205_312
    assert _row(rows, "S_d")["ours"] == _row(rows, "S_d")["paper_build"] == 3_703_168
    total = _row(rows, "total")
    assert total["ours"] == 16_228_096 and total["paper_build"] == 39_287_504
    assert sum(r["paper_build"] for r in rows[:4]) == total["paper_build"]
    assert round(total["paper_build"] / 1e6, 1) == PAPER["params_m"] == 39.3
    assert "layer4 (8.39 M) and fc (0.51 M)" in _row(rows, "T")["why"]


def test_macs_are_ours_plus_one_residual_block_and_match_table6(accounting):
    rows, t = accounting["macs"], accounting["totals"]["gmacs"]
    block = 2 * 512 * 512 * 9 * 8 * 8  # two 3x3 512->512 convolutions at 8 x 8 (256 / 32)
    assert _row(rows, "DFE / bottleneck")["difference"] == block == 301_989_888
    for c in ("T", "S_e", "S_d", "anomaly map"):
        assert _row(rows, c)["difference"] == 0, c
    assert _row(rows, "total")["difference"] == block
    assert round(t["ours"], 2) == 5.86 and round(t["paper_build_networks"], 3) == 6.155
    # MACs, not FLOPs: within 0.3 % of Table 6's 6.17 (FLOPs would be twice as many)
    assert abs(t["paper_build"] / PAPER["gflops"] - 1) < 0.003
    assert round(t["paper_build_with_batchnorm"], 2) == PAPER["gflops"]


def test_size_is_the_saved_students_in_mebibytes(accounting):
    mib = _row(accounting["size"], "saved students (MiB)")
    assert round(mib["paper_build"]) == PAPER["memory_mb"] == 105
    assert round(mib["ours"], 1) == 51.4
    mb = _row(accounting["size"], "saved students (MB = 10^6 bytes)")
    assert mb["paper_build"] == pytest.approx(mib["paper_build"] * 2 ** 20 / 1e6)


def test_every_rejected_reading_misses_table6(accounting):
    alts = accounting["alternatives"]
    assert len(alts) == 8
    for a in alts:
        assert abs(a["value"] / a["table6"] - 1) > 0.01, a  # each is more than 1 % off, unlike the paper build
    by = {a["reading"]: a["value"] for a in alts}
    assert round(by["the same without the unused 1x1 conv (the book's earlier guess)"], 1) == 38.8
    assert round(by["paper build with layer4 run in T and S_e (RD4AD's encoder forward)"], 2) == 7.23


def test_format_shows_the_accounting_line_by_line(accounting):
    text = format_paper_accounting(accounting)
    assert "| total | 16.23 | 39.29 | 23.06 | T + S_e + bottleneck + S_d |" in text
    assert "| DFE / bottleneck | 0.629 | 0.931 | 0.302 |" in text
    assert "| parameters (M) | 39.29 | 39.3 | -0.03% |" in text
    assert "| size (MiB) | 105.4 | 105 | +0.41% |" in text


def test_cli_prints_the_paper_accounting(capsys):
    assert main(["profile", "--paper-accounting"]) == 0
    out = capsys.readouterr().out
    assert "Table 6 from the paper's probable build, at 256 x 256" in out
    assert "| total | 16.23 | 39.29 |" in out and "| size (MiB) | 105.4 | 105 |" in out


def test_chapter_14s_table6_prose_quotes_the_paper_build_as_counted():
    """The prose under Table 6 takes its parameters, MACs and size from the accounting, not from a text."""
    from dskd.report.complexity import Recorded, table6_markdown

    acc = paper_accounting()
    text = table6_markdown(Recorded.read(), acc)
    t = acc["totals"]
    assert f"{t['params_m']['paper_build']:.2f} M parameters" in text
    assert f"{t['gmacs']['paper_build_networks']:.3f} GMACs in the networks" in text
    assert f"{t['size_mib']['paper_build']:.1f} MiB" in text and f"{t['size_mib']['ours']:.1f} MiB" in text
    # a different count gives a different text: nothing is quoted from a fixed string
    changed = json.loads(json.dumps(acc))
    changed["totals"]["params_m"]["paper_build"] = 12.34
    assert "12.34 M parameters" in table6_markdown(Recorded.read(), changed)
