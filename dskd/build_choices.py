"""The readings of the paper's implicit build and the rule that picks the package's defaults among them
(issue "The paper's own build"): what the text says for each choice, and what three seeds of each variant
decide (chapters 11 and 13)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .ablation import STUDIES, StudyResults, study_variants
from .config import TrainConfig


@dataclass(frozen=True)
class PaperReading:
    """A place where the paper's build is implicit: the ``TrainConfig`` field a study varies, the variant
    the paper's text states, and where it says so."""

    option: str
    text_variant: str
    source: str


#: the studies of the paper's implicit build choices (issue "The paper's own build") and what its text says
BUILD_CHOICES: dict[str, PaperReading] = {
    "dfe-input": PaperReading(
        "dfe_input", "normalized",
        "Algorithm 2, line 7 embeds the $\\ell_2$-normalised features of $S_e$, and Algorithm 1 uses $F_{emb}$ "
        "without defining it otherwise"),
    "decoder-gradient": PaperReading(
        "detach_decoder_input", "separate",
        "Sec. 1 says the two distillations are \"performed separately and independently\", and Algorithm 1 "
        "updates the parameters of $S_e$ and $S_d$ as two steps"),
    "dfe-blocks": PaperReading(
        "dfe_blocks", "1 block",
        "Sec. 3.2 obtains $F_{emb}$ \"through a residual block\"; Table 6's counts point to RD4AD's two, but the text is "
        "the explicit statement"),
}
#: how many seeds of each variant a build choice needs before its records decide anything
VERDICT_SEEDS = 3


@dataclass(frozen=True)
class BuildVerdict:
    """Which variant of a build-choice study the package's default should build, by the rule set before
    the records came in: with :data:`VERDICT_SEEDS` seeds of each variant, one ahead by more than the spread
    over seeds (image AUROC, the larger of the two standard deviations) wins; where neither is, the paper's
    text decides. ``variant`` is None while the records hold too few seeds."""

    study: str
    variant: Optional[str]
    by: str  # "the records", "the paper's text" or "" (undecided)
    n_seeds: int
    means: dict[str, float]
    spread: float
    package_variant: str

    @property
    def decided(self) -> bool:
        return self.variant is not None

    @property
    def agrees(self) -> bool:
        """Whether the package's default builds the variant the rule chose (True while undecided)."""
        return not self.decided or self.variant == self.package_variant


def default_variant(study: str, config: Optional[TrainConfig] = None) -> str:
    """The variant of ``study`` that ``config`` (default: ``TrainConfig()``) builds."""
    config = config if config is not None else TrainConfig()
    for v in study_variants(study):
        if all(getattr(config, k) == value for k, value in v.train.items()):
            return v.name
    raise ValueError(f"the config builds none of {study!r}'s variants {[v.name for v in STUDIES[study]]}")


def build_verdict(results: StudyResults, *, seeds_needed: int = VERDICT_SEEDS) -> BuildVerdict:
    """Apply the rule of :class:`BuildVerdict` to a recorded build-choice study."""
    if results.study not in BUILD_CHOICES:
        raise ValueError(f"{results.study!r} is not a build-choice study: expected one of {tuple(BUILD_CHOICES)}")
    names = [v.name for v in STUDIES[results.study]]
    rows = {r["variant"]: r for r in results.rows if r["variant"] in names}
    package = default_variant(results.study)
    counts = [len(rows[n]["image_auroc_seeds"]) if n in rows else 0 for n in names]
    means = {n: rows[n]["image_auroc"] for n in rows}
    if min(counts) < seeds_needed:
        return BuildVerdict(results.study, None, "", min(counts), means, float("nan"), package)
    spread = max(rows[n]["image_auroc_std"] for n in names)
    best, other = sorted(names, key=lambda n: -means[n])
    if means[best] - means[other] > spread:
        return BuildVerdict(results.study, best, "the records", min(counts), means, spread, package)
    return BuildVerdict(results.study, BUILD_CHOICES[results.study].text_variant, "the paper's text", min(counts),
                        means, spread, package)
