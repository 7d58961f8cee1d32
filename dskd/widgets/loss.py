"""Explorer of the distillation loss (Eq. 3 to 7): lambda, the Eq. (3) normalisation and the loss form."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

from torch import Tensor

from ..losses import LOSS_FORMS, NORMALIZATIONS
from ..plotting.loss import plot_distillation_map
from .base import Explorer, _ipywidgets


def loss_explorer(
    image: Optional[Tensor],
    reference: Sequence[Tensor],
    students: Mapping[str, Sequence[Tensor]],
    mask: Optional[Tensor] = None,
    *,
    teacher: str,
    data: str,
    reference_name: str = "T",
    lam: float = 0.1,
) -> Explorer:
    """Move lambda, the normalisation, the loss form and the level, and pick the student pyramid;
    renders with :func:`dskd.plotting.plot_distillation_map` (its static twin).

    ``students`` maps a display name to a pyramid of the same shapes as ``reference``.
    """
    if not students:
        raise ValueError("students is empty: pass {name: pyramid}")
    for name, pyr in students.items():
        if len(pyr) != len(reference) or any(a.shape != b.shape for a, b in zip(reference, pyr)):
            raise ValueError(f"student {name!r} does not match the reference pyramid's shapes")
    w = _ipywidgets()
    controls = {
        "student": w.Dropdown(options=list(students), description="student"),
        "lam": w.FloatLogSlider(value=lam, base=10, min=-2, max=2, step=0.1, description="λ",
                                continuous_update=False),
        "normalization": w.Dropdown(options=list(NORMALIZATIONS), value="unit", description="Eq. 3"),
        "loss_form": w.Dropdown(options=list(LOSS_FORMS), value="pixel", description="loss form"),
        "level": w.Dropdown(options=list(range(1, len(reference) + 1)), value=1, description="level k"),
    }

    def render(student: str, lam: float, normalization: str, loss_form: str, level: int):
        return plot_distillation_map(image, reference, students[student], mask, lam=lam,
                                     normalization=normalization, loss_form=loss_form, level=level,
                                     teacher=teacher, data=data, reference_name=reference_name,
                                     student_name=student)

    return Explorer(controls, render, title="Distillation map (Eq. 6): λ, normalisation (Eq. 3), loss form")
