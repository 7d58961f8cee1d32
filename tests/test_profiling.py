"""dskd.profiling (Table 6 for this implementation) and the speed options of inference and training."""
import json

import pytest
import torch
from torch import nn

from dskd.cli import main
from dskd.config import TrainConfig
from dskd.evaluation import predict
from dskd.speed import (
    MAP_TOLERANCE, SpeedOptions, WinogradConv2d, fold_batchnorm, optimize_for_inference, winograd_available,
)
from dskd.models import DSKD
from dskd.profiling import (
    COMPONENTS, convolution_floor_call, count_flops, count_parameters, format_table, map_agreement,
    peak_inference_memory, profile, time_interleaved, training_call, training_step_flops, write_profile,
)
from dskd.training import train


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(structure="DS", seed=0):
    """A model whose BatchNorms hold statistics away from the defaults (like a trained model's)."""
    torch.manual_seed(seed)
    m = DSKD(structure, teacher_weights=None).eval()
    g = torch.Generator().manual_seed(seed)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.copy_(0.2 * torch.randn(n, generator=g))
            mod.running_var.copy_(0.5 + torch.rand(n, generator=g))
            mod.weight.data.copy_(0.5 + torch.rand(n, generator=g))
            mod.bias.data.copy_(0.1 * torch.randn(n, generator=g))
    return m


RECORD_FIELDS = {"structure", "image_size", "parameters", "flops", "gflops", "gmacs", "memory", "latency_b1",
                 "throughput", "training", "components_b1_s", "attainable_gflops_per_s", "teacher"}


def test_profile_on_small_inputs_returns_every_field(tmp_path):
    r = profile(["DS", "E-D"], [32], runs=1, warmup=0, throughput_batch=2, throughput_runs=1, train_batch=2,
                train_runs=1, attainable_size="small", progress=False)
    assert {"machine", "machine_name", "attainable_at_start", "settings", "paper_table6", "records",
            "attainable_gflops_per_s", "agreement", "provenance"} <= set(r)
    assert r["machine"]["logical_cpus"] >= 1 and r["settings"]["threads"] == 1
    assert [(x["structure"], x["image_size"]) for x in r["records"]] == [("DS", 32), ("E-D", 32)]
    for rec in r["records"]:
        assert RECORD_FIELDS <= set(rec), RECORD_FIELDS - set(rec)
        for v in ("plain", "fast"):
            assert rec["latency_b1"][v]["median_s"] > 0 and rec["latency_b1"]["fraction_of_attainable"][v] > 0
        assert rec["throughput"]["fast_images_per_s"] > 0 and rec["training"]["images_per_s"] > 0
        assert rec["memory"]["activations_peak_mb"] > 0
        assert rec["memory"]["weights_mb"] == pytest.approx(rec["parameters"]["state_dict_mb"])
    ds, ed = r["records"]
    assert ds["training"]["fast_options"]["cache_teacher"] and not ed["training"]["fast_options"]["cache_teacher"]
    assert ds["training"]["fast_images_per_s"] > 0 and ed["training"]["fraction_of_attainable"]["fast"] > 0
    assert set(ds["components_b1_s"]) == {*COMPONENTS, "anomaly_map"}
    assert "teacher" not in ed["components_b1_s"]
    assert r["agreement"]["agrees"]
    table = format_table(r)
    assert "| DS | 32 |" in table and "| E-D | 32 |" in table
    path = write_profile(r, tmp_path)
    assert path.name == f"{r['machine_name']}.json"
    assert json.loads(path.read_text())["records"][0]["structure"] == "DS"


def test_bad_profile_arguments_are_reported():
    with pytest.raises(ValueError, match="unknown structures"):
        profile(["XY"], [32], progress=False)
    with pytest.raises(ValueError, match="multiples of 32"):
        profile(["DS"], [100], progress=False)
    with pytest.raises(ValueError, match="runs >= 1"):
        time_interleaved({"a": lambda: None}, runs=0)


def test_parameters_per_component():
    p = count_parameters(DSKD("DS", teacher_weights=None))
    # torchvision ResNet18 (11,689,512) without layer4 (8,393,728) and fc (513,000)
    assert p["per_component"]["teacher"] == p["per_component"]["encoder"] == 2_782_784
    assert sum(p["per_component"].values()) == p["total"]
    assert p["trainable"] == p["total"] - 2_782_784
    assert count_parameters(DSKD("E-D", teacher_weights=None))["per_component"]["teacher"] == 0


def _hand_count(model, size):
    """2 x multiply-accumulates of every (transposed) convolution, from the layer shapes."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1]
        if isinstance(mod, nn.ConvTranspose2d):  # every input pixel meets every kernel tap
            total += 2 * mod.in_channels * mod.out_channels * k * inp[0].shape[-2] * inp[0].shape[-1]
        else:
            total += 2 * mod.in_channels * mod.out_channels * k * out.shape[-2] * out.shape[-1]

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.inference_mode():
        model(torch.randn(1, 3, size, size))
    for h in hooks:
        h.remove()
    return total


@pytest.mark.parametrize("structure", ["DS", "T-D"])
def test_flops_equal_a_hand_count_of_the_convolutions(structure):
    model = DSKD(structure, teacher_weights=None).eval()
    f = count_flops(model, 64)
    assert f["flops"]["networks"] == _hand_count(model, 64)
    assert sum(f["flops"][c] for c in COMPONENTS) == f["flops"]["networks"]
    # the Gaussian filter: two 1-D passes of 2 * 33 taps per pixel at sigma 4 (radius 16)
    assert f["flops"]["anomaly_map"] == 2 * 2 * 33 * 64 * 64
    assert f["gmacs"] == pytest.approx(f["gflops"] / 2)
    # FLOPs scale with the image area
    assert count_flops(model, 128)["flops"]["networks"] == 4 * f["flops"]["networks"]


def test_peak_memory_grows_with_the_image():
    m = DSKD("DS", teacher_weights=None).eval()
    small, large = peak_inference_memory(m, 32), peak_inference_memory(m, 64)
    assert 0 < small["activations_peak_mb"] < large["activations_peak_mb"]
    # at least the three teacher maps and the three decoder maps of the inference pair are alive together
    level_bytes = 4 * (64 * 16 * 16 + 128 * 8 * 8 + 256 * 4 * 4)
    assert large["activations_peak_mb"] * 1e6 >= 2 * level_bytes


def test_fold_batchnorm_is_exact_and_removes_every_batchnorm():
    m = _model()
    folded = fold_batchnorm(m)
    assert not any(isinstance(x, nn.BatchNorm2d) for x in folded.modules())
    assert any(isinstance(x, nn.BatchNorm2d) for x in m.modules())  # the original is untouched
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        a, b = m(x), folded(x)
    for pa, pb in zip(a, b):
        for fa, fb in zip(pa, pb):
            torch.testing.assert_close(fb, fa, rtol=1e-4, atol=1e-4)


# every option benchmarks/speed.py times; Winograd from 1 pixel on, so that the 64 px test input really
# takes the NNPACK path (from 32 x 32 maps on, the default, it would only at 128 px and more)
SPEED_VARIANTS = {
    "fold": SpeedOptions(fold_batchnorm=True),
    "channels_last": SpeedOptions(channels_last=True),
    "winograd_everywhere": SpeedOptions(winograd=True, winograd_min_area=1),
    "fast": SpeedOptions.fast(),
    "fast+winograd": SpeedOptions(fold_batchnorm=True, channels_last=True, winograd=True, winograd_min_area=1),
    "bf16": SpeedOptions(fold_batchnorm=True, channels_last=True, bf16=True),
}
COMPILED_VARIANTS = {
    "fast+compile": SpeedOptions(fold_batchnorm=True, channels_last=True, compile=True),
    "fast+winograd+compile": SpeedOptions(fold_batchnorm=True, channels_last=True, winograd=True,
                                          winograd_min_area=1, compile=True),
}


def _max_rel_diff(fast, plain):
    return float((fast - plain).abs().max() / plain.abs().max())


@pytest.mark.parametrize("name", list(SPEED_VARIANTS))
def test_optimised_and_plain_inference_give_the_same_maps(name):
    opts = SPEED_VARIANTS[name]
    if opts.winograd and not winograd_available():
        pytest.skip("NNPACK is not available in this torch build")
    m = _model()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    plain = predict(m, x).maps
    fast = predict(m, x, speed=opts).maps
    err = float((fast - plain).abs().max() / plain.abs().max())
    assert err <= opts.tolerance, f"{name}: max relative difference {err:.2e} > {opts.tolerance:.0e}"
    assert opts.tolerance == MAP_TOLERANCE["bf16" if opts.bf16 else "fp32"]
    if opts.winograd:  # the rewrite really happened, so the comparison is not vacuous
        assert any(isinstance(mod, WinogradConv2d) for mod in optimize_for_inference(m, opts).modules())
    if name in ("fold", "fast", "fast+winograd", "bf16"):
        assert err > 0  # different arithmetic, so the test could fail


@pytest.fixture
def count_nnpack_calls(monkeypatch):
    """Count the calls of the NNPACK op that WinogradConv2d makes (eager mode)."""
    import dskd.speed as ev

    calls = []
    op = ev.nnpack_conv3x3
    monkeypatch.setattr(ev, "nnpack_conv3x3", lambda *a: calls.append(a[0].shape) or op(*a))
    return calls


def test_winograd_runs_nnpack_only_on_large_enough_maps(count_nnpack_calls):
    if not winograd_available():
        pytest.skip("NNPACK is not available in this torch build")
    m = _model()
    x = torch.randn(1, 3, 64, 64)
    predict(m, x, speed=SpeedOptions(winograd=True))  # default: maps of 32 x 32 and more; the largest is 16 x 16
    assert count_nnpack_calls == []
    predict(m, x, speed=SpeedOptions(winograd=True, winograd_min_area=16 * 16))
    assert count_nnpack_calls and all(s[-2] * s[-1] >= 16 * 16 for s in count_nnpack_calls)


def test_nnpack_op_equals_conv2d_and_passes_opcheck():
    if not winograd_available():
        pytest.skip("NNPACK is not available in this torch build")
    import torch.nn.functional as F

    from dskd.evaluation import nnpack_conv3x3

    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(2, 8, 12, 12, generator=g), torch.randn(16, 8, 3, 3, generator=g), torch.randn(16, generator=g)
    for bias, pad in ((b, [1, 1]), (None, [0, 0])):
        ref = F.conv2d(x, w, bias, padding=pad)
        for inp in (x, x.contiguous(memory_format=torch.channels_last)):
            y = nnpack_conv3x3(inp, w, bias, pad)
            assert y.shape == ref.shape
            assert _max_rel_diff(y, ref) <= MAP_TOLERANCE["fp32"]
        # schema, fake (meta) kernel and dispatch: what torch.compile relies on
        torch.library.opcheck(nnpack_conv3x3, (x, w, bias, pad))


def test_nnpack_op_works_in_a_fresh_process():
    """NNPACK fails until initialised; the op initialises it itself (a compiled graph may call it first)."""
    import os
    import subprocess
    import sys

    code = ("import torch\n"
            "from dskd.speed import nnpack_conv3x3, winograd_available\n"
            "x, w = torch.randn(1, 2, 8, 8), torch.randn(3, 2, 3, 3)\n"
            "try:\n"
            "    y = nnpack_conv3x3(x, w, None, [1, 1])\n"
            "except RuntimeError as err:\n"
            "    print('unavailable' if not winograd_available() else f'failed: {err}'); raise SystemExit\n"
            "print(float((y - torch.nn.functional.conv2d(x, w, padding=1)).abs().max()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    if out.stdout.strip() == "unavailable":
        pytest.skip("NNPACK is not available in this torch build")
    assert not out.stdout.startswith("failed"), out.stdout
    assert float(out.stdout.strip()) < 1e-3


def _have_compiler() -> bool:
    import shutil

    return any(shutil.which(c) for c in ("c++", "g++", "clang++"))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(COMPILED_VARIANTS))
def test_compiled_inference_gives_the_same_maps(name):
    opts = COMPILED_VARIANTS[name]
    if opts.winograd and not winograd_available():
        pytest.skip("NNPACK is not available in this torch build")
    if not _have_compiler():
        pytest.skip("torch.compile (inductor) needs a C++ compiler")
    from torch._inductor.utils import run_and_get_code

    m = _model()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    fast = optimize_for_inference(m, opts)
    maps, code = run_and_get_code(lambda: predict(fast, x).maps)  # the first call compiles
    assert code, "nothing was compiled"
    err = _max_rel_diff(maps, predict(m, x).maps)
    assert err <= opts.tolerance, f"{name}: max relative difference {err:.2e} > {opts.tolerance:.0e}"
    assert err > 0  # folded weights change the rounding, so the test could fail
    # the compiled graph calls the NNPACK op (traced, not a graph break), or not at all
    assert ("nnpack_conv3x3" in "\n".join(code)) == opts.winograd


def test_fast_inference_on_a_dataset_with_workers():
    from dskd.data import SyntheticDefects

    ds = SyntheticDefects("disc", "test", image_size=64, n_test=6, seed=0)
    m = _model()
    plain = predict(m, ds, batch_size=4)
    fast = predict(m, ds, batch_size=4, num_workers=1, speed="fast")
    assert torch.equal(plain.labels, fast.labels) and plain.defect_types == fast.defect_types
    assert float((fast.maps - plain.maps).abs().max() / plain.maps.abs().max()) <= MAP_TOLERANCE["fp32"]
    agreement = map_agreement(m, "fast", 64)
    assert agreement["agrees"] and agreement["max_rel_diff"] <= agreement["tolerance"]
    with pytest.raises(ValueError, match="speed must be"):
        predict(m, ds, speed="fastest")


TINY = dict(teacher="random", image_size=32, epochs=3, batch_size=4, n_train=10, n_test=4)


@pytest.mark.parametrize("structure", ["DS", "T-D"])
def test_teacher_cache_gives_identical_losses(structure):
    cfg = TrainConfig.quick(structure=structure, **TINY)
    plain = train(cfg, progress=False)
    cached = train(cfg, progress=False, cache_teacher=True)
    assert cached.history == plain.history  # bitwise: same batches, same kernels
    stats = cached.extra["teacher_cache"]
    assert stats["misses"] == 10 and stats["hits"] == 2 * 10  # computed in epoch 1, reused in epochs 2-3
    assert stats["bytes"] == 10 * 4 * (64 * 8 * 8 + 128 * 4 * 4 + 256 * 2 * 2)
    for a, b in zip(plain.model.state_dict().values(), cached.model.state_dict().values()):
        assert torch.equal(a, b)


def test_teacher_cache_is_ignored_without_a_teacher():
    cfg = TrainConfig.quick(structure="E-D", **{**TINY, "epochs": 1})
    assert "teacher_cache" not in train(cfg, progress=False, cache_teacher=True).extra


def test_channels_last_and_fused_adam_training_match_within_rounding():
    cfg = TrainConfig.quick(**{**TINY, "epochs": 2, "precision": "fp32"})  # bf16 rounds far coarser
    plain = train(cfg, progress=False, channels_last=False, fused_adam=False, cache_teacher=False)
    fast = train(cfg, progress=False, channels_last=True, fused_adam=True, cache_teacher=True)
    # the first epoch agrees to rounding; later ones drift a little: Adam divides by sqrt(v), so it turns
    # rounding-size differences in tiny gradients into full-size steps
    assert fast.history[0] == pytest.approx(plain.history[0], rel=1e-3)
    assert fast.history == pytest.approx(plain.history, rel=5e-2)
    assert fast.history != plain.history  # different rounding, so the comparison is not vacuous
    assert all(p.is_contiguous() for p in fast.model.parameters())  # saved in the default layout


def test_training_call_with_cached_teacher_steps_the_students():
    m = DSKD("DS", teacher_weights=None)
    x = torch.randn(2, 3, 32, 32)
    before = [p.detach().clone() for p in m.student_parameters()]
    loss = training_call(m, x, cache_teacher=True)()
    assert loss.ndim == 0 and loss > 0
    assert all(torch.equal(a, b) for a, b in zip(before, m.student_parameters()))  # a private copy trained


@pytest.mark.parametrize("structure", ["DS", "T-D", "E-D"])
def test_convolution_floor_runs_exactly_the_students_convolutions_of_a_step(structure):
    # the floor's FLOPs are the step's FLOPs without the teacher's forward (a cached teacher): every
    # student convolution forward and backward, the stem's without a gradient to the image
    m = DSKD(structure, teacher_weights=None)
    x = torch.randn(2, 3, 32, 32)
    call, flops = convolution_floor_call(m, x, precision="fp32")
    teacher = count_flops(m, 32)["flops"].get("teacher", 0.0)
    assert flops / 2 == pytest.approx(training_step_flops(m, 32) - teacher, rel=1e-9)
    before = [p.detach().clone() for p in m.parameters()]
    call()
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))  # private copies only
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'bf16'"):
        convolution_floor_call(m, x, precision="fp16")


def test_cli_profile_writes_json(tmp_path, capsys):
    code = main(["profile", "--structures", "T-E", "--sizes", "32", "--runs", "1", "--warmup", "0",
                 "--throughput-batch", "2", "--throughput-runs", "1", "--train-batch", "2", "--train-runs", "1",
                 "--threads", "1", "--probe-size", "small", "--out-dir", str(tmp_path), "--name", "test"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| T-E | 32 |" in out
    data = json.loads((tmp_path / "test.json").read_text())
    assert data["records"][0]["structure"] == "T-E" and data["machine"]["cpu"]
    assert main(["profile", "--sizes", "32,x"]) == 2


def test_machine_name_tells_simd_levels_apart():
    from dskd.profiling import machine_name

    desc = {"cpu": "AMD EPYC 7B13 64-Core Processor", "logical_cpus": 2, "cpu_capability": "AVX512"}
    assert machine_name(desc) == "cpu-amd-epyc-7b13-2cpu-avx512"
    assert machine_name({**desc, "cpu_capability": "AVX2"}) == "cpu-amd-epyc-7b13-2cpu-avx2"
    assert machine_name({**desc, "cpu_capability": None}) == "cpu-amd-epyc-7b13-2cpu"
