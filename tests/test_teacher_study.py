"""dskd.teacher_study (chapter 16): teachers at hand only, the nearest-normal-patch view, the recorded comparisons;
and the chapter itself with an offline teacher and real (tiny) result files."""
import importlib.util
import json
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torchvision

import dskd.models.teacher as teacher_module
from dskd.ablation import run_study, summarize
from dskd.config import TrainConfig
from dskd.pretrain import PretrainConfig, pretrain_teacher, save_teacher
from dskd.teacher_study import (
    GOAL_IMAGE_AUROC, candidate_rows, goal_status, imagenet_cache_file, nearest_normal_distance, patch_embeddings,
    per_defect_type_summary, teacher_at_hand,
)

REPO = Path(__file__).resolve().parents[1]
CHAPTER = REPO / "notebooks" / "16_teacher_knowledge.ipynb"
TINY_PRETRAIN = PretrainConfig(n_categories=3, per_category=2, image_size=32, epochs=1, batch_size=4)


@pytest.fixture
def offline_teacher(tmp_path, monkeypatch):
    """A real (tiny) offline-pretrained teacher in place of the shipped file, checksum recorded."""
    path = save_teacher(*pretrain_teacher(TINY_PRETRAIN, progress=False), tmp_path / "offline" / "offline.pt")
    monkeypatch.setattr(teacher_module, "OFFLINE_TEACHER_PATH", path)
    monkeypatch.setattr(teacher_module, "OFFLINE_TEACHER_SHA256", teacher_module.file_sha256(path, 64))
    return path


def test_imagenet_is_never_downloaded_when_the_cache_lacks_it(tmp_path, monkeypatch):
    from torchvision.models import ResNet18_Weights

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_download(*args, **kwargs):
        raise AssertionError("teacher_at_hand tried to download the ImageNet weights")

    monkeypatch.setattr(ResNet18_Weights, "get_state_dict", no_download)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    status = teacher_at_hand("imagenet")
    assert not status.available and status.teacher is None
    assert "not in the torch cache" in status.message and str(tmp_path / "hub" / "checkpoints") in status.message
    assert "IMAGENET1K_V1" in status.message and "download" in status.short


def test_imagenet_weights_in_the_cache_are_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    resnet = torchvision.models.resnet18(weights=None)
    imagenet_cache_file().parent.mkdir(parents=True)
    torch.save(resnet.state_dict(), imagenet_cache_file())
    status = teacher_at_hand("imagenet")
    assert status.available and status.message.startswith("ImageNet")
    torch.testing.assert_close(status.teacher.layer3[1].conv2.weight, resnet.layer3[1].conv2.weight)


def test_offline_teacher_missing_names_the_command_and_present_loads(tmp_path, monkeypatch, offline_teacher):
    status = teacher_at_hand("offline-pretrained")
    assert status.available and status.message.startswith("offline-pretrained (no ImageNet; sha256 ")
    monkeypatch.setattr(teacher_module, "OFFLINE_TEACHER_PATH", tmp_path / "gone.pt")
    status = teacher_at_hand("offline-pretrained")
    assert not status.available and "dskd pretrain-teacher" in status.message and "dskd pretrain-teacher" in status.short
    assert teacher_at_hand("random").message.startswith("random")
    with pytest.raises(ValueError, match="unknown teacher 'resnet50'"):
        teacher_at_hand("resnet50")


def test_patch_embeddings_normalise_each_level_on_conv3_grid():
    torch.manual_seed(0)
    teacher = teacher_module.TeacherPyramid(None)
    e = patch_embeddings(teacher, torch.randn(3, 3, 64, 64), batch_size=2)
    assert e.shape == (3, 64 + 128 + 256, 8, 8)
    norms = [e[:, a:b].norm(dim=1) for a, b in ((0, 64), (64, 192), (192, 448))]
    torch.testing.assert_close(norms[1], torch.ones_like(norms[1]))  # conv3_x: unit length, untouched
    assert float(norms[0].max()) <= 1 + 1e-5 and float(norms[2].max()) <= 1 + 1e-5  # averages of unit vectors
    with pytest.raises(ValueError, match=r"expected images \(N, 3, H, W\)"):
        patch_embeddings(teacher, torch.randn(3, 64, 64))


def test_nearest_normal_distance_matches_a_brute_force_oracle():
    torch.manual_seed(1)
    teacher = teacher_module.TeacherPyramid(None)
    normal, test = torch.randn(4, 3, 64, 64), torch.randn(3, 3, 64, 64)
    test[0] = normal[2]  # a normal image: every patch has itself in the bank
    maps, scores = nearest_normal_distance(teacher, normal, test, chunk=50)
    bank = patch_embeddings(teacher, normal).permute(0, 2, 3, 1).reshape(-1, 448)
    q = patch_embeddings(teacher, test).permute(0, 2, 3, 1).reshape(-1, 448)
    oracle = torch.cdist(q.double(), bank.double()).min(1).values.view(3, 8, 8).float()
    torch.testing.assert_close(maps, oracle, rtol=1e-3, atol=2e-3)
    assert float(maps[0].max()) < 2e-3 and float(maps[1:].min()) > 0.01
    torch.testing.assert_close(scores, maps.flatten(1).amax(1))


def _records(tmp_path, monkeypatch, offline_teacher):
    """Real, tiny result files: the candidates script and the teacher study on synthetic data."""
    monkeypatch.setenv("DSKD_CACHE", str(tmp_path / "cache"))
    spec = importlib.util.spec_from_file_location("teacher_candidates", REPO / "benchmarks" / "teacher_candidates.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    results = tmp_path / "results"
    cand = results / "teacher" / "candidates.json"
    assert mod.main(["random", "offline-pretrained", "--dataset", "synthetic", "--image-size", "32", "--ds-epochs",
                     "1", "--out", str(cand)]) == 0
    tiny = TrainConfig.quick(image_size=32, epochs=1, n_train=16, n_test=12, batch_size=8)
    data = run_study("teacher", tiny, variants=["offline-pretrained", "random"], seeds=[0, 1],
                     out_dir=tmp_path / "ablations", progress=False)
    study = results / "ablations" / "mt-defects" / "teacher.json"  # where the chapter looks for it
    study.parent.mkdir(parents=True)
    shutil.copy(data["path"], study)
    # the same study at a longer budget, in the folder where the chapter looks for its 40-epoch version
    longer = run_study("teacher", tiny.replace(epochs=2), variants=["offline-pretrained", "random"], seeds=[0, 1],
                       out_dir=tmp_path / "ablations-longer", progress=False)
    (results / "ablations-40-epochs" / "mt-defects").mkdir(parents=True)
    shutil.copy(longer["path"], results / "ablations-40-epochs" / "mt-defects" / "teacher.json")
    return results, json.loads(cand.read_text())["records"], data, longer


@pytest.mark.slow
def test_recorded_rows_goal_and_the_chapter_on_real_records(tmp_path, monkeypatch, offline_teacher):
    from notebook_runner import execute

    results, cand_records, study, longer = _records(tmp_path, monkeypatch, offline_teacher)
    rows = {r["candidate"]: r for r in candidate_rows(cand_records)}
    assert rows["random"]["recipe"] == "none" and rows["offline-pretrained"]["recipe"] == "fractal"
    assert rows["offline-pretrained"]["pretrain_seconds"] > 0 and rows["random"]["ds_epochs"] == 1
    assert 0.0 <= rows["offline-pretrained"]["ds_image_auroc"] <= 1.0
    summary = summarize(study["records"], "teacher")
    goal = goal_status(summary)
    offline = next(r for r in summary if r["variant"] == "offline-pretrained")
    assert goal["value"] == offline["image_auroc"] and goal["n_seeds"] == 2 and goal["goal"] == GOAL_IMAGE_AUROC
    assert goal["met"] == (offline["image_auroc"] >= 0.8) and goal_status(summary, variant="imagenet") is None
    per_type = per_defect_type_summary(study["records"])
    some_type = sorted(per_type["random"])[0]
    values = [r["per_defect_type"][some_type]["image_auroc"] for r in study["records"] if r["variant"] == "random"]
    assert per_type["random"][some_type] == pytest.approx((np.mean(values), np.std(values, ddof=1), 2))

    # the chapter, pointed at these files and at the temporary offline teacher
    nb = nbformat.read(CHAPTER, as_version=4)
    imports = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "RESULTS = results_root()" in c.source)
    nb.cells[imports].source = nb.cells[imports].source.replace("RESULTS = results_root()",
                                                                f"RESULTS = Path({str(results)!r})")
    nb.cells.insert(imports + 1, nbformat.v4.new_code_cell(
        "from dskd.models import teacher as teacher_module\n"
        f"teacher_module.OFFLINE_TEACHER_PATH = Path({str(offline_teacher)!r})\n"
        f"teacher_module.OFFLINE_TEACHER_SHA256 = {teacher_module.OFFLINE_TEACHER_SHA256!r}"))
    copy = tmp_path / "chapter" / CHAPTER.name
    copy.parent.mkdir()
    nbformat.write(nb, copy)
    (tmp_path / "executed").mkdir()
    run = execute(copy, tmp_path / "executed")
    assert run.error is None, run.error[-3000:]
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/markdown", "")
                     for c in run.notebook.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "MISSING" not in text and "offline-pretrained: available" in text
    assert f"{rows['offline-pretrained']['knn_image_auroc']:.3f}" in text
    # the goal is judged at the longer budget; the shorter one is quoted beside it
    long_summary = summarize(longer["records"], "teacher")
    long_goal = goal_status(long_summary)
    long_random = next(r for r in long_summary if r["variant"] == "random")
    assert "**The same study at 40 epochs.**" in text
    assert (f"Measured: {long_goal['value']:.3f} ± {long_goal['std']:.3f} over 2 seed(s), 2 epochs" in text
            and f"Goal met: {'yes' if long_goal['met'] else 'no'}" in text)
    assert f"reaches {long_random['image_auroc']:.3f} ± {long_random['image_auroc_std']:.3f} over 2 seed(s)" in text
    assert f"At 1 epochs the same teacher gave {offline['image_auroc']:.3f} ± {offline['image_auroc_std']:.3f}" in text
    gap1 = offline["image_auroc"] - next(r for r in summary if r["variant"] == "random")["image_auroc"]
    assert f"from {gap1:.3f} to {long_goal['value'] - long_random['image_auroc']:.3f}" in text
    assert "patch 1-NN image AUROC" in text and text.count("NOT AVAILABLE") <= 1  # only ImageNet may be missing
