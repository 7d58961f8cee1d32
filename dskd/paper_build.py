"""Table 6 to the parameter: the paper's probable build, counted beside ours (Sec. 4.2.4, Table 6).

Table 6 gives DSKD 39.3 M parameters, 6.17 G "FLOPs" and 105 MB. Our DS (T, S_e, DFE, S_d as Sec. 3
describes them) has 16.23 M parameters and 11.71 GFLOPs = 5.86 GMACs at 256 x 256. A build in the style
of reverse distillation (RD4AD, Deng & Li 2022, whose public code the DSKD design follows) reproduces
all three of the paper's numbers at once. It differs from ours in what the modules *hold*, not in what
they compute, except for one residual block:

* **T and S_e** are whole torchvision ResNet18 objects (11.69 M each): stem..layer3 run; layer4
  (8.39 M) and fc (0.51 M) are held but never called (RD4AD's encoder keeps them too);
* **the bottleneck** is RD4AD's ``BN_layer`` for ResNet18 (``BN_layer(AttnBasicBlock, 2)``), rebuilt
  here from its structure (:class:`RD4ADBottleneck`): our DFE (Fig. 4: two stride-2 conv blocks for F1,
  one for F2, concatenation, a stride-2 residual block 768 -> 512) **plus a second 512 -> 512 residual
  block**, plus a 1x1 1024 -> 512 conv and its BatchNorm that are built but never called (12.21 M);
* **S_d** is our decoder, which has RD4AD's ``de_resnet18`` structure (3.70 M).

:func:`paper_accounting` builds both models, counts parameters (``numel`` of every parameter), MACs
(``torch.utils.flop_counter``, 2 FLOPs per multiply-accumulate) and the size of the file a training
script would save (``torch.save`` of S_e + bottleneck + S_d), and sets them line by line beside ours
and beside the readings that do not fit. ``dskd profile --paper-accounting`` prints it.
"""
from __future__ import annotations

import io
from typing import Any, Optional

import torch
import torchvision
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from .inference import anomaly_map
from .losses import normalize_features
from .models import DSKD, Pyramid, StudentDecoder
from .models.blocks import BasicBlock, conv1x1, conv3x3
from .paper_results import TABLE6

#: the paper's row of Table 6
PAPER_DSKD = TABLE6["DSKD (paper)"]
#: Table 6 does not state the image size; MVTec AD, its main benchmark, is run at 256 x 256 (Sec. 4.1.2)
ACCOUNTING_IMAGE_SIZE = 256
MIB = 2 ** 20

#: the networks of each build, in the order of the data flow (teacher, encoder, embedding, decoder)
COMPONENT_LABELS = {"teacher": "T", "encoder": "S_e", "embedding": "DFE / bottleneck", "decoder": "S_d"}


class RD4ADBottleneck(nn.Module):
    """RD4AD's one-class bottleneck for ResNet18 (``BN_layer(AttnBasicBlock, layers=2)`` in its
    ``resnet.py``), with the same modules under the same names, written here from its structure.

    ``conv1/bn1 -> conv2/bn2`` bring F1 (64 @ H/4) to 256 @ H/16, ``conv3/bn3`` brings F2 (128 @ H/8)
    to 256 @ H/16; with F3 they are concatenated (768 channels) and ``bn_layer`` (``blocks`` residual
    blocks, the first with stride 2 and a 1x1 conv + BN shortcut) gives 512 @ H/32. ``conv4``/``bn4``
    (1x1, 1024 -> 512) are built but never called by the forward pass, as in RD4AD.
    With ``blocks=1`` and without ``conv4`` this is exactly our :class:`~dskd.models.DeepFeatureEmbedding`.
    """

    def __init__(self, blocks: int = 2, unused_conv: bool = True) -> None:
        super().__init__()
        if blocks < 1:
            raise ValueError(f"the bottleneck needs at least one residual block, got blocks={blocks}")
        self.conv1, self.bn1 = conv3x3(64, 128, stride=2), nn.BatchNorm2d(128)
        self.conv2, self.bn2 = conv3x3(128, 256, stride=2), nn.BatchNorm2d(256)
        self.conv3, self.bn3 = conv3x3(128, 256, stride=2), nn.BatchNorm2d(256)
        self.relu = nn.ReLU(inplace=True)
        if unused_conv:  # built, never called
            self.conv4, self.bn4 = conv1x1(1024, 512), nn.BatchNorm2d(512)
        self.bn_layer = nn.Sequential(BasicBlock(3 * 256, 512, stride=2),
                                      *[BasicBlock(512, 512) for _ in range(blocks - 1)])

    def forward(self, features: Pyramid) -> Tensor:
        f1, f2, f3 = features
        l1 = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(f1))))))
        l2 = self.relu(self.bn3(self.conv3(f2)))
        return self.bn_layer(torch.cat([l1, l2, f3], dim=1))


class WholeResNet18(torchvision.models.ResNet):
    """A whole torchvision ResNet18 (the same modules and state-dict names, 11.69 M parameters) whose
    forward runs stem..layer3 and returns the :class:`~dskd.models.Pyramid`: layer4 and fc are held but
    not run, unless ``run_layer4`` (RD4AD's encoder computes layer4 and drops it)."""

    def __init__(self, run_layer4: bool = False) -> None:
        super().__init__(torchvision.models.resnet.BasicBlock, [2, 2, 2, 2])
        self.run_layer4 = run_layer4

    def forward(self, x: Tensor) -> Pyramid:  # type: ignore[override]
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        if self.run_layer4:
            self.layer4(f3)
        return Pyramid(f1, f2, f3)


class PaperBuild(nn.Module):
    """The paper's probable build of DSKD: whole ResNet18 objects for T and S_e, RD4AD's bottleneck
    (``bottleneck_blocks`` residual blocks and its unused 1x1 conv) and our S_d.

    ``forward`` returns the (teacher, encoder, decoder) pyramids, as :class:`~dskd.models.DSKD` does, and
    embeds S_e's l2-normalised features, as the package's default build does (Algorithm 2, line 7);
    ``run_layer4=True`` also runs T's and S_e's layer4, as RD4AD's encoder forward does (a reading
    that Table 6's MACs rule out: see :func:`paper_accounting`).
    """

    def __init__(self, bottleneck_blocks: int = 2, unused_conv: bool = True, run_layer4: bool = False) -> None:
        super().__init__()
        self.teacher = WholeResNet18(run_layer4)
        self.encoder = WholeResNet18(run_layer4)
        self.embedding = RD4ADBottleneck(bottleneck_blocks, unused_conv)
        self.decoder = StudentDecoder()

    def forward(self, x: Tensor) -> tuple[Pyramid, Pyramid, Pyramid]:
        with torch.no_grad():
            t = self.teacher(x)
        e = self.encoder(x)
        embedded = Pyramid(*(normalize_features(f) for f in e))  # Algorithm 2, line 7, as DSKD's default
        return t, e, self.decoder(self.embedding(embedded))

    def inference_pair(self, out: tuple[Pyramid, Pyramid, Pyramid]) -> tuple[Pyramid, Pyramid]:
        """T vs S_d, as Algorithm 2."""
        return out[0], out[2]


# --------------------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------------------
def component_parameters(model: nn.Module) -> dict[str, int]:
    """Parameters (``numel``) of the teacher, encoder, embedding and decoder, and their total."""
    out = {c: sum(p.numel() for p in getattr(model, c).parameters()) for c in COMPONENT_LABELS}
    out["total"] = sum(p.numel() for p in model.parameters())
    return out


def component_macs(model: nn.Module, image_size: int = ACCOUNTING_IMAGE_SIZE, *, sigma: float = 4.0) -> dict[str, int]:
    """Multiply-accumulates of one image's inference (networks, then the anomaly map of Eq. 8-9) per
    component, counted by ``torch.utils.flop_counter`` (convolutions, transposed convolutions and the
    Gaussian's 1-D convolutions; 2 FLOPs = 1 MAC). ``networks`` is the sum of the four components."""
    model = model.eval()
    x = torch.randn(1, 3, image_size, image_size)
    counter = FlopCounterMode(display=False, depth=None)
    root = type(model).__name__
    with torch.inference_mode(), counter:
        ref, stu = model.inference_pair(model(x))
        anomaly_map(ref, stu, image_size, sigma=sigma)
    counts = counter.get_flop_counts()
    flops = {c: sum(counts.get(f"{root}.{c}", {}).values()) for c in COMPONENT_LABELS}
    if isinstance(model, DSKD):  # the students are one module there
        flops.update({c: sum(counts.get(f"{root}.students.{c}", {}).values()) for c in ("encoder", "embedding",
                                                                                        "decoder")})
    total = sum(counts.get("Global", {}).values())
    out = {c: v // 2 for c, v in flops.items()}
    out["networks"] = sum(out[c] for c in COMPONENT_LABELS)
    out["anomaly_map"] = total // 2 - out["networks"]
    out["total"] = total // 2
    return out


def batchnorm_elements(model: nn.Module, image_size: int = ACCOUNTING_IMAGE_SIZE) -> int:
    """Output elements of every BatchNorm called in one image's forward pass: the multiply-adds of the
    BatchNorms at inference (``y = a x + b`` per element), which the MAC count above leaves out."""
    total = 0

    def hook(mod: nn.Module, inputs: Any, output: Tensor) -> None:
        nonlocal total
        total += output.numel()

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    try:
        with torch.inference_mode():
            model.eval()(torch.randn(1, 3, image_size, image_size))
    finally:
        for h in hooks:
            h.remove()
    return total


def saved_size(*modules: nn.Module) -> int:
    """Bytes of the file ``torch.save`` writes for the state dicts of ``modules`` (one dict, prefixed)."""
    state = {f"{i}.{k}": v for i, m in enumerate(modules) for k, v in m.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getbuffer().nbytes


# --------------------------------------------------------------------------------------------------
# The accounting
# --------------------------------------------------------------------------------------------------
def _row(label: str, ours: float, paper: float, why: str) -> dict[str, Any]:
    return {"component": label, "ours": ours, "paper_build": paper, "difference": paper - ours, "why": why}


def paper_accounting(image_size: int = ACCOUNTING_IMAGE_SIZE, seed: int = 0) -> dict[str, Any]:
    """Table 6's parameters, MACs and size from the paper's probable build, line by line beside our DS.

    Returns ``parameters``, ``macs`` and ``size`` (rows: component, ours, paper build, difference,
    why), ``totals`` (each total beside Table 6's number, with the relative gap), ``alternatives``
    (readings that do not reproduce Table 6, each counted) and ``image_size``. Weights are random
    (``seed``): counts and sizes do not depend on them.
    """
    torch.manual_seed(seed)
    ours, paper = DSKD("DS", teacher_weights=None).eval(), PaperBuild().eval()
    p_ours, p_paper = component_parameters(ours), component_parameters(paper)
    resnet = paper.teacher
    unused = {n: sum(p.numel() for p in getattr(resnet, n).parameters()) for n in ("layer4", "fc")}
    one_block = component_parameters(PaperBuild(bottleneck_blocks=1, unused_conv=False))["embedding"]
    conv4 = sum(p.numel() for m in (paper.embedding.conv4, paper.embedding.bn4) for p in m.parameters())
    second_block = sum(p.numel() for p in paper.embedding.bn_layer[1].parameters())
    held = f"whole torchvision ResNet18: layer4 ({unused['layer4'] / 1e6:.2f} M) and fc ({unused['fc'] / 1e6:.2f} M) " \
           f"held, not run"
    parameters = [
        _row("T", p_ours["teacher"], p_paper["teacher"], held),
        _row("S_e", p_ours["encoder"], p_paper["encoder"], held),
        _row("DFE / bottleneck", p_ours["embedding"], p_paper["embedding"],
             f"RD4AD's bottleneck: our DFE ({one_block / 1e6:.2f} M) + a second 512->512 residual block "
             f"({second_block / 1e6:.2f} M) + the unused 1x1 1024->512 conv and BN ({conv4 / 1e6:.2f} M)"),
        _row("S_d", p_ours["decoder"], p_paper["decoder"], "the same decoder (RD4AD's de_resnet18)"),
        _row("total", p_ours["total"], p_paper["total"], "T + S_e + bottleneck + S_d"),
    ]

    m_ours, m_paper = component_macs(ours, image_size), component_macs(paper, image_size)
    block_macs = 2 * 512 * 512 * 9 * (image_size // 32) ** 2  # two 3x3 512->512 convs at H/32 x W/32
    macs = [
        _row("T", m_ours["teacher"], m_paper["teacher"], "stem..layer3 run in both"),
        _row("S_e", m_ours["encoder"], m_paper["encoder"], "stem..layer3 run in both"),
        _row("DFE / bottleneck", m_ours["embedding"], m_paper["embedding"],
             f"the second residual block: two 3x3 512->512 convs at {image_size // 32} x {image_size // 32} "
             f"= {block_macs / 1e9:.3f} G"),
        _row("S_d", m_ours["decoder"], m_paper["decoder"], "the same decoder"),
        _row("networks", m_ours["networks"], m_paper["networks"], "convolutions (incl. transposed)"),
        _row("anomaly map", m_ours["anomaly_map"], m_paper["anomaly_map"], "the Gaussian of Eq. 9 (sigma 4)"),
        _row("total", m_ours["total"], m_paper["total"], "multiply-accumulates of one image's inference"),
    ]
    bn_ours, bn_paper = batchnorm_elements(ours, image_size), batchnorm_elements(paper, image_size)
    macs.append(_row("+ BatchNorm as y = a x + b", m_ours["total"] + bn_ours, m_paper["total"] + bn_paper,
                     "one multiply-add per BatchNorm output element, which the count above leaves out"))

    s_ours = saved_size(ours.encoder, ours.embedding, ours.decoder)
    s_paper = saved_size(paper.encoder, paper.embedding, paper.decoder)
    size = [
        _row("saved students (MiB)", s_ours / MIB, s_paper / MIB,
             "torch.save of the trained networks S_e + DFE / bottleneck + S_d (T is the frozen ImageNet ResNet18)"),
        _row("saved students (MB = 10^6 bytes)", s_ours / 1e6, s_paper / 1e6, "the same file in decimal megabytes"),
    ]

    totals = {
        "params_m": {"paper_build": p_paper["total"] / 1e6, "ours": p_ours["total"] / 1e6,
                     "table6": PAPER_DSKD["params_m"]},
        "gmacs": {"paper_build": m_paper["total"] / 1e9, "paper_build_networks": m_paper["networks"] / 1e9,
                  "paper_build_with_batchnorm": (m_paper["total"] + bn_paper) / 1e9,
                  "ours": m_ours["total"] / 1e9, "table6": PAPER_DSKD["gflops"]},
        "size_mib": {"paper_build": s_paper / MIB, "ours": s_ours / MIB, "table6": PAPER_DSKD["memory_mb"]},
    }
    for key, t in totals.items():
        t["relative_gap"] = t["paper_build"] / t["table6"] - 1

    alternatives = _alternatives(image_size, p_ours, m_ours, m_paper, s_paper, paper)
    return {"image_size": image_size, "parameters": parameters, "macs": macs, "size": size, "totals": totals,
            "alternatives": alternatives, "table6": dict(PAPER_DSKD),
            "counted": "parameters: numel of every parameter; MACs: torch.utils.flop_counter / 2 (convolutions, "
                       "transposed convolutions, the Gaussian's 1-D convolutions); size: bytes of torch.save"}


def _alternatives(image_size: int, p_ours: dict[str, int], m_ours: dict[str, int], m_paper: dict[str, int],
                  s_paper: int, paper: PaperBuild) -> list[dict[str, Any]]:
    """Readings of Table 6 that do not reproduce it, each counted, with the number it would give."""
    one_block = PaperBuild(bottleneck_blocks=1).eval()
    layer4 = PaperBuild(run_layer4=True).eval()
    with_teacher = saved_size(paper.teacher, paper.encoder, paper.embedding, paper.decoder)
    return [
        {"reading": "our DS as built (stem..layer3 modules, one-block DFE)", "quantity": "parameters (M)",
         "value": p_ours["total"] / 1e6, "table6": PAPER_DSKD["params_m"]},
        {"reading": "whole ResNet18s and RD4AD's bottleneck with ONE residual block", "quantity": "parameters (M)",
         "value": component_parameters(one_block)["total"] / 1e6, "table6": PAPER_DSKD["params_m"]},
        {"reading": "the same without the unused 1x1 conv (the book's earlier guess)", "quantity": "parameters (M)",
         "value": component_parameters(PaperBuild(unused_conv=False))["total"] / 1e6,
         "table6": PAPER_DSKD["params_m"]},
        {"reading": "our DS's count reported as FLOPs (2 per MAC)", "quantity": "G",
         "value": 2 * m_ours["total"] / 1e9, "table6": PAPER_DSKD["gflops"]},
        {"reading": "paper build with ONE bottleneck block", "quantity": "GMACs",
         "value": component_macs(one_block, image_size)["total"] / 1e9, "table6": PAPER_DSKD["gflops"]},
        {"reading": "paper build with layer4 run in T and S_e (RD4AD's encoder forward)", "quantity": "GMACs",
         "value": component_macs(layer4, image_size)["total"] / 1e9, "table6": PAPER_DSKD["gflops"]},
        {"reading": "the paper build's saved students in decimal MB", "quantity": "size (MB)",
         "value": s_paper / 1e6, "table6": PAPER_DSKD["memory_mb"]},
        {"reading": "the paper build saved with T as well", "quantity": "size (MiB)",
         "value": with_teacher / MIB, "table6": PAPER_DSKD["memory_mb"]},
    ]


def _m(x: float) -> str:
    return f"{x / 1e6:.2f}"


def _g(x: float) -> str:
    return f"{x / 1e9:.3f}"


def format_paper_accounting(acc: Optional[dict[str, Any]] = None) -> str:
    """The accounting of :func:`paper_accounting` as markdown tables: parameters (M), MACs (G) and
    size, ours beside the paper's probable build, the totals beside Table 6, and the rejected readings."""
    acc = acc if acc is not None else paper_accounting()
    t = acc["totals"]
    lines = [f"Table 6 from the paper's probable build, at {acc['image_size']} x {acc['image_size']} "
             f"(counted: {acc['counted']})", "",
             "| parameters | ours (M) | paper build (M) | difference (M) | why |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['component']} | {_m(r['ours'])} | {_m(r['paper_build'])} | {_m(r['difference'])} | {r['why']} |"
              for r in acc["parameters"]]
    lines += ["", "| MACs | ours (G) | paper build (G) | difference (G) | why |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['component']} | {_g(r['ours'])} | {_g(r['paper_build'])} | {_g(r['difference'])} | {r['why']} |"
              for r in acc["macs"]]
    lines += ["", "| size | ours | paper build | difference | why |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['component']} | {r['ours']:.1f} | {r['paper_build']:.1f} | {r['difference']:.1f} | {r['why']} |"
              for r in acc["size"]]
    lines += ["", "| Table 6 | paper build | Table 6 | gap |", "| --- | --- | --- | --- |",
              f"| parameters (M) | {t['params_m']['paper_build']:.2f} | {t['params_m']['table6']} | "
              f"{t['params_m']['relative_gap']:+.2%} |",
              f"| MACs of the networks (G) | {t['gmacs']['paper_build_networks']:.3f} | {t['gmacs']['table6']} | "
              f"{t['gmacs']['paper_build_networks'] / t['gmacs']['table6'] - 1:+.2%} |",
              f"| MACs of the networks and the map (G) | {t['gmacs']['paper_build']:.3f} | {t['gmacs']['table6']} | "
              f"{t['gmacs']['relative_gap']:+.2%} |",
              f"| MACs with the map and BatchNorm (G) | {t['gmacs']['paper_build_with_batchnorm']:.3f} | "
              f"{t['gmacs']['table6']} | {t['gmacs']['paper_build_with_batchnorm'] / t['gmacs']['table6'] - 1:+.2%} |",
              f"| size (MiB) | {t['size_mib']['paper_build']:.1f} | {t['size_mib']['table6']} | "
              f"{t['size_mib']['relative_gap']:+.2%} |",
              "", "| reading that does not fit | quantity | value | Table 6 |", "| --- | --- | --- | --- |"]
    lines += [f"| {a['reading']} | {a['quantity']} | {a['value']:.2f} | {a['table6']} |" for a in acc["alternatives"]]
    return "\n".join(lines)
