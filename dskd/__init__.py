"""dskd: Dual-Student Knowledge Distillation for unsupervised anomaly detection (Yao, DSKD).

A tested rebuild of the paper, piece by piece; the book walks through it. The public API::

    from dskd import TrainConfig, train, evaluate, dataset_for
    cfg = TrainConfig.quick()          # TrainConfig.paper("mvtec", "bottle") for the full setting
    report = evaluate(train(cfg).model, dataset_for(cfg, "test"))
"""
__version__ = "0.1.0"

from .config import TrainConfig, resolve_device
from .data import DatasetError, MagneticTile, MVTec3DRGB, MVTecAD, SyntheticDefects, build_dataset
from .evaluation import EvaluationReport, Prediction, evaluate, predict
from .inference import (Calibration, anomaly_map, anomaly_score, calibrated_threshold, gaussian_blur,
                        paper_threshold)
from .losses import distillation_map, dskd_loss, normalize_features, pyramid_loss
from .metrics import image_auroc, pixel_auroc, pro_curve, pro_score
from .models import (
    DSKD, DeepFeatureEmbedding, StudentDecoder, StudentEncoder, TeacherPyramid, TeacherWeightsError,
)
from .checkpoint import load_checkpoint, save_checkpoint
from .training import TrainResult, dataset_for, train, train_or_load

__all__ = [
    "__version__", "TrainConfig", "resolve_device", "DatasetError", "MagneticTile", "MVTec3DRGB", "MVTecAD",
    "SyntheticDefects", "build_dataset", "EvaluationReport", "Prediction", "evaluate", "predict",
    "Calibration", "anomaly_map", "anomaly_score", "calibrated_threshold", "gaussian_blur", "paper_threshold",
    "distillation_map", "dskd_loss", "normalize_features", "pyramid_loss", "image_auroc", "pixel_auroc",
    "pro_curve", "pro_score", "DSKD", "DeepFeatureEmbedding", "StudentDecoder", "StudentEncoder",
    "TeacherPyramid", "TeacherWeightsError", "load_checkpoint", "save_checkpoint", "TrainResult",
    "dataset_for", "train", "train_or_load",
]
