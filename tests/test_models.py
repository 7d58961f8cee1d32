import pytest
import torch
import torchvision
from torchvision.models import ResNet18_Weights

from dskd.models import (
    DSKD, STRUCTURES, DeepFeatureEmbedding, LastLayerEmbedding, StudentDecoder, StudentEncoder,
    TeacherPyramid, TeacherWeightsError, teacher_weights_from_name,
)
from dskd.losses import dskd_loss


@pytest.mark.parametrize("size", [128, 256])
def test_pyramid_shapes_match_the_paper(size):
    x = torch.randn(2, 3, size, size)
    out = DSKD("DS", teacher_weights=None)(x)
    expected = [(2, 64, size // 4, size // 4), (2, 128, size // 8, size // 8), (2, 256, size // 16, size // 16)]
    for pyramid in out:
        assert [tuple(f.shape) for f in pyramid] == expected


def test_dfe_and_no_dfe_give_the_decoder_the_same_shape():
    x = torch.randn(2, 3, 128, 128)
    feats = StudentEncoder()(x)
    assert DeepFeatureEmbedding()(feats).shape == (2, 512, 4, 4)
    assert LastLayerEmbedding()(feats).shape == (2, 512, 4, 4)
    assert [f.shape[1] for f in StudentDecoder()(torch.randn(2, 512, 4, 4))] == [64, 128, 256]


def test_forward_returns_the_same_structure_in_train_and_eval():
    model = DSKD("T-E", teacher_weights=None)
    x = torch.randn(2, 3, 64, 64)
    train_out = model.train()(x)
    eval_out = model.eval()(x)
    assert type(train_out) is type(eval_out)
    assert train_out._fields == ("teacher", "encoder", "decoder")
    assert train_out.decoder is None and eval_out.decoder is None


@pytest.mark.parametrize("structure", STRUCTURES)
def test_only_students_receive_gradients(structure):
    model = DSKD(structure, teacher_weights=None).train()
    out = model(torch.randn(2, 3, 64, 64))
    dskd_loss(model.loss_pairs(out)).backward()
    if model.teacher is not None:
        assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
        assert not model.teacher.training  # stays in eval mode through .train()
    students = [p for n, p in model.named_parameters() if not n.startswith("teacher.")]
    assert students and all(p.grad is not None for p in students)


def test_teacher_batchnorm_statistics_do_not_move():
    teacher = TeacherPyramid(None)
    before = teacher.bn1.running_mean.clone()
    parent = torch.nn.Sequential(teacher).train()
    parent(torch.randn(4, 3, 64, 64) * 5 + 3)
    torch.testing.assert_close(teacher.bn1.running_mean, before)


def test_teacher_loads_a_local_state_dict(tmp_path):
    resnet = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(resnet.state_dict(), path)
    teacher = TeacherPyramid(path)
    torch.testing.assert_close(teacher.layer3[0].conv1.weight, resnet.layer3[0].conv1.weight)
    assert "resnet18.pth" in teacher.weights_description and "sha256" in teacher.weights_description


def test_teacher_imagenet_weights_come_from_the_torch_cache(tmp_path, monkeypatch):
    # torchvision's real loading path, fed from a local cache file instead of the network
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    resnet = torchvision.models.resnet18(weights=None)
    url = ResNet18_Weights.IMAGENET1K_V1.url
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(resnet.state_dict(), cache / url.rsplit("/", 1)[-1])
    teacher = TeacherPyramid("imagenet")
    torch.testing.assert_close(teacher.conv1.weight, resnet.conv1.weight)
    assert teacher.weights_description.startswith("ImageNet")


def test_failed_download_names_the_choices(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    import torchvision.models._api as api

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(TeacherWeightsError, match="imagenet.*state_dict.*offline-pretrained.*random"):
        TeacherPyramid(ResNet18_Weights.IMAGENET1K_V1)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(TeacherWeightsError, match="does not exist"):
        TeacherPyramid(tmp_path / "nope.pth")


def test_offline_teacher_loads_the_shipped_file_and_checks_its_checksum(tmp_path, monkeypatch):
    import dskd.models.teacher as teacher_module

    resnet = torchvision.models.resnet18(weights=None)
    path = tmp_path / "offline.pt"
    torch.save({k: v for k, v in resnet.state_dict().items() if not k.startswith(("layer4", "fc"))}, path)
    monkeypatch.setattr(teacher_module, "OFFLINE_TEACHER_PATH", path)
    monkeypatch.setattr(teacher_module, "OFFLINE_TEACHER_SHA256", teacher_module.file_sha256(path, 64))
    assert teacher_weights_from_name("offline-pretrained") == "offline-pretrained"
    teacher = TeacherPyramid("offline-pretrained")
    torch.testing.assert_close(teacher.layer2[0].conv1.weight, resnet.layer2[0].conv1.weight)
    assert teacher.weights_description.startswith("offline-pretrained (no ImageNet; sha256 ")
    monkeypatch.setattr(teacher_module, "OFFLINE_TEACHER_SHA256", "0" * 64)
    with pytest.raises(TeacherWeightsError, match="does not have the recorded SHA-256"):
        TeacherPyramid("offline-pretrained")
    monkeypatch.setattr(teacher_module, "OFFLINE_TEACHER_PATH", tmp_path / "gone.pt")
    with pytest.raises(TeacherWeightsError, match="missing from this installation.*pretrain-teacher"):
        TeacherPyramid("offline-pretrained")


def test_offline_default_builds_the_offline_pretrained_teacher(monkeypatch):
    # the Makefile's and the test suite's offline default: a config naming no teacher gets the shipped one
    from dskd.config import TrainConfig
    from dskd.training import build_model

    monkeypatch.setenv("DSKD_TEACHER", "offline-pretrained")
    cfg = TrainConfig.quick()
    assert cfg.teacher == "offline-pretrained"
    assert build_model(cfg).teacher_description.startswith("offline-pretrained (no ImageNet; sha256 ")


def test_the_choices_name_the_offline_teacher_and_its_environment_variable(tmp_path):
    with pytest.raises(TeacherWeightsError) as err:
        TeacherPyramid(tmp_path / "nope.pth")
    assert "teacher='offline-pretrained' (or DSKD_TEACHER=offline-pretrained)" in str(err.value)
    assert "not the paper's teacher" in str(err.value) and "teacher='random'" in str(err.value)


def test_random_teacher_says_so():
    assert DSKD("DS", teacher_weights=None).teacher_description.startswith("random")
    assert teacher_weights_from_name("random") is None
    with pytest.raises(ValueError, match="unknown teacher"):
        teacher_weights_from_name("imagenett")


def test_unknown_structure_is_rejected():
    with pytest.raises(ValueError, match="unknown structure 'DD'"):
        DSKD("DD", teacher_weights=None)


def test_structures_wire_the_right_networks():
    x = torch.randn(1, 3, 64, 64)
    td = DSKD("T-D", teacher_weights=None).eval()
    out = td(x)
    # T-D decodes the teacher's own embedding
    torch.testing.assert_close(out.decoder.conv2_x, td.decoder(td.embedding(td.teacher(x))).conv2_x)
    ed = DSKD("E-D", teacher_weights=None)
    assert ed.teacher is None and ed.inference_pair(ed.eval()(x))[0] is not None
