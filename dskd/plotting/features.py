"""Feature figures (chapters 2 and 3): the teacher's pyramid, its first-layer filters, and the
teacher-student discrepancy maps of Eq. (6).

Every function draws tensors it is given (a :class:`dskd.models.Pyramid`, a weight, maps); none runs
a network. Images are ImageNet-normalised ``(3, H, W)`` tensors, as the data sets return them.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .data import MASK_COLOR
from .style import FEATURE_CMAP, MAP_CMAP, clean_axes, dskd_style, provenance_title, to_numpy_image

#: the paper's names of the pyramid levels, in the order of :class:`dskd.models.Pyramid`
LEVEL_NAMES = ("conv2_x", "conv3_x", "conv4_x")


def _level(pyramid: Sequence[torch.Tensor], layer: str) -> tuple[int, torch.Tensor]:
    if layer not in LEVEL_NAMES:
        raise ValueError(f"unknown layer {layer!r}: expected one of {LEVEL_NAMES}")
    k = LEVEL_NAMES.index(layer)
    f = pyramid[k]
    if f.dim() == 4:
        if f.shape[0] != 1:
            raise ValueError(f"expected the features of one image, got a batch of {f.shape[0]}")
        f = f[0]
    if f.dim() != 3:
        raise ValueError(f"expected a (C, h, w) or (1, C, h, w) feature map, got shape {tuple(f.shape)}")
    return k, f.detach().cpu().float()


def top_variance_channels(feature: torch.Tensor, n: int) -> list[int]:
    """The ``n`` channels of a (C, h, w) map with the largest spatial variance (the most structured)."""
    return feature.flatten(1).var(dim=1).argsort(descending=True)[:n].tolist()


def plot_feature_pyramid(
    image: torch.Tensor,
    pyramid: Sequence[torch.Tensor],
    *,
    teacher: str,
    data: str,
    n_channels: int = 4,
    receptive_fields: Optional[Sequence[int]] = None,
    title: str = "What each level of the teacher's pyramid sees",
) -> Figure:
    """One row per level (conv2_x, conv3_x, conv4_x): the image, then ``n_channels`` channel maps.

    The channels shown are each level's most structured ones (largest spatial variance). With
    ``receptive_fields`` (pixels, one per level) the image of each row carries a square the size of
    the receptive field of the level's central unit. Each map has its own colour scale.
    """
    img = to_numpy_image(image)
    H, W = img.shape[:2]
    with dskd_style():
        fig, axes = plt.subplots(3, n_channels + 1, figsize=(1.75 * (n_channels + 1) + 0.4, 5.9),
                                 squeeze=False, layout="constrained")
        for k, name in enumerate(LEVEL_NAMES):
            _, f = _level(pyramid, name)
            c, h, w = f.shape
            ax = axes[k, 0]
            ax.imshow(img)
            if receptive_fields is not None:
                rf = receptive_fields[k]
                stride = H / h
                cy, cx = (h // 2 + 0.5) * stride, (w // 2 + 0.5) * stride
                ax.add_patch(Rectangle((cx - rf / 2, cy - rf / 2), rf, rf, fill=False, ec="red", lw=1.5))
                ax.plot([cx], [cy], "r+", ms=6)
                ax.set_xlim(-0.5, W - 0.5)
                ax.set_ylim(H - 0.5, -0.5)
                more = " > image" if rf >= max(H, W) else ""
                ax.set_title(f"RF of one unit: {rf} px{more}", fontsize=8)
            ax.set_ylabel(f"{name}\n{c} ch @ {h}x{w}\nstride {H // h}", fontsize=9)
            for j, ch in enumerate(top_variance_channels(f, n_channels)):
                axes[k, j + 1].imshow(f[ch].numpy(), cmap=FEATURE_CMAP)
                axes[k, j + 1].set_title(f"channel {ch}", fontsize=8)
        clean_axes(axes)
        fig.suptitle(provenance_title(f"{title} ({H}x{W} input; bright = strong response)", teacher, data))
    return fig


def plot_feature_channel(
    image: torch.Tensor,
    pyramid: Sequence[torch.Tensor],
    layer: str = "conv3_x",
    channel: int = 0,
    *,
    teacher: str,
    data: str,
) -> Figure:
    """One channel of one level for one image: the image, the channel at its own resolution (axes in
    feature-map cells) and the channel upsampled bilinearly onto the image."""
    _, f = _level(pyramid, layer)
    c, h, w = f.shape
    if not 0 <= int(channel) < c:
        raise ValueError(f"channel {channel} out of range: {layer} has {c} channels (0..{c - 1})")
    fmap = f[int(channel)]
    img = to_numpy_image(image)
    H, W = img.shape[:2]
    up = F.interpolate(fmap[None, None], size=(H, W), mode="bilinear", align_corners=False)[0, 0].numpy()
    with dskd_style():
        fig, axes = plt.subplots(1, 3, figsize=(10.0, 4.1), layout="constrained")
        axes[0].imshow(img)
        axes[0].set_title(f"input, {H}x{W} px")
        clean_axes(axes[0])
        im = axes[1].imshow(fmap.numpy(), cmap=FEATURE_CMAP)
        axes[1].set_title(f"{layer}, channel {channel} ({h}x{w} cells)")
        axes[1].set_xlabel("feature column j")
        axes[1].set_ylabel("feature row i")
        axes[1].grid(False)
        fig.colorbar(im, ax=axes[1], shrink=0.8, label="activation (a.u.)")
        axes[2].imshow(img)
        axes[2].imshow(up, cmap=FEATURE_CMAP, alpha=0.6)
        axes[2].set_title(f"upsampled x{H // h} onto the image")
        clean_axes(axes[2])
        fig.suptitle(provenance_title("One feature channel", teacher, data))
    return fig


def plot_conv1_filters(weight: torch.Tensor, *, teacher: str, n_cols: int = 16) -> Figure:
    """The first convolution's filters (64, 3, 7, 7) as RGB tiles, each scaled to its own range
    (grey = 0, saturated = the filter's largest weight)."""
    w = weight.detach().cpu().float()
    if w.dim() != 4 or w.shape[1] != 3:
        raise ValueError(f"expected a (C_out, 3, k, k) weight, got shape {tuple(w.shape)}")
    n = w.shape[0]
    n_rows = int(np.ceil(n / n_cols))
    scale = w.flatten(1).abs().amax(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    tiles = (0.5 + 0.5 * w / scale).permute(0, 2, 3, 1).numpy()
    with dskd_style():
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(0.55 * n_cols + 0.4, 0.55 * n_rows + 0.9),
                                 squeeze=False, layout="constrained")
        for i, ax in enumerate(axes.flat):
            if i < n:
                ax.imshow(tiles[i], interpolation="nearest")
            ax.set_axis_off()
        k = w.shape[-1]
        fig.suptitle(f"conv1 filters: {n} x (3 x {k} x {k}), shown as RGB (grey = 0)\nteacher: {teacher}", fontsize=10)
    return fig


def plot_discrepancy_maps(
    images: torch.Tensor,
    level_maps: Sequence[torch.Tensor],
    total_maps: torch.Tensor,
    masks: Optional[torch.Tensor] = None,
    *,
    row_labels: Sequence[str],
    teacher: str,
    data: str,
    title: str = "Teacher-student discrepancy",
) -> Figure:
    """Rows: images. Columns: the image (mask outlined in red), the per-level maps M^k of Eq. (6) at
    their own resolution, and the full map of Eq. (8)-(9) (sum of the upsampled levels, Gaussian
    filter; the mask outlined in dashed cyan). Each column has one colour scale shared by all rows, so rows compare directly."""
    n = len(images)
    if len(row_labels) != n:
        raise ValueError(f"got {len(row_labels)} row labels for {n} images")
    cols = [(f"M^{k + 1}: {LEVEL_NAMES[k]}", m) for k, m in enumerate(level_maps)]
    cols.append(("Eq. 8-9: full map" + (" (cyan: mask)" if masks is not None else ""), total_maps))
    with dskd_style():
        fig, axes = plt.subplots(n, len(cols) + 1, figsize=(1.95 * (len(cols) + 1) + 0.5, 1.95 * n + 1.4),
                                 squeeze=False, layout="constrained")
        for i in range(n):
            axes[i, 0].imshow(to_numpy_image(images[i]))
            if masks is not None and masks[i].any():
                axes[i, 0].contour(masks[i].squeeze().cpu().numpy(), levels=[0.5], colors=[MASK_COLOR], linewidths=1)
            axes[i, 0].set_ylabel(row_labels[i], fontsize=9)
        axes[0, 0].set_title("image (red: mask)", fontsize=9)
        for j, (name, maps) in enumerate(cols, start=1):
            arr = maps.detach().cpu().float().numpy()
            vmin, vmax = 0.0, float(arr.max())
            for i in range(n):
                im = axes[i, j].imshow(arr[i], cmap=MAP_CMAP, vmin=vmin, vmax=vmax)
                if j == len(cols) and masks is not None and masks[i].any():  # the full map: outline the mask
                    axes[i, j].contour(masks[i].squeeze().cpu().numpy(), levels=[0.5], colors=["cyan"],
                                       linewidths=0.8, linestyles="dashed")
            h, w = arr.shape[-2:]
            axes[0, j].set_title(f"{name}\n({h}x{w})", fontsize=9)
            fig.colorbar(im, ax=axes[:, j].tolist(), location="bottom", shrink=0.9, pad=0.02,
                         label="M (Eq. 6)" if j < len(cols) else "score (Eq. 9)")
        clean_axes(axes)
        fig.suptitle(provenance_title(title, teacher, data))
    return fig


def plot_score_histograms(
    groups: "dict[str, dict[str, torch.Tensor | np.ndarray]]",
    *,
    teacher: str,
    data: str,
    xlabel: str = "anomaly map value (Eq. 9)",
    title: str = "Map values on normal and defective pixels",
    bins: int = 40,
) -> Figure:
    """One panel per outer key (e.g. "untrained", "trained"), each with one density histogram per inner
    key (e.g. "normal pixels", "defective pixels"). All panels share the bins and the x axis."""
    if not groups or any(not g for g in groups.values()):
        raise ValueError("groups must map panel names to non-empty {label: values} dicts")
    arrays = {p: {k: np.asarray(torch.as_tensor(v).detach().cpu().float().flatten()) for k, v in g.items()}
              for p, g in groups.items()}
    allv = np.concatenate([v for g in arrays.values() for v in g.values()])
    edges = np.linspace(float(allv.min()), float(allv.max()), bins + 1)
    with dskd_style():
        fig, axes = plt.subplots(1, len(arrays), figsize=(4.2 * len(arrays) + 0.4, 3.4), sharex=True,
                                 squeeze=False, layout="constrained")
        for ax, (panel, g) in zip(axes[0], arrays.items()):
            for label, v in g.items():
                ax.hist(v, bins=edges, density=True, alpha=0.55, label=f"{label} (mean {v.mean():.2f})")
            ax.set_title(panel)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("density")
            ax.legend(fontsize=8)
        fig.suptitle(provenance_title(title, teacher, data))
    return fig
