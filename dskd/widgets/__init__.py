"""ipywidgets explorers for the notebooks. Each renders with a function of :mod:`dskd.plotting`,
its static twin, so the book (which has no kernel) shows the same content as a figure.

Needs ``ipywidgets`` (``pip install 'dskd[widgets]'``); importing :mod:`dskd` does not.
"""
from .ablation import ablation_explorer
from .base import Explorer
from .data import sample_explorer
from .features import discrepancy_explorer, feature_explorer
from .inference import inference_explorer, threshold_explorer
from .metrics import pro_threshold_explorer
from .loss import loss_explorer

__all__ = ["Explorer", "sample_explorer", "feature_explorer", "discrepancy_explorer", "inference_explorer", "threshold_explorer", "pro_threshold_explorer", "loss_explorer", "ablation_explorer"]
