"""The DSKD model and the three other structures of the architecture ablation (Sec. 4.3.1)."""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Optional

from torch import Tensor, nn

from ..losses import normalize_features
from .decoder import StudentDecoder
from .embedding import DeepFeatureEmbedding, LastLayerEmbedding
from .encoder import StudentEncoder
from .pyramid import Pyramid
from .teacher import TeacherPyramid, TeacherWeights

STRUCTURES = ("DS", "T-E", "T-D", "E-D")
#: what the DFE embeds: S_e's features as they are, or l2-normalised along the channels (Algorithm 2, line 7)
DFE_INPUTS = ("raw", "normalized")

#: which pyramids each structure distils (reference, student): one loss term per pair (Eq. 7)
LOSS_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "DS": (("teacher", "encoder"), ("teacher", "decoder")),  # l_e + l_d
    "T-E": (("teacher", "encoder"),),
    "T-D": (("teacher", "decoder"),),
    "E-D": (("encoder", "decoder"),),
}

#: which pair is compared at inference (Algorithm 2 uses T vs S_d for DS)
INFERENCE_PAIR: dict[str, tuple[str, str]] = {
    "DS": ("teacher", "decoder"),
    "T-E": ("teacher", "encoder"),
    "T-D": ("teacher", "decoder"),
    "E-D": ("encoder", "decoder"),
}


class DSKDOutput(NamedTuple):
    """Pyramids of every network a structure has; absent networks are ``None``.

    The same type is returned in train and eval mode.
    """

    teacher: Optional[Pyramid]
    encoder: Optional[Pyramid]
    decoder: Optional[Pyramid]


#: how the students' weights were named before they became one module (read for old checkpoints)
_STUDENT_NETWORKS = ("encoder.", "embedding.", "decoder.")


class Students(nn.Module):
    """The trainable networks of a structure (S_e, the embedding, S_d) and the one routing between them.

    Three readings of the paper where it is implicit (chapter 5 and the equation map): ``dfe_blocks`` (1,
    Fig. 4 as drawn, or 2, RD4AD's bottleneck that Table 6's size points to), ``dfe_input`` ("raw" S_e
    features, or "normalized": l2-normalised along the channels as Algorithm 2, line 7 writes F^_e) and
    ``detach_decoder_input`` (False: l_d's gradient reaches S_e through the DFE; True: the two distillations
    train separately, S_e by l_e only, as Sec. 1's "separately and independently" reads). Each acts where
    it has a meaning: the normalisation on S_e's features (DS, E-D; T-D embeds the teacher's raw pyramid, as
    RD4AD does), the detach in DS only (E-D has no l_e that would train S_e without l_d). The defaults
    (one block, normalised, separate) are what the three-seed studies and the paper's text chose
    (:func:`dskd.build_choices.build_verdict`); runs recorded before these options existed built 1 block, raw,
    l_d through S_e.

    ``forward(x, teacher_features)`` returns ``(encoder pyramid, decoder pyramid)`` (``None`` where the
    structure has no such network). The frozen teacher's pyramid comes in as an argument, so training
    can pass features it computed once (a cache) and DistributedDataParallel can wrap the students only.
    """

    def __init__(self, structure: str, use_dfe: bool = True, *, dfe_blocks: int = 1,
                 dfe_input: str = "normalized", detach_decoder_input: bool = True) -> None:
        super().__init__()
        if dfe_input not in DFE_INPUTS:
            raise ValueError(f"dfe_input={dfe_input!r} is invalid: expected one of {DFE_INPUTS}")
        self.structure = structure
        self.dfe_input, self.detach_decoder_input = dfe_input, detach_decoder_input
        uses = {name for pair in LOSS_PAIRS[structure] for name in pair}
        self.encoder: Optional[StudentEncoder] = StudentEncoder() if "encoder" in uses else None
        if "decoder" in uses:
            self.embedding: Optional[nn.Module] = (DeepFeatureEmbedding(blocks=dfe_blocks) if use_dfe
                                                   else LastLayerEmbedding())
            self.decoder: Optional[StudentDecoder] = StudentDecoder()
        else:
            self.embedding, self.decoder = None, None

    def forward(self, x: Tensor, teacher_features: Optional[Pyramid]) -> tuple[Optional[Pyramid], Optional[Pyramid]]:
        e = self.encoder(x) if self.encoder is not None else None
        d = None
        if self.decoder is not None:
            source = teacher_features if self.structure == "T-D" else e  # T-D embeds the teacher's pyramid
            if self.detach_decoder_input and self.structure == "DS":
                source = Pyramid(*(f.detach() for f in source))  # l_d trains the DFE and S_d only, not S_e
            if self.dfe_input == "normalized" and self.structure != "T-D":
                source = Pyramid(*(normalize_features(f) for f in source))  # Algorithm 2, line 7: F^_e
            d = self.decoder(self.embedding(source))
        return e, d


class DSKD(nn.Module):
    """Dual-student knowledge distillation (Fig. 3) and its ablation structures (Fig. 8).

    Figure 8 is not in the text, so this is the interpretation implemented:

    * ``"DS"``: T, S_e, DFE, S_d. S_e learns from T (l_e), S_d decodes S_e's embedding and learns from T
      (l_d); loss l_e + l_d (Eq. 7); inference compares T with S_d (Algorithm 2).
    * ``"T-E"``: T and S_e only (STPM-like); loss l_e; inference T vs S_e.
    * ``"T-D"``: T -> DFE -> S_d (reverse-distillation-like): the embedding is built from the frozen
      teacher's features; loss l_d; inference T vs S_d.
    * ``"E-D"``: S_e -> DFE -> S_d with no teacher: S_d learns to reproduce S_e's pyramid from its
      embedding, both trained; loss between S_e and S_d; inference S_e vs S_d.

    ``use_dfe=False`` replaces the DFE with :class:`LastLayerEmbedding` (Table 8). The model holds the
    frozen ``teacher`` (``None`` for E-D) and the trainable :class:`Students`.
    """

    def __init__(
        self,
        structure: str = "DS",
        use_dfe: bool = True,
        teacher_weights: TeacherWeights = "imagenet",
        *,
        dfe_blocks: int = 1,
        dfe_input: str = "normalized",
        detach_decoder_input: bool = True,
    ) -> None:
        super().__init__()
        if structure not in STRUCTURES:
            raise ValueError(f"unknown structure {structure!r}: expected one of {STRUCTURES}")
        self.structure = structure
        self.use_dfe = use_dfe
        uses = {name for pair in LOSS_PAIRS[structure] for name in pair}
        self.teacher = TeacherPyramid(teacher_weights) if "teacher" in uses else None
        self.students = Students(structure, use_dfe, dfe_blocks=dfe_blocks, dfe_input=dfe_input,
                                 detach_decoder_input=detach_decoder_input)

    # the students' networks by name, as the chapters and the paper call them
    @property
    def encoder(self) -> Optional[StudentEncoder]:
        return self.students.encoder

    @property
    def embedding(self) -> Optional[nn.Module]:
        return self.students.embedding

    @property
    def decoder(self) -> Optional[StudentDecoder]:
        return self.students.decoder

    @property
    def teacher_description(self) -> str:
        return self.teacher.weights_description if self.teacher is not None else "none (E-D has no teacher)"

    def forward(self, x: Tensor, teacher_features: Optional[Pyramid] = None) -> DSKDOutput:
        """All pyramids of the structure. ``teacher_features``: the teacher's pyramid of ``x`` when it is
        already known (computed once and cached: the teacher is frozen), else it is computed here."""
        t = teacher_features
        if t is None and self.teacher is not None:
            t = self.teacher(x)
        e, d = self.students(x, t)
        return DSKDOutput(t, e, d)

    def loss_pairs(self, out: DSKDOutput) -> list[tuple[Pyramid, Pyramid]]:
        """The (reference, student) pyramids whose distances form the training loss."""
        return [(getattr(out, a), getattr(out, b)) for a, b in LOSS_PAIRS[self.structure]]

    def inference_pair(self, out: DSKDOutput, pair: Optional[tuple[str, str]] = None) -> tuple[Pyramid, Pyramid]:
        """The (reference, student) pyramids compared for the anomaly map: the structure's own pair
        (:data:`INFERENCE_PAIR`), or ``pair`` (e.g. ("encoder", "decoder") of a DS model: Table 7's pairs
        reading)."""
        a, b = pair or INFERENCE_PAIR[self.structure]
        if getattr(out, a, None) is None or getattr(out, b, None) is None:
            raise ValueError(f"pair {(a, b)} is not available in a {self.structure} model: it has "
                             f"{[n for n in DSKDOutput._fields if getattr(out, n) is not None]}")
        return getattr(out, a), getattr(out, b)

    def student_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters (never the teacher's)."""
        return [p for p in self.parameters() if p.requires_grad]

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """As ``nn.Module.load_state_dict``; also reads checkpoints written before the students became one
        module (their weights are named ``encoder.*``, ``embedding.*``, ``decoder.*``)."""
        renamed = {("students." + k if k.startswith(_STUDENT_NETWORKS) else k): v for k, v in state_dict.items()}
        return super().load_state_dict(renamed, strict=strict, assign=assign)

