"""Tests of dskd.data: transforms, the synthetic data set, MT Defects, MVTec AD / 3D-AD, download."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import dskd.data as D
from dskd.data import (
    DATASETS,
    MVTEC3D_CATEGORIES,
    MVTEC_CATEGORIES,
    SYNTHETIC_CATEGORIES,
    SYNTHETIC_DEFECT_TYPES,
    DatasetError,
    MagneticTile,
    MVTec3DRGB,
    MVTecAD,
    SyntheticDefects,
    build_dataset,
    data_root,
    denormalize,
    download_and_extract,
    find_magnetic_tile_root,
    load_image,
    load_image_and_mask,
    load_mask,
    normalize,
)
from dskd.data.transforms import IMAGENET_MEAN, IMAGENET_STD

ITEM_KEYS = {"image", "mask", "label", "defect_type", "path"}


def check_item(item: dict, size: int) -> None:
    """The item contract shared by every data set."""
    assert set(item) == ITEM_KEYS
    img, mask = item["image"], item["mask"]
    assert isinstance(img, torch.Tensor) and img.dtype == torch.float32 and img.shape == (3, size, size)
    assert isinstance(mask, torch.Tensor) and mask.dtype == torch.float32 and mask.shape == (1, size, size)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert type(item["label"]) is int and item["label"] in (0, 1)
    assert isinstance(item["defect_type"], str) and isinstance(item["path"], str)
    assert (item["label"] == 0) == (item["defect_type"] == "good")
    x01 = denormalize(img)
    assert torch.allclose(normalize(x01), img, atol=1e-4), "image is not a normalised [0, 1] image"


# ----------------------------------------------------------------------------- transforms
def test_normalize_denormalize_roundtrip_and_shapes():
    x = torch.rand(3, 5, 7)
    y = normalize(x)
    assert torch.allclose(y[:, 0, 0], (x[:, 0, 0] - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD))
    assert torch.allclose(denormalize(y), x, atol=1e-6)
    xb = torch.rand(2, 3, 4, 4)
    assert torch.allclose(denormalize(normalize(xb)), xb, atol=1e-6)
    assert denormalize(torch.full((3, 2, 2), 100.0)).max() == 1.0  # clamped
    assert denormalize(torch.full((1, 3, 2, 2), -100.0)).min() == 0.0
    with pytest.raises(ValueError, match="shape"):
        normalize(torch.rand(1, 4, 4))
    from dskd.data.transforms import to_normalized_tensor, to_tensor01

    arr = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    assert torch.allclose(to_tensor01(arr), torch.from_numpy(arr).permute(2, 0, 1).float() / 255)
    assert torch.allclose(to_normalized_tensor(arr), normalize(to_tensor01(arr)), atol=1e-6)


def test_load_image_grey_becomes_rgb_and_is_resized(tmp_path, data_write_png):
    p = data_write_png(tmp_path / "grey.png", size=(20, 10), mode="L")
    img = load_image(p, 8)
    assert img.shape == (3, 8, 8) and img.dtype == torch.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    assert torch.equal(img[0], img[1]) and torch.equal(img[1], img[2])
    const = load_image(data_write_png(tmp_path / "c.png", value=51), 4)
    assert torch.allclose(const, torch.full((3, 4, 4), 0.2))


def test_load_mask_thresholds_at_127(tmp_path):
    from PIL import Image

    arr = np.array([[0, 100], [128, 255]], np.uint8)
    Image.fromarray(arr).save(tmp_path / "m.png")
    m = load_mask(tmp_path / "m.png", 2)
    assert m.shape == (1, 2, 2) and m.dtype == torch.float32
    assert m[0].tolist() == [[0.0, 0.0], [1.0, 1.0]]
    big = load_mask(tmp_path / "m.png", 6)  # nearest: stays binary
    assert set(big.unique().tolist()) == {0.0, 1.0}


def test_corrupt_or_missing_image_raises_dataset_error(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png at all")
    with pytest.raises(DatasetError, match="broken.png"):
        load_image(bad, 8)
    with pytest.raises(DatasetError, match="broken.png"):
        load_mask(bad, 8)
    with pytest.raises(DatasetError, match="nothere.png"):
        load_image(tmp_path / "nothere.png", 8)
    assert issubclass(DatasetError, ValueError)


def test_truncated_image_raises_dataset_error(tmp_path, data_write_png):
    p = data_write_png(tmp_path / "t.png", size=(64, 64))
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(DatasetError, match="t.png"):
        load_image(p, 8)


def test_image_mask_size_mismatch_names_both(tmp_path, data_write_png, data_write_mask):
    img = data_write_png(tmp_path / "img.png", size=(16, 12))
    mask = data_write_mask(tmp_path / "img_mask.png", size=(10, 12))
    with pytest.raises(DatasetError, match=r"img\.png.*16x12.*img_mask\.png.*10x12"):
        load_image_and_mask(img, mask, 8)
    image, zero = load_image_and_mask(img, None, 8)
    assert image.shape == (3, 8, 8) and zero.shape == (1, 8, 8) and zero.sum() == 0


# ----------------------------------------------------------------------------- synthetic
def test_synthetic_unknown_category_and_split():
    with pytest.raises(ValueError, match=r"'plaid'.*stripes.*disc"):
        SyntheticDefects("plaid")
    with pytest.raises(ValueError, match="train, test"):
        SyntheticDefects("stripes", split="val")
    assert len(SYNTHETIC_CATEGORIES) >= 6 and {"disc", "ring"} <= set(SYNTHETIC_CATEGORIES)
    assert list(SYNTHETIC_DEFECT_TYPES) == sorted(SYNTHETIC_DEFECT_TYPES)
    assert set(SYNTHETIC_DEFECT_TYPES) == {"scratch", "hole", "stain", "missing", "color"}


def test_synthetic_item_contract_and_collate():
    ds = SyntheticDefects("disc", "test", image_size=32, n_test=9)
    assert ds.name == "synthetic/disc" and ds.split == "test" and ds.image_size == 32
    assert ds.defect_types == sorted(SYNTHETIC_DEFECT_TYPES)
    for i in range(len(ds)):
        check_item(ds[i], 32)
    assert ds[4]["path"] == "synthetic://disc/test/4"
    assert ds[-1]["path"] == "synthetic://disc/test/8"
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["mask"].shape == (4, 1, 32, 32)
    assert batch["label"].tolist() == ds.labels()[:4]
    assert batch["defect_type"] == [ds[i]["defect_type"] for i in range(4)]
    with pytest.raises(IndexError):
        ds[9]


def test_synthetic_determinism():
    a = SyntheticDefects("stripes", "test", seed=3)
    b = SyntheticDefects("stripes", "test", seed=3, cache=False)
    # b is read backwards: item i must not depend on the access order
    items_b = {i: b[i] for i in reversed(range(10))}
    for i in range(10):
        assert torch.equal(a[i]["image"], items_b[i]["image"])
        assert torch.equal(a[i]["mask"], items_b[i]["mask"])
    c = SyntheticDefects("stripes", "test", seed=4)
    assert not torch.equal(a[0]["image"], c[0]["image"])
    assert not torch.equal(a[1]["mask"], c[1]["mask"])
    # splits and categories use different streams
    tr = SyntheticDefects("stripes", "train", seed=3)
    assert not torch.equal(tr[0]["image"], a[0]["image"])
    # the cache hands out copies of the mask: editing an item does not change the data set
    item = a[1]
    item["mask"].zero_()
    assert a[1]["mask"].sum() > 0


@pytest.mark.parametrize("category", SYNTHETIC_CATEGORIES)
def test_synthetic_test_split_composition(category):
    ds = SyntheticDefects(category, "test", image_size=48, n_test=30)
    types = ds.defect_types_list()
    assert set(types) == {"good", *SYNTHETIC_DEFECT_TYPES}
    assert 0.25 <= types.count("good") / len(types) <= 0.4
    assert ds.labels() == [0 if t == "good" else 1 for t in types]
    for i in range(len(ds)):
        item = ds[i]
        assert item["defect_type"] == types[i]
        area = item["mask"].mean().item()
        if item["label"] == 0:
            assert area == 0.0
        else:
            assert 0.004 < area < 0.08, f"{category} {types[i]} mask covers {area:.3%} of the image"
    train = SyntheticDefects(category, "train", image_size=48, n_train=6)
    assert train.labels() == [0] * 6
    assert all(train[i]["mask"].sum() == 0 and train[i]["defect_type"] == "good" for i in range(6))


@pytest.mark.parametrize("category", SYNTHETIC_CATEGORIES)
def test_synthetic_defects_are_where_the_mask_is(category):
    """Each defect changes the pixels under its mask clearly and (almost) nothing else."""
    ds = SyntheticDefects(category, "test", image_size=64, n_test=15)  # 10 defects: each type twice
    for i in range(len(ds)):
        img, mask, dtype = ds.render(i)
        clean, clean_mask, _ = ds.render(i, with_defect=False)
        assert not clean_mask.any()
        diff = np.abs(img - clean).max(axis=-1)
        if dtype == "good":
            assert diff.max() == 0.0
            continue
        # as returned by __getitem__
        item = ds[i]
        assert torch.equal(item["mask"][0], torch.from_numpy(mask).float())
        assert torch.allclose(denormalize(item["image"]), torch.from_numpy(img).permute(2, 0, 1), atol=1e-5)
        assert diff[mask].mean() > 0.15, f"{category}/{dtype}: defect too faint"
        assert (diff[mask] > 0.1).mean() > 0.6, f"{category}/{dtype}: most masked pixels unchanged"
        # outside the mask only the antialiased rim of an object may change
        assert (diff[~mask] > 0.05).mean() < 0.005, f"{category}/{dtype}: changes outside the mask"
        assert torch.equal(ds.clean_image(i), torch.from_numpy(clean).permute(2, 0, 1))


def test_synthetic_normal_images_vary_but_stay_alike():
    for category in ("stripes", "disc"):
        ds = SyntheticDefects(category, "train", image_size=64, n_train=8)
        imgs = torch.stack([ds.image01(i) for i in range(8)])
        # not one image repeated: the pattern phase/position moves
        pair_diff = (imgs[1:] - imgs[0]).abs().mean(dim=(1, 2, 3))
        assert (pair_diff > 0.02).all()
        # ... but the colour statistics stay close (small jitter)
        means = imgs.mean(dim=(2, 3))
        assert (means - means.mean(0)).abs().max() < 0.08


def test_synthetic_generation_speed():
    ds = SyntheticDefects("fabric", "train", image_size=64, n_train=200, cache=False)
    t0 = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    elapsed = time.perf_counter() - t0
    assert elapsed < 10.0, f"200 synthetic images took {elapsed:.1f} s"


# ----------------------------------------------------------------------------- MT Defects (real)
MT_COUNTS = {"good": 952, "blowhole": 115, "break": 85, "crack": 57, "fray": 32, "uneven": 103}


def test_mt_defects_counts_and_split(data_mt_root):
    all_ = MagneticTile(data_mt_root, "all")
    types = all_.defect_types_list()
    assert {t: types.count(t) for t in MT_COUNTS} == MT_COUNTS and len(all_) == 1344
    train = MagneticTile(data_mt_root, "train")
    test = MagneticTile(data_mt_root, "test")
    assert len(train) == int(0.8 * 952) == 761
    assert len(test) == 191 + 392
    assert train.labels() == [0] * 761
    assert sum(test.labels()) == 392
    train_paths = {str(p) for p, _ in train.samples}
    test_paths = {str(p) for p, _ in test.samples}
    assert not train_paths & test_paths
    assert train_paths | test_paths == {str(p) for p, _ in all_.samples}
    assert train.name == "mt-defects" and train.defect_types == ["blowhole", "break", "crack", "fray", "uneven"]
    # the split is a seeded permutation: same seed same split, other seed other split
    assert [p for p, _ in MagneticTile(data_mt_root, "train", seed=0).samples] == [p for p, _ in train.samples]
    other = MagneticTile(data_mt_root, "train", seed=1)
    assert len(other) == 761 and {str(p) for p, _ in other.samples} != train_paths


def test_mt_defects_items(data_mt_root):
    test = MagneticTile(data_mt_root, "test", image_size=128)
    types = test.defect_types_list()
    picks = [0, 1] + [types.index(t) for t in ("blowhole", "break", "crack", "fray", "uneven")]
    for i in picks:
        item = test[i]
        check_item(item, 128)
        assert item["path"].endswith(".jpg") and Path(item["path"]).is_file()
        assert item["defect_type"] == types[i]
        x = denormalize(item["image"])
        assert torch.allclose(x[0], x[1], atol=1e-5) and torch.allclose(x[1], x[2], atol=1e-5)  # grey source
        if item["label"] == 0:
            assert "MT_Free" in item["path"] and item["mask"].sum() == 0  # MT_Free .png masks are all zero
        else:
            assert item["mask"].sum() > 0
    train = MagneticTile(data_mt_root, "train", image_size=64)
    check_item(train[0], 64)


# ----------------------------------------------------------------------------- MT Defects (fake)
def test_mt_fake_split_and_items(data_fake_mt_root):
    train = MagneticTile(data_fake_mt_root, "train", image_size=16)
    test = MagneticTile(data_fake_mt_root, "test", image_size=16)
    assert len(train) == int(0.8 * 5) == 4 and len(test) == 1 + 5
    assert sorted(set(test.defect_types_list())) == ["blowhole", "break", "crack", "fray", "good", "uneven"]
    for ds in (train, test):
        for i in range(len(ds)):
            check_item(ds[i], 16)
    assert all(test[i]["mask"].sum() > 0 for i in range(1, 6))


def test_mt_missing_folder_shows_layout(data_fake_mt_root):
    import shutil

    shutil.rmtree(data_fake_mt_root / "MT_Crack")
    with pytest.raises(DatasetError, match=r"(?s)MT_Crack.*Expected layout.*MT_Blowhole/Imgs"):
        MagneticTile(data_fake_mt_root, "test")
    with pytest.raises(DatasetError, match="nowhere"):
        MagneticTile(data_fake_mt_root / "nowhere", "train")
    with pytest.raises(ValueError, match="train, test, all"):
        MagneticTile(data_fake_mt_root, "validation")


def test_mt_empty_split_and_missing_mask(data_fake_mt_root):
    for p in (data_fake_mt_root / "MT_Free" / "Imgs").iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match="'train' is empty"):
        MagneticTile(data_fake_mt_root, "train")
    test = MagneticTile(data_fake_mt_root, "test")  # still has the defect images
    assert len(test) == 5
    (data_fake_mt_root / "MT_Fray" / "Imgs" / "d3.png").unlink()
    i = test.defect_types_list().index("fray")
    with pytest.raises(DatasetError, match=r"mask file missing.*d3\.jpg"):
        test[i]


# ----------------------------------------------------------------------------- MVTec AD
def test_mvtec_fake_tree(data_mvtec_root):
    train = MVTecAD(data_mvtec_root, "bottle", "train", image_size=8)
    test = MVTecAD(data_mvtec_root, "bottle", "test", image_size=8)
    assert len(train) == 3 and len(test) == 5
    assert train.name == "mvtec/bottle" and train.split == "train" and train.image_size == 8
    assert train.defect_types == test.defect_types == ["broken_large", "contamination"]
    assert test.labels() == [1, 1, 1, 0, 0]  # sorted defect folders: broken_large, contamination, good
    assert test.defect_types_list() == ["broken_large", "broken_large", "contamination", "good", "good"]
    for ds in (train, test):
        for i in range(len(ds)):
            item = ds[i]
            check_item(item, 8)
            assert (item["mask"].sum() > 0) == (item["label"] == 1)
    contamination = test[2]
    assert contamination["mask"][0, :4].sum() == 4 * 8 and contamination["mask"][0, 4:].sum() == 0
    x = denormalize(contamination["image"])
    assert torch.allclose(x[0], x[2], atol=1e-5)  # grey PNG -> 3 equal channels


def test_mvtec_errors(data_mvtec_root, data_write_png):
    with pytest.raises(ValueError, match=r"'bottel'.*bottle.*zipper"):
        MVTecAD(data_mvtec_root, "bottel", "train")
    assert len(MVTEC_CATEGORIES) == 15
    with pytest.raises(DatasetError, match=r"(?s)cable.*train/good.*download=True"):
        MVTecAD(data_mvtec_root, "cable", "train")
    base = data_mvtec_root / "bottle"
    # missing mask
    (base / "ground_truth" / "broken_large" / "001_mask.png").unlink()
    with pytest.raises(DatasetError, match=r"mask missing.*001\.png.*001_mask\.png"):
        MVTecAD(data_mvtec_root, "bottle", "test")
    # wrong mask size
    data_write_png(base / "ground_truth" / "broken_large" / "001_mask.png", size=(5, 5), mode="L", value=255)
    ds = MVTecAD(data_mvtec_root, "bottle", "test")
    with pytest.raises(DatasetError, match=r"size mismatch.*001\.png.*16x12.*001_mask\.png.*5x5"):
        ds[1]
    # corrupt image
    (base / "test" / "broken_large" / "000.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DatasetError, match=r"cannot read image .*000\.png"):
        ds[0]
    # empty split
    for p in (base / "train" / "good").iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match=r"'train' of 'bottle' is empty"):
        MVTecAD(data_mvtec_root, "bottle", "train")


# ----------------------------------------------------------------------------- MVTec 3D-AD
def test_mvtec3d_fake_tree(data_mvtec3d_root):
    train = MVTec3DRGB(data_mvtec3d_root, "bagel", "train", image_size=8)
    val = MVTec3DRGB(data_mvtec3d_root, "bagel", "validation", image_size=8)
    test = MVTec3DRGB(data_mvtec3d_root, "bagel", "test", image_size=8)
    assert (len(train), len(val), len(test)) == (3, 1, 4)
    assert test.defect_types == ["crack", "hole"] and test.name == "mvtec3d/bagel"
    assert test.defect_types_list() == ["crack", "crack", "good", "hole"]
    assert test.labels() == [1, 1, 0, 1]
    for ds in (train, val, test):
        for i in range(len(ds)):
            item = ds[i]
            check_item(item, 8)
            assert "/rgb/" in item["path"].replace("\\", "/")
            assert (item["mask"].sum() > 0) == (item["label"] == 1)


def test_mvtec3d_errors(data_mvtec3d_root, tmp_path):
    assert len(MVTEC3D_CATEGORIES) == 10 and "cable_gland" in MVTEC3D_CATEGORIES
    with pytest.raises(ValueError, match=r"'donut'.*bagel.*tire"):
        MVTec3DRGB(data_mvtec3d_root, "donut", "train")
    with pytest.raises(DatasetError, match=r"(?s)mvtec-3d-ad.*carrot/.*train/good/rgb"):
        MVTec3DRGB(data_mvtec3d_root, "carrot", "train")
    (data_mvtec3d_root / "bagel" / "test" / "hole" / "gt" / "000.png").unlink()
    with pytest.raises(DatasetError, match=r"mask missing.*hole/rgb/000\.png"):
        MVTec3DRGB(data_mvtec3d_root, "bagel", "test")
    with pytest.raises(DatasetError, match="'validation' of 'tire' is empty"):
        (tmp_path / "m3d" / "tire" / "validation").mkdir(parents=True)
        MVTec3DRGB(tmp_path / "m3d", "tire", "validation")


# ----------------------------------------------------------------------------- build_dataset & roots
def test_build_dataset_dispatch(data_mvtec_root, data_mvtec3d_root, data_fake_mt_root, monkeypatch):
    assert DATASETS == ("synthetic", "mt-defects", "mvtec", "mvtec3d")
    syn = build_dataset("synthetic", "test", category="ring", image_size=32, seed=2, n_test=6)
    assert isinstance(syn, SyntheticDefects) and syn.name == "synthetic/ring" and len(syn) == 6
    assert build_dataset("synthetic", "train").image_size == 64
    mv = build_dataset("mvtec", "test", category="bottle", root=data_mvtec_root)
    assert isinstance(mv, MVTecAD) and mv.image_size == 256 and len(mv) == 5
    m3 = build_dataset("mvtec3d", "train", category="bagel", root=data_mvtec3d_root, image_size=16)
    assert isinstance(m3, MVTec3DRGB) and m3[0]["image"].shape == (3, 16, 16)
    monkeypatch.setenv("DSKD_DATA", str(data_fake_mt_root.parent))
    mt = build_dataset("mt-defects", "train")
    assert isinstance(mt, MagneticTile) and mt.image_size == 128 and mt.root == data_fake_mt_root
    with pytest.raises(ValueError, match=r"'mnist'.*synthetic.*mt-defects.*mvtec.*mvtec3d"):
        build_dataset("mnist", "train")
    with pytest.raises(ValueError, match="category"):
        build_dataset("mvtec", "train")
    monkeypatch.setenv("DSKD_DATA", str(data_mvtec_root.parent))
    with pytest.raises(DatasetError, match="mvtec_3d"):
        build_dataset("mvtec3d", "train", category="tire")


def test_data_root_and_find_magnetic_tile_root(tmp_path, monkeypatch, data_fake_mt_root):
    monkeypatch.setenv("DSKD_DATA", str(tmp_path / "somewhere"))
    assert data_root() == tmp_path / "somewhere"
    monkeypatch.delenv("DSKD_DATA")
    assert data_root() == Path.home() / "dskd_data"
    monkeypatch.setenv("DSKD_DATA", str(data_fake_mt_root.parent))
    assert find_magnetic_tile_root() == data_fake_mt_root
    monkeypatch.setenv("DSKD_DATA", str(tmp_path / "empty"))
    assert find_magnetic_tile_root() is None  # the package looks nowhere else (no project folder is hard-coded)


# ----------------------------------------------------------------------------- download
def test_download_and_extract_local_archive(tmp_path, data_tar_archive, capsys):
    archive, sha256, md5 = data_tar_archive
    out = download_and_extract(archive.as_uri(), tmp_path / "dest", f"sha256:{sha256}", progress=False)
    assert out == tmp_path / "dest"
    assert (out / "pkg" / "a.txt").read_bytes() == b"hello"
    assert (out / "pkg" / "sub" / "b.txt").read_bytes() == b"world" * 100
    assert not (out / "pkg.tar.xz").exists()  # archive removed after extraction
    download_and_extract(archive.as_uri(), tmp_path / "dest2", md5, keep_archive=True, progress=False)
    assert (tmp_path / "dest2" / "pkg" / "a.txt").is_file() and (tmp_path / "dest2" / "pkg.tar.xz").is_file()
    download_and_extract(archive.as_uri(), tmp_path / "dest3", None, progress=False)
    assert sha256 in capsys.readouterr().err  # no checksum: the digest is reported


def test_download_checksum_mismatch(tmp_path, data_tar_archive):
    archive, sha256, _ = data_tar_archive
    wrong = "0" * 64
    with pytest.raises(DatasetError, match=f"expected sha256 {wrong}, got {sha256}"):
        download_and_extract(archive.as_uri(), tmp_path / "dest", wrong, progress=False)
    assert not (tmp_path / "dest" / "pkg").exists()
    assert list((tmp_path / "dest").iterdir()) == []  # nothing half-downloaded left behind
    with pytest.raises(ValueError, match="checksum"):
        download_and_extract(archive.as_uri(), tmp_path / "dest", "crc:zz", progress=False)


def test_download_errors(tmp_path, data_make_tar_xz):
    with pytest.raises(DatasetError, match="download of .*missing.tar.xz failed"):
        download_and_extract((tmp_path / "missing.tar.xz").as_uri(), tmp_path / "d", progress=False)
    evil, sha, _ = data_make_tar_xz(tmp_path / "evil.tar.xz", {"../escape.txt": b"x"})
    with pytest.raises(DatasetError, match="outside"):
        download_and_extract(evil.as_uri(), tmp_path / "d2", sha, progress=False)
    assert not (tmp_path / "escape.txt").exists()


def test_mvtec_download_true_uses_download_and_extract(tmp_path, data_make_mvtec_tree, data_make_tar_xz, monkeypatch):
    """download=True fetches the category archive (here a local one) and then loads it."""
    src = data_make_mvtec_tree(tmp_path / "src", "bottle")
    files = {str(p.relative_to(src)): p.read_bytes() for p in sorted(src.rglob("*.png"))}
    archive, _, _ = data_make_tar_xz(tmp_path / "bottle.tar.xz", files)
    monkeypatch.setitem(D.mvtec.MVTEC_URLS, "bottle", archive.as_uri())
    calls = []
    real = D.mvtec.download_and_extract

    def spy(url, dest, checksum=None, **kw):
        calls.append(url)
        return real(url, dest, checksum, **{**kw, "progress": False})

    monkeypatch.setattr(D.mvtec, "download_and_extract", spy)
    ds = MVTecAD(tmp_path / "root", "bottle", "test", image_size=8, download=True)
    assert calls == [archive.as_uri()] and len(ds) == 5
    MVTecAD(tmp_path / "root", "bottle", "train", download=True)  # present now: no second download
    assert len(calls) == 1
    assert all(u.startswith("https://") and u.endswith(f"/{c}.tar.xz") for c, u in D.mvtec.MVTEC_URLS.items() if c != "bottle")
    assert set(D.mvtec.MVTEC_URLS) == set(MVTEC_CATEGORIES)


def test_synthetic_same_items_in_dataloader_workers():
    """Items drawn in worker processes equal those drawn in the main process."""
    ds = SyntheticDefects("grid", "test", image_size=32, n_test=8, cache=False)
    batches = list(DataLoader(ds, batch_size=2, num_workers=2))
    images = torch.cat([b["image"] for b in batches])
    assert torch.equal(images, torch.stack([ds[i]["image"] for i in range(8)]))


def test_every_real_mt_defects_mask_loads_and_the_odd_ones_say_so(data_mt_root):
    """MT Defects' masks are 0/255 except four MT_Uneven ones holding only {0, 2}: those read as empty (as the
    8-bit threshold always read them), each with a warning; none raises."""
    import warnings

    from dskd.data.transforms import MaskValuesWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MaskValuesWarning)
        test = MagneticTile(data_mt_root, "test", image_size=128)
        masks = [load_mask(test.mask_path(i), 128) for i in range(len(test)) if test.labels()[i] == 1]
    odd = [w for w in caught if issubclass(w.category, MaskValuesWarning)]
    # after the nearest resize to 128 px some of the four keep a value 2 (a warning), the others only zeros
    assert len(masks) == 392 and 1 <= len(odd) <= 4 and all("MT_Uneven" in str(w.message) for w in odd)
    assert sum(1 for m in masks if m.sum() == 0) >= 4  # and a few tiny defects vanish in the resize
