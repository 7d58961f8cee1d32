import numpy as np
import pytest
import torch

from dskd.models import TeacherPyramid
from dskd.pretrain import (
    PretrainConfig, fractal_dataset, image_pyramid, knn_image_auroc, natural_crops, pretrain_teacher, render_ifs,
    rotnet_batch, sample_ifs, save_teacher, source_images,
)


def test_fractal_generator_is_deterministic_by_seed():
    cfg = PretrainConfig(n_categories=3, per_category=2, image_size=32, seed=5)
    a, la = fractal_dataset(cfg)
    b, lb = fractal_dataset(cfg)
    c, _ = fractal_dataset(PretrainConfig(n_categories=3, per_category=2, image_size=32, seed=6))
    torch.testing.assert_close(a, b)
    assert torch.equal(la, lb) and la.tolist() == [0, 0, 1, 1, 2, 2]
    assert not torch.allclose(a, c)
    assert a.shape == (6, 3, 32, 32) and 0.0 <= float(a.min()) and float(a.max()) <= 1.0


def test_ifs_maps_are_contractions_and_attractors_fill_part_of_the_image():
    rng = np.random.default_rng(0)
    for _ in range(20):
        maps = sample_ifs(rng)
        singular = np.linalg.svd(maps[:, :4].reshape(-1, 2, 2), compute_uv=False)
        assert (singular < 1.0 + 1e-9).all()
        img = render_ifs(maps, 64, rng)
        filled = float((img > 0).mean())
        assert 0.005 < filled < 0.9, filled  # neither empty nor a solid block


def test_instances_of_a_category_resemble_each_other_more_than_other_categories():
    x, y = fractal_dataset(PretrainConfig(n_categories=6, per_category=4, image_size=32, seed=1))
    shape = x.mean(1).flatten(1)
    shape = (shape - shape.mean(1, keepdim=True)) / shape.std(1, keepdim=True)
    corr = shape @ shape.T / shape.shape[1]
    same = corr[y[:, None] == y[None, :]].mean()
    other = corr[y[:, None] != y[None, :]].mean()
    assert same > other + 0.1


def test_pretraining_runs_and_saves_a_loadable_teacher(tmp_path):
    cfg = PretrainConfig(n_categories=4, per_category=4, image_size=32, epochs=2, batch_size=8)
    state, record = pretrain_teacher(cfg, progress=False)
    assert len(record["history"]) == 2 and record["config"]["seed"] == 0
    path = save_teacher(state, record, tmp_path / "teacher.pth")
    meta = (tmp_path / "teacher.json").read_text()
    assert "sha256" in meta and "fractal" in meta
    teacher = TeacherPyramid(path)
    torch.testing.assert_close(teacher.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_knn_proxy_separates_an_obvious_anomaly():
    from dskd.data import SyntheticDefects

    train = SyntheticDefects("disc", "train", image_size=32, n_train=12)
    test = SyntheticDefects("disc", "test", image_size=32, n_test=12)
    auc = knn_image_auroc(TeacherPyramid(None), train, test)
    assert 0.0 <= auc <= 1.0


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="n_categories must be >= 2"):
        PretrainConfig(n_categories=1)


def test_pretrain_teacher_command_writes_weights_and_provenance(tmp_path, capsys):
    import json

    from dskd.cli import main

    out = tmp_path / "t.pt"
    assert main(["pretrain-teacher", "--out", str(out), "--n-categories", "3", "--per-category", "2",
                 "--image-size", "32", "--epochs", "1", "--batch-size", "4"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["config"]["n_categories"] == 3 and len(meta["sha256"]) == 64
    assert meta["wall_seconds"] > 0 and meta["provenance"]["git_commit"]
    assert f"--teacher {out}" in capsys.readouterr().out
    TeacherPyramid(out)  # loads


def test_pretrain_teacher_command_rejects_bad_sizes(capsys):
    from dskd.cli import main

    assert main(["pretrain-teacher", "--n-categories", "1"]) == 2
    assert "n_categories must be >= 2" in capsys.readouterr().err


def test_teacher_candidates_script_records_knn_and_ds_and_keeps_other_candidates(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "teacher_candidates", Path(__file__).resolve().parents[1] / "benchmarks" / "teacher_candidates.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    weights = tmp_path / "t.pt"
    cfg = PretrainConfig(n_categories=3, per_category=2, image_size=32, epochs=1, batch_size=4)
    save_teacher(*pretrain_teacher(cfg, progress=False), weights)
    out = tmp_path / "candidates.json"
    assert mod.main(["random", "--dataset", "synthetic", "--image-size", "32", "--ds-epochs", "1", "--out", str(out)]) == 0
    assert mod.main([str(weights), "--dataset", "synthetic", "--image-size", "32", "--out", str(out)]) == 0
    records = {r["candidate"]: r for r in json.loads(out.read_text())["records"]}
    assert set(records) == {"random", str(weights)}
    assert 0.0 <= records["random"]["ds"]["image_auroc"] <= 1.0 and records["random"]["ds"]["epochs"] == 1
    assert records[str(weights)]["pretraining"]["config"]["n_categories"] == 3 and "ds" not in records[str(weights)]
    assert records[str(weights)]["teacher"].startswith("file t.pt")
# ----------------------------------------------------------------------------- self-supervision on natural crops
def _pyramids(size=32):
    images, names = source_images("sklearn")
    assert names == ["sklearn:china.jpg", "sklearn:flower.jpg"] and images[0].shape == (3, 427, 640)
    return [image_pyramid(im, size // 2) for im in images]


def test_natural_crops_are_deterministic_by_seed_in_range_and_varied():
    pyr = _pyramids()
    crop = lambda seed, **kw: natural_crops(pyr, 12, 32, torch.Generator().manual_seed(seed), **kw)  # noqa: E731
    a, b, c = crop(3), crop(3), crop(4)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    assert a.shape == (12, 3, 32, 32) and a.dtype == torch.float32
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert float(a.flatten(1).std(0).mean()) > 0.05  # crops differ from each other
    grey = crop(0, p_grey=1.0)
    torch.testing.assert_close(grey[:, 0], grey[:, 2])  # all grey: R == G == B
    colour = crop(0, p_grey=0.0)
    assert float((colour[:, 0] - colour[:, 2]).abs().mean()) > 0.01


def test_crop_geometry_on_a_coordinate_image():
    # oracle: channel 0 holds x, channel 1 holds y, so each crop shows where it came from
    h, w = 300, 400
    ys, xs = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    image = torch.stack([xs, ys, torch.full_like(xs, 0.5)])
    plain = dict(p_grey=0.0, p_jitter=0.0, p_blur=0.0, min_scale=0.05)
    x = natural_crops([image], 64, 32, torch.Generator().manual_seed(1), rotate=False, **plain)
    dx_x, dx_y = x[:, 0].diff(dim=2), x[:, 0].diff(dim=1)  # how x changes along the crop's columns, rows
    dy_x, dy_y = x[:, 1].diff(dim=2), x[:, 1].diff(dim=1)
    assert float(dx_y.abs().max()) < 1e-5 and float(dy_x.abs().max()) < 1e-5  # upright: no rotation
    assert bool((dy_y > 0).all())  # never flipped vertically without rotate
    signs = torch.sign(dx_x.mean((1, 2)))
    assert bool((dx_x * signs.view(-1, 1, 1) > 0).all()) and {-1.0, 1.0} <= set(signs.tolist())  # mirrored sometimes
    area = (x[:, 0].amax((1, 2)) - x[:, 0].amin((1, 2))) * (x[:, 1].amax((1, 2)) - x[:, 1].amin((1, 2)))
    assert float(area.min()) > 0.05 * 0.8 and float(area.max()) <= 1.0 and float(area.max() / area.min()) > 3
    r = natural_crops([image], 64, 32, torch.Generator().manual_seed(1), rotate=True, **plain)
    along_rows = r[:, 0].diff(dim=1).abs().mean((1, 2)) > r[:, 0].diff(dim=2).abs().mean((1, 2))
    assert 0 < int(along_rows.sum()) < 64  # with rotate, x runs down the crop in some of them


def test_rotnet_batch_rotates_each_crop_four_ways():
    crops = torch.rand(3, 3, 8, 8)
    x, y = rotnet_batch(crops)
    assert x.shape == (12, 3, 8, 8) and y.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    torch.testing.assert_close(x[:3], crops)
    torch.testing.assert_close(x[6:9], crops.flip(2).flip(3))  # 180 degrees
    torch.testing.assert_close(torch.rot90(x[3:6], -1, dims=(2, 3)), crops)


@pytest.mark.parametrize("recipe", ["ssl", "mix"])
def test_ssl_and_mix_recipes_run_and_save_a_loadable_teacher(tmp_path, recipe):
    cfg = PretrainConfig(recipe=recipe, n_categories=3, per_category=4, image_size=32, epochs=2, batch_size=8,
                         ssl_steps_per_epoch=2)
    state, record = pretrain_teacher(cfg, progress=False)
    assert record["recipe"] == recipe and record["source_images"] == ["sklearn:china.jpg", "sklearn:flower.jpg"]
    assert len(record["history"]) == 2
    for row in record["history"]:
        assert np.isfinite(row["loss"]) and 0.0 <= row["rotation_accuracy"] <= 1.0
        assert ("accuracy" in row) == (recipe == "mix")
    path = save_teacher(state, record, tmp_path / f"{recipe}.pth")
    teacher = TeacherPyramid(path)
    torch.testing.assert_close(teacher.conv1.weight, state["conv1.weight"])
    assert set(state) == set(TeacherPyramid(None).state_dict())  # stem..layer3, nothing of the heads


def test_fractal_recipe_names_no_natural_image():
    cfg = PretrainConfig(n_categories=3, per_category=4, image_size=32, epochs=1, batch_size=4)
    _, record = pretrain_teacher(cfg, progress=False)
    assert record["recipe"] == "fractal" and record["source_images"] == []
    assert "rotation_accuracy" not in record["history"][0]


def test_rotnet_learns_above_chance_on_a_tiny_budget():
    # every crop is new, so the accuracy measured before each update is on unseen crops; chance is 1/4
    cfg = PretrainConfig(recipe="ssl", image_size=32, batch_size=32, epochs=4, ssl_steps_per_epoch=10)
    _, record = pretrain_teacher(cfg, progress=False)
    last = record["history"][-1]
    assert last["rotation_accuracy"] > 0.35, record["history"]
    assert last["loss"] < np.log(4), record["history"]


def test_optional_skimage_images_are_read_and_named(tmp_path, monkeypatch):
    import sys
    import types

    from PIL import Image

    data = tmp_path / "skimage" / "data"
    data.mkdir(parents=True)
    Image.fromarray(np.full((80, 96), 128, np.uint8)).save(data / "grey.png")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(data / "tiny.png")  # below min_side: skipped
    fake, fake_data = types.ModuleType("skimage"), types.ModuleType("skimage.data")
    fake_data.__file__ = str(data / "__init__.py")
    fake.data = fake_data
    monkeypatch.setitem(sys.modules, "skimage", fake)
    monkeypatch.setitem(sys.modules, "skimage.data", fake_data)
    images, names = source_images("sklearn+skimage")
    assert names == ["sklearn:china.jpg", "sklearn:flower.jpg", "skimage:grey.png"]
    assert images[2].shape == (3, 80, 96) and abs(float(images[2].mean()) - 128 / 255) < 1e-6


def test_skimage_sources_without_skimage_say_so(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "skimage", None)  # import fails
    with pytest.raises(ValueError, match="needs scikit-image, which is not installed"):
        source_images("skimage")


@pytest.mark.parametrize("kwargs, message", [
    (dict(recipe="rotnet"), "recipe must be one of fractal, ssl, mix; got 'rotnet'"),
    (dict(recipe="ssl", batch_size=6), "batch_size must be a multiple of 4 for recipe 'ssl'"),
    (dict(ssl_sources="imagenet"), "ssl_sources must be one of sklearn, skimage, sklearn"),
    (dict(ssl_min_scale=0.0), r"ssl_min_scale must be in \(0, 1\]"),
    (dict(ssl_grey=1.5), r"ssl_grey must be a probability in \[0, 1\], got 1.5"),
    (dict(ssl_weight=0.0), "ssl_weight must be > 0"),
    (dict(ssl_steps_per_epoch=0), "ssl_steps_per_epoch must be >= 1, got 0"),
])
def test_bad_ssl_config_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PretrainConfig(**kwargs)


def test_pretrain_teacher_command_runs_the_ssl_recipe(tmp_path, capsys):
    import json

    from dskd.cli import main

    out = tmp_path / "ssl.pt"
    assert main(["pretrain-teacher", "--recipe", "ssl", "--out", str(out), "--image-size", "32", "--epochs", "1",
                 "--batch-size", "8", "--ssl-steps-per-epoch", "2", "--ssl-grey", "1", "--ssl-min-scale", "0.05"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["recipe"] == "ssl" and meta["config"]["ssl_steps_per_epoch"] == 2
    assert meta["config"]["ssl_grey"] == 1.0 and meta["config"]["ssl_min_scale"] == 0.05
    assert meta["source_images"] == ["sklearn:china.jpg", "sklearn:flower.jpg"]
    printed = capsys.readouterr().out
    assert "rotation accuracy" in printed and "sklearn:china.jpg" in printed
    TeacherPyramid(out)
    assert main(["pretrain-teacher", "--recipe", "mix", "--batch-size", "6"]) == 2
    assert "multiple of 4" in capsys.readouterr().err
