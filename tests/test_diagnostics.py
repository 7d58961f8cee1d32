"""dskd.diagnostics: BatchNorm's running statistics against the batch statistics of a trained model."""
import pytest
import torch
from torch import nn

from dskd import TrainConfig, dataset_for
from dskd.diagnostics import batchnorm_drift, mode_losses, recompute_batchnorm_statistics
from dskd.training import train


@pytest.fixture(scope="module")
def setting():
    cfg = TrainConfig.quick(teacher="random", n_train=32, image_size=64)
    torch.manual_seed(0)
    data = dataset_for(cfg, "train")
    images = torch.stack([data[i]["image"] for i in range(8)])
    # exact running statistics, then S_d's variances 250 times too small: what a two-block DFE run showed
    # after 40 epochs (its activations had outgrown the running averages)
    trained = train(cfg.replace(epochs=3), progress=False).model
    model = recompute_batchnorm_statistics(trained, data, batch_size=8)
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d) and name.startswith("students.decoder"):
            m.running_var /= 250
    return cfg, model, data, images


def test_stale_running_statistics_show_as_an_eval_mode_loss_above_the_training_mode_one(setting):
    cfg, model, data, images = setting
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = mode_losses(model, images, cfg)
    assert losses["eval_over_train"] == pytest.approx(losses["eval"] / losses["train"])
    assert losses["eval_over_train"] > 1.5, losses
    drift = batchnorm_drift(model, images)
    assert drift and all(not name.startswith("teacher") for name in drift)
    assert list(drift.values()) == sorted(drift.values(), reverse=True)
    assert max(drift.values()) > 10  # some layer's input varies far more than its running variance says
    after = model.state_dict()  # measuring changed nothing, running statistics included
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_recomputed_statistics_make_eval_mode_the_network_training_mode_was(setting):
    cfg, model, data, images = setting
    fixed = recompute_batchnorm_statistics(model, data, batch_size=8)
    assert not fixed.training and fixed is not model
    losses = mode_losses(fixed, images, cfg)
    assert losses["eval_over_train"] < 1.2, losses
    drift = batchnorm_drift(fixed, images)
    assert max(drift.values()) < 3
    # no weight changed, only the running statistics; the teacher's untouched; momentum as it was
    old, new = model.state_dict(), fixed.state_dict()
    weights = [k for k in old if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert all(torch.equal(old[k], new[k]) for k in weights)
    assert all(torch.equal(old[k], new[k]) for k in old if k.startswith("teacher"))
    assert all(m.momentum == 0.1 for m in fixed.modules() if isinstance(m, nn.BatchNorm2d))


def test_bad_input_is_refused_with_what_was_expected(setting):
    cfg, model, data, images = setting
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        mode_losses(model, images[0], cfg)
    with pytest.raises(ValueError, match="at least 2 images"):
        mode_losses(model, images[:1], cfg)
    with pytest.raises(ValueError, match="batch_size must be at least 2"):
        recompute_batchnorm_statistics(model, data, batch_size=1)
