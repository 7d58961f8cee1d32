"""Is a trained model the same network in eval mode as in training? BatchNorm's running statistics.

In training mode BatchNorm normalises with each batch's own statistics; in eval mode (inference, the
metrics) with running averages collected during training. If the activations changed faster than those
averages followed, the eval-mode network is not the one the loss trained, and its anomaly maps are
worse than the training loss promises. :func:`mode_losses` measures the gap on training images (the loss
of Eq. 7 in both modes), :func:`batchnorm_drift` names the layers where it comes from, and
:func:`recompute_batchnorm_statistics` replaces the running averages by exact ones over a data set
(as ``torch.optim.swa_utils.update_bn`` does), without changing a weight.
"""
from __future__ import annotations

import copy
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .config import TrainConfig
from .losses import dskd_loss
from .models import DSKD


def _student_batchnorms(model: DSKD) -> dict[str, nn.BatchNorm2d]:
    return {n: m for n, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not n.startswith("teacher")}


def mode_losses(model: DSKD, images: Tensor, cfg: TrainConfig) -> dict[str, float]:
    """The training loss (Eq. 7 over the structure's pairs) of ``images`` with BatchNorm in training mode
    (batch statistics) and in eval mode (running statistics), and their ratio. ``model`` is not changed
    (the training-mode forward runs on a copy, whose running statistics it would update)."""
    if images.dim() != 4:
        raise ValueError(f"expected a (B, 3, H, W) batch of images, got shape {tuple(images.shape)}")
    if images.shape[0] < 2:
        raise ValueError("training-mode BatchNorm needs a batch of at least 2 images")
    out: dict[str, float] = {}
    for mode in ("train", "eval"):
        net = copy.deepcopy(model)
        net.train(mode == "train")
        with torch.no_grad():
            loss = dskd_loss(net.loss_pairs(net(images)), cfg.lam, cfg.normalization, cfg.loss_form)
        out[mode] = float(loss)
    out["eval_over_train"] = out["eval"] / out["train"] if out["train"] > 0 else float("inf")
    return out


def batchnorm_drift(model: DSKD, images: Tensor) -> dict[str, float]:
    """For each student BatchNorm layer, the median over channels of (variance of its input over
    ``images``) / (its running variance): near 1 where the running statistics fit, far above 1 where the
    activations outgrew them (the median, so that a dead channel with a near-zero variance does not
    decide). Sorted, largest first."""
    ratios: dict[str, float] = {}
    layers = _student_batchnorms(model)

    def hook(name: str):
        def record(module: nn.BatchNorm2d, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            var = inputs[0].float().var(dim=(0, 2, 3))
            ratios[name] = float((var / (module.running_var + module.eps)).median())
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in layers.items()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(images)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return dict(sorted(ratios.items(), key=lambda kv: -kv[1]))


def recompute_batchnorm_statistics(model: DSKD, data: Dataset, batch_size: int = 16) -> DSKD:
    """A copy of ``model`` whose student BatchNorm running statistics are the exact mean and variance over
    ``data`` (one pass, training mode, no gradient; the teacher's are left alone), in eval mode."""
    if batch_size < 2:
        raise ValueError(f"batch_size must be at least 2 for training-mode BatchNorm, got {batch_size}")
    net = copy.deepcopy(model)
    layers = _student_batchnorms(net)
    if not layers:
        raise ValueError("the model has no student BatchNorm layers")
    momenta = {n: m.momentum for n, m in layers.items()}
    for m in layers.values():
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over all batches
    net.train()
    device = next(net.parameters()).device
    with torch.no_grad():
        for batch in DataLoader(data, batch_size=batch_size, shuffle=False, drop_last=True):
            net(batch["image"].to(device))  # the data sets yield dicts, as evaluation reads them
    for n, m in layers.items():
        m.momentum = momenta[n]
    return net.eval()
