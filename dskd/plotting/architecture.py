"""Architecture diagrams: the DFE's data flow (Fig. 4), the DSKD structures (Fig. 3 and Fig. 8) and
parameter budgets (Table 6). Diagrams are drawn from the package's constants, so they change with it."""
from __future__ import annotations

from typing import Collection, Mapping, Optional

from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch, Patch

from ..models.dskd import INFERENCE_PAIR, LOSS_PAIRS, STRUCTURES
from ..models.embedding import EMBEDDING_CHANNELS
from ..models.pyramid import PYRAMID_CHANNELS, PYRAMID_STRIDES
from .style import dskd_style

#: one fill colour per network, shared by every architecture figure
NETWORK_COLORS = {
    "teacher": "#c6dbef",
    "encoder": "#fdd0a2",
    "embedding": "#c7e9c0",
    "decoder": "#fcbba1",
}
#: the symbols the paper uses
NETWORK_SYMBOLS = {"teacher": "T", "encoder": "S_e", "embedding": "DFE", "decoder": "S_d"}
_TEX = {"teacher": "$T$", "encoder": "$S_e$", "decoder": "$S_d$"}
_LOSS_COLOR = "#3b6fb6"
_INFER_COLOR = "#c0392b"


def _check_image_size(image_size: int) -> int:
    if not isinstance(image_size, int) or image_size < 32 or image_size % 32:
        raise ValueError(f"image_size must be a multiple of 32, at least 32 (F_emb is at H/32), got {image_size!r}")
    return image_size


def _shape(channels: int, image_size: int, stride: int) -> str:
    s = image_size // stride
    return f"{channels} @ {s}×{s}"


def _box(ax, x, y, text, face, w=1.5, h=0.7, fontsize=7.5, alpha=1.0, ls="-", weight="normal"):
    patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                           fc=face, ec="0.3", lw=1.0, ls=ls, alpha=alpha, zorder=2)
    ax.add_patch(patch)
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=3, alpha=max(alpha, 0.5),
            fontweight=weight)
    return patch


def _arrow(ax, start, end, *, color="0.25", lw=1.1, ls="-", style="-|>", patchA=None, patchB=None, z=1,
           connection="arc3"):
    ax.annotate("", xy=end, xytext=start, zorder=z,
                arrowprops=dict(arrowstyle=style, color=color, lw=lw, ls=ls, shrinkA=1, shrinkB=1,
                                patchA=patchA, patchB=patchB, mutation_scale=9, connectionstyle=connection))


def _center(patch) -> tuple[float, float]:
    return patch.get_x() + patch.get_width() / 2, patch.get_y() + patch.get_height() / 2


def _link(ax, a, b, **kw):
    """An arrow from box ``a`` to box ``b``, clipped at their edges."""
    _arrow(ax, _center(a), _center(b), patchA=a, patchB=b, **kw)


def _diagram_axes(ax, xlim, ylim):
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("auto")
    ax.axis("off")


def _draw_embedding_flow(ax, image_size: int, use_dfe: bool) -> None:
    (c1, c2, c3), (s1, s2, s3) = PYRAMID_CHANNELS, PYRAMID_STRIDES
    emb = EMBEDDING_CHANNELS
    ys = (5.0, 3.0, 1.0) if use_dfe else (2.6, 1.8, 1.0)
    fade = 1.0 if use_dfe else 0.35
    names = ("F1 = conv2_x", "F2 = conv3_x", "F3 = conv4_x")
    inputs = []
    for name, c, s, y in zip(names, (c1, c2, c3), (s1, s2, s3), ys):
        a = fade if name[1] != "3" else 1.0
        inputs.append(_box(ax, 1.0, y, f"{name}\n{_shape(c, image_size, s)} (H/{s})", NETWORK_COLORS["encoder"],
                           w=1.8, alpha=a))
    block = "3×3 conv, stride 2\n+ BN + ReLU"
    if use_dfe:
        b11 = _box(ax, 3.4, ys[0], block, NETWORK_COLORS["embedding"], w=1.7)
        b12 = _box(ax, 6.0, ys[0], block, NETWORK_COLORS["embedding"], w=1.7)
        b2 = _box(ax, 6.0, ys[1], block, NETWORK_COLORS["embedding"], w=1.7)
        cat = _box(ax, 8.4, ys[1], f"concatenate\n{_shape(3 * c3, image_size, s3)}", "white", w=1.6)
        res = _box(ax, 10.7, ys[1] - 0.2,
                   "residual block, stride 2\nmain: 3×3 s2, BN, ReLU,\n3×3, BN\nshortcut: 1×1 s2, BN\nsum, then ReLU",
                   NETWORK_COLORS["embedding"], w=1.9, h=1.45, fontsize=7)
        out = _box(ax, 10.7, ys[2] - 0.35, f"F_emb\n{_shape(emb, image_size, 32)} (H/32)", NETWORK_COLORS["decoder"],
                   w=1.8, weight="bold")

        def label(x, y, text):
            ax.text(x, y + 0.42, text, ha="center", va="bottom", fontsize=7, color="0.2")

        _arrow(ax, (1.9, ys[0]), (2.55, ys[0]))
        _arrow(ax, (4.25, ys[0]), (5.15, ys[0]))
        label(4.7, ys[0] - 0.37, _shape(2 * c1, image_size, 2 * s1))
        _arrow(ax, (6.0, ys[0] - 0.35), (8.1, ys[1] + 0.35), connection="arc3,rad=-0.2")
        ax.text(7.6, ys[0] - 0.55, _shape(c3, image_size, s3), fontsize=7, color="0.2")
        _arrow(ax, (1.9, ys[1]), (5.15, ys[1]))
        _arrow(ax, (6.85, ys[1]), (7.6, ys[1]))
        label(7.22, ys[1] - 0.2, _shape(c3, image_size, s3))
        _arrow(ax, (1.9, ys[2]), (8.1, ys[1] - 0.35), connection="arc3,rad=0.15")
        ax.text(5.0, ys[2] + 0.1, f"{_shape(c3, image_size, s3)}, as it is", fontsize=7, color="0.2")
        _arrow(ax, (9.2, ys[1]), (9.75, ys[1] - 0.1))
        _arrow(ax, (10.7, ys[1] - 0.93), (10.7, ys[2] - 0.0))
        _diagram_axes(ax, (-0.05, 11.75), (-0.1, 5.6))
    else:
        blk = _box(ax, 6.0, ys[2], "3×3 conv, stride 2\n+ BN + ReLU", NETWORK_COLORS["embedding"], w=1.7)
        out = _box(ax, 10.7, ys[2], f"F_emb\n{_shape(emb, image_size, 32)} (H/32)", NETWORK_COLORS["decoder"],
                   w=1.8, weight="bold")
        _arrow(ax, (1.9, ys[2]), (5.15, ys[2]))
        _arrow(ax, (6.85, ys[2]), (9.8, ys[2]))
        for y in ys[:2]:
            ax.text(2.05, y, "not used", fontsize=7, color="0.45", va="center", style="italic")
        _diagram_axes(ax, (-0.05, 11.75), (0.5, 3.1))
    del out


def plot_embedding_flow(image_size: int = 256, *, show_no_dfe: bool = True) -> Figure:
    """Fig. 4 as a data-flow diagram with the tensor shape on every edge for an ``image_size`` input;
    with ``show_no_dfe`` a second panel draws the no-DFE path of Table 8 (:class:`LastLayerEmbedding`)."""
    image_size = _check_image_size(image_size)
    with dskd_style():
        if show_no_dfe:
            fig, (ax, ax2) = plt.subplots(2, 1, figsize=(10, 6.2), height_ratios=[2.6, 1.0], layout="constrained")
        else:
            fig, ax = plt.subplots(figsize=(10, 4.4), layout="constrained")
        _draw_embedding_flow(ax, image_size, use_dfe=True)
        ax.set_title(f"Deep feature embedding (DFE, Fig. 4) for a {image_size}×{image_size} input: "
                     f"S_e's pyramid -> F_emb (channels @ height×width)")
        if show_no_dfe:
            _draw_embedding_flow(ax2, image_size, use_dfe=False)
            ax2.set_title("Without DFE (Table 8, LastLayerEmbedding): only F3 is downsampled, F1 and F2 are dropped")
    return fig


def plot_value_counts(counts: Mapping[str, int], *, title: str, highlight: Collection[str] = ("F_emb",),
                      params: Optional[Mapping[str, int]] = None) -> Figure:
    """Bars of how many numbers each tensor holds per image (``counts``), the ``highlight`` ones in the
    embedding's colour; with ``params`` a second panel shows parameter counts per module."""
    if not counts:
        raise ValueError("counts is empty: pass {tensor name: number of values}")
    with dskd_style():
        ncols = 2 if params else 1
        fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 3.4), layout="constrained", squeeze=False)
        ax = axes[0, 0]
        names = list(counts)
        values = [counts[n] / 1e3 for n in names]
        colors = [NETWORK_COLORS["decoder"] if n in highlight else NETWORK_COLORS["encoder"] for n in names]
        bars = ax.bar(names, values, color=colors, edgecolor="0.3")
        ax.bar_label(bars, labels=[f"{counts[n]:,}" for n in names], fontsize=7, padding=2)
        ax.set_ylabel("values per image (thousands)")
        ax.set_xlabel("tensor")
        ax.set_title(title)
        ax.margins(y=0.15)
        if params:
            ax = axes[0, 1]
            pn = list(params)
            bars = ax.barh(pn, [params[n] / 1e6 for n in pn], color=NETWORK_COLORS["embedding"], edgecolor="0.3")
            ax.bar_label(bars, labels=[f"{params[n] / 1e6:.2f} M" for n in pn], fontsize=7, padding=2)
            ax.invert_yaxis()
            ax.set_xlabel("parameters (millions)")
            ax.set_title("What it costs: parameters per module")
            ax.margins(x=0.2)
    return fig


def _rows(structure: str) -> dict[str, float]:
    uses = {n for pair in LOSS_PAIRS[structure] for n in pair}
    layout = {"teacher": 4.0, "decoder": 0.0} if structure == "T-D" else {"encoder": 4.0, "teacher": 2.0, "decoder": 0.0}
    return {n: y for n, y in layout.items() if n in uses}


def _draw_dskd(ax, structure: str, use_dfe: bool, image_size: int) -> None:
    rows = _rows(structure)
    cols = (2.2, 4.2, 6.2)
    boxes: dict[str, list] = {}
    labels = {"teacher": "T (frozen)", "encoder": "S_e (trained)", "decoder": "S_d (trained)"}
    for net, y in rows.items():
        boxes[net] = []
        for k, (x, c, s) in enumerate(zip(cols, PYRAMID_CHANNELS, PYRAMID_STRIDES)):
            name = f"conv{k + 2}_x" if net != "decoder" else f"layer{3 - k} (up)"
            boxes[net].append(_box(ax, x, y, f"{name}\n{_shape(c, image_size, s)}", NETWORK_COLORS[net], w=1.55))
        ax.text(cols[0] - 0.78, y + 0.42, labels[net], fontsize=8, fontweight="bold", va="bottom")
        if net == "decoder":
            for k in (2, 1):
                _link(ax, boxes[net][k], boxes[net][k - 1])
        else:
            for k in (0, 1):
                _link(ax, boxes[net][k], boxes[net][k + 1])
    # the image feeds the encoder-type rows
    fed = [y for n, y in rows.items() if n != "decoder"]
    img = _box(ax, 0.35, sum(fed) / len(fed), f"image\n3 @ {image_size}²", "white", w=0.75, h=0.9, fontsize=7)
    for n, y in rows.items():
        if n != "decoder":
            _link(ax, img, boxes[n][0])
    # the embedding between the DFE source row and S_d
    if "decoder" in rows:
        source = "teacher" if structure == "T-D" else "encoder"
        ys = rows[source]
        emb_text = (f"DFE\n-> F_emb\n{_shape(EMBEDDING_CHANNELS, image_size, 32)}" if use_dfe
                    else f"no DFE\n(conv4_x only)\n{_shape(EMBEDDING_CHANNELS, image_size, 32)}")
        emb = _box(ax, 8.3, 1.0, emb_text, NETWORK_COLORS["embedding"], w=1.35, h=1.15, fontsize=7)
        bus = ys + 0.9
        used = range(3) if use_dfe else (2,)
        for k in used:
            x = cols[k]
            ax.plot([x, x], [ys + 0.35, bus], color="0.25", lw=1.0, zorder=1)
        ax.plot([cols[min(used)], 8.3], [bus, bus], color="0.25", lw=1.0, zorder=1)
        _arrow(ax, (8.3, bus), (8.3, 1.58))
        ax.text(7.3, bus + 0.06, "F1, F2, F3" if use_dfe else "F3", fontsize=7, va="bottom", color="0.2")
        _link(ax, emb, boxes["decoder"][2])
    # distillation pairs, one arrow per level; the pair compared at inference in red
    infer = INFERENCE_PAIR[structure]
    sym = {"teacher": "t", "encoder": "e", "decoder": "d"}
    for a, b in LOSS_PAIRS[structure]:
        color = _INFER_COLOR if (a, b) == infer else _LOSS_COLOR
        ya, yb = rows[a], rows[b]
        hi, lo = max(ya, yb), min(ya, yb)
        for k, x in enumerate(cols):
            _arrow(ax, (x + 0.45, hi - 0.36), (x + 0.45, lo + 0.36), color=color, lw=1.6, ls="--", style="<|-|>", z=4)
        ax.text(cols[2] + 0.55, (hi + lo) / 2, f"$M^k_{{{sym[a]}-{sym[b]}}}$", fontsize=9, color=color,
                va="center", zorder=5, bbox=dict(fc="white", ec="none", pad=0.5))
    _diagram_axes(ax, (-0.15, 9.1), (-0.55, 5.15))
    handles = [Line2D([], [], color=_LOSS_COLOR, ls="--", lw=1.6, label="distilled (loss, Eq. 7)"),
               Line2D([], [], color=_INFER_COLOR, ls="--", lw=1.6, label="distilled + anomaly map (Eq. 8)")]
    ax.legend(handles=handles, loc="lower left", fontsize=7, ncol=2, bbox_to_anchor=(0.0, -0.06))


def plot_dskd_architecture(structure: str = "DS", *, use_dfe: bool = True, image_size: int = 256,
                           ax: Optional[plt.Axes] = None) -> Figure:
    """Fig. 3 (``"DS"``) or one structure of Fig. 8 (``"T-E"``, ``"T-D"``, ``"E-D"``) as a diagram.

    Boxes are the networks' pyramid levels with their output shapes for ``image_size``; solid arrows are
    the data flow; dashed arrows join the pyramids distilled against each other
    (:data:`dskd.models.LOSS_PAIRS`), red for the pair compared at inference
    (:data:`dskd.models.INFERENCE_PAIR`). Networks a structure does not have are not drawn.
    """
    if structure not in STRUCTURES:
        raise ValueError(f"unknown structure {structure!r}: expected one of {STRUCTURES}")
    image_size = _check_image_size(image_size)
    with dskd_style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
        else:
            fig = ax.figure
        _draw_dskd(ax, structure, use_dfe, image_size)
        loss = " + ".join(f"{NETWORK_SYMBOLS[a]}–{NETWORK_SYMBOLS[b]}" for a, b in LOSS_PAIRS[structure])
        a, b = INFERENCE_PAIR[structure]
        ax.set_title(f"{structure}{' (Fig. 3)' if structure == 'DS' else ' (Fig. 8)'}"
                     f"{'' if use_dfe else ', no DFE'}: loss {loss}; inference "
                     f"{NETWORK_SYMBOLS[a]} vs {NETWORK_SYMBOLS[b]}", fontsize=9)
    return fig


def plot_parameter_budget(bars: Mapping[str, Mapping[str, int]], *, frozen: Collection[str] = ("T",),
                          reference: Optional[float] = 39.3e6,
                          reference_label: str = "paper, Table 6: 39.3 M",
                          title: str = "Parameters per component") -> Figure:
    """Horizontal stacked bars, one per reading of the model: ``{bar label: {component: parameters}}``.

    Components are coloured by network (keys ``T``, ``S_e``, ``DFE``, ``S_d``; others grey) and hatched
    when ``frozen``; ``reference`` draws a vertical line (the paper's total).
    """
    if not bars:
        raise ValueError("bars is empty: pass {label: {component: parameters}}")
    color_of = {v: NETWORK_COLORS[k] for k, v in NETWORK_SYMBOLS.items()}
    with dskd_style():
        fig, ax = plt.subplots(figsize=(8.5, 1.5 + 0.75 * len(bars)), layout="constrained")
        seen: dict[str, Patch] = {}
        for row, (label, parts) in enumerate(bars.items()):
            left = 0.0
            for comp, n in parts.items():
                m = n / 1e6
                hatch = "///" if comp in frozen else None
                ax.barh(row, m, left=left, color=color_of.get(comp, "0.85"), edgecolor="0.3", hatch=hatch,
                        height=0.6)
                if m > 1.2:
                    ax.text(left + m / 2, row, f"{comp}\n{m:.1f}", ha="center", va="center", fontsize=7)
                seen.setdefault(comp, Patch(fc=color_of.get(comp, "0.85"), ec="0.3", hatch=hatch,
                                            label=comp + (" (frozen)" if comp in frozen else "")))
                left += m
            ax.text(left + 0.3, row, f"{left:.1f} M", va="center", fontsize=8, zorder=5,
                    bbox=dict(fc="white", ec="none", pad=1))
        ax.set_yticks(range(len(bars)), list(bars))
        ax.invert_yaxis()
        if reference is not None:
            ax.axvline(reference / 1e6, color=_INFER_COLOR, lw=1.5, ls="--")
            ax.text(reference / 1e6 - 0.3, -0.55, reference_label, color=_INFER_COLOR, fontsize=8, ha="right", va="bottom")
        ax.set_xlabel("parameters (millions)")
        ax.set_title(title)
        ax.margins(x=0.08)
        ax.set_ylim(len(bars) - 0.5, -0.85)
        fig.legend(handles=list(seen.values()), loc="outside lower center", fontsize=8, ncol=len(seen))
        ax.grid(axis="y", visible=False)
    return fig
