"""Figures for the book and the CLI. Every function returns a matplotlib Figure in one shared style
(:func:`dskd_style`), with labelled axes and a title that names the teacher and the data that
produced it. Plotting never computes metrics; it draws what it is given.

Each ipywidgets explorer in :mod:`dskd.widgets` renders with one of these functions, so the static
figure in the book and the live widget show the same thing.
"""
from .ablation import (
    plot_level_discrepancy, plot_study, plot_study_comparison, plot_study_per_type, plot_variant_gallery,
    plot_variant_maps,
)
from .results import (plot_anomaly_grid, plot_learning_curve, plot_loss_curve, plot_per_defect_type,
                      plot_table_comparison, runs_setting)
from .architecture import plot_dskd_architecture, plot_embedding_flow, plot_parameter_budget, plot_value_counts
from .loss import loss_contributions, plot_distillation_map, plot_loss_forms
from .inference import (confusion_counts, plot_decisions, plot_inference_settings, plot_inference_steps,
                        plot_threshold)
from .metrics import plot_pro_regions, plot_pro_threshold, plot_pro_variants, plot_roc_curves
from .data import plot_dataset_sample, plot_defect_counts, plot_defect_grid, plot_sample
from .features import (
    plot_conv1_filters, plot_discrepancy_maps, plot_feature_channel, plot_feature_pyramid, plot_score_histograms,
)
from .teacher import (
    plot_image_grid, plot_teacher_candidates, plot_teacher_defect_types, plot_teacher_distance_maps,
    plot_teacher_features, plot_teacher_filters, plot_teacher_scores,
)
from .baselines import plot_same_teacher
from .complexity import plot_fractions, plot_speedups, plot_table6, plot_time_breakdown
from .style import FEATURE_CMAP, MAP_CMAP, STYLE, clean_axes, dskd_style, provenance_title, to_numpy_image

__all__ = [
    "plot_study", "plot_study_comparison", "plot_study_per_type", "plot_variant_gallery", "plot_variant_maps",
    "plot_level_discrepancy", "plot_same_teacher",
    "plot_anomaly_grid", "plot_learning_curve", "plot_loss_curve", "plot_per_defect_type", "plot_table_comparison",
    "runs_setting",
    "plot_dskd_architecture", "plot_embedding_flow", "plot_parameter_budget", "plot_value_counts",
    "loss_contributions", "plot_distillation_map", "plot_loss_forms",
    "confusion_counts", "plot_decisions", "plot_inference_settings", "plot_inference_steps", "plot_threshold",
    "plot_pro_regions", "plot_pro_threshold", "plot_pro_variants", "plot_roc_curves",
    "plot_dataset_sample", "plot_defect_counts", "plot_defect_grid", "plot_sample",
    "plot_conv1_filters", "plot_discrepancy_maps", "plot_feature_channel", "plot_feature_pyramid", "plot_score_histograms",
    "plot_image_grid", "plot_teacher_candidates", "plot_teacher_defect_types", "plot_teacher_distance_maps",
    "plot_teacher_features", "plot_teacher_filters", "plot_teacher_scores",
    "FEATURE_CMAP", "MAP_CMAP", "STYLE", "clean_axes", "dskd_style", "provenance_title", "to_numpy_image",
]
