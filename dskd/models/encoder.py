"""The first student S_e: the teacher's architecture, randomly initialised and trained (Sec. 3.1)."""
from __future__ import annotations

from .pyramid import ResNet18Pyramid


class StudentEncoder(ResNet18Pyramid):
    """S_e: ResNet18 stem + conv2_x..conv4_x with random weights, trained to match T (Eq. 7, l_e)."""
