"""Figures the lessons share, one module per lesson, with the palette and helpers every module uses in `style`.

Every plot draws on the Axes you pass (`ax=`, or first as the notebooks do; `axes=` for multi-panel figures) or makes
its own Figure, and returns what it drew on: one-panel plots return the Axes, multi-panel plots the Figure. So
notebooks, widgets and tests use the same code, headless. Class names, not indices, go on the axes; each function's
docstring names the notebook that introduces it. `from kdlab import plots; plots.X` reaches every public name.

    style         palette, font size, colours per loss term and per model family
    teacher       notebook 01: token vectors, confusions
    soft_targets  notebook 02 (previewed in 00): softmax at T, entropy, which intents look alike
    loss          notebook 03: the two targets, why T², the high-T limit, the loss explorer's panels
    conventions   notebook 04: one recipe spelled in each library, SGD vs Adam under a constant factor
    training      notebook 05: learning curves, per-intent change
    tuning        notebooks 06 and 07: T × λ sweeps, overfitting remedies (06); label budgets, capacity (07)
    deployment    notebook 08: accuracy vs latency
    beyond        notebooks 09 and 10: an omitted intent, calibration (09); DistilBERT-style students (10)
    lm            notebook 11: forward vs reverse KL as a picture, next-token distributions, the LM arms
    panel         notebook 12: the capacity gap, the feature loss's weight, every recipe's students
"""

from __future__ import annotations

from .style import (
    OKABE_ITO, MODEL_COLORS, GOLD_COLOR, FONT_SIZE, CE_COLOR, KD_COLOR, FAMILY_COLORS, OTHER_FAMILY_COLORS
)
from .teacher import confusion_counts, top_confusions, plot_token_vectors, plot_confusions
from .soft_targets import (
    softmax, entropy_bits, effective_classes, entropy_curve, average_soft_targets, class_similarity,
    most_similar_classes, plot_softmax_toy, plot_distribution, plot_entropy_vs_temperature, plot_similarity_map
)
from .loss import (
    kd_gradient_norms, logit_matching_gap, plot_two_targets, plot_gradient_vs_temperature,
    plot_logit_matching_limit, plot_loss_parts, plot_logit_gradients
)
from .training import CURVE_COLUMNS, curve_series, plot_learning_curves, per_class_accuracy, plot_per_class_change
from .tuning import (
    plot_sweep_heatmap, plot_label_budget, plot_capacity, REMEDY_COLUMNS, plot_remedy_curves, remedy_table,
    plot_remedy_summary
)
from .deployment import plot_accuracy_vs_latency
from .beyond import (
    plot_soft_mass_on_class, plot_bias_shift_scan, OMITTED_CLASS_BARS, plot_omitted_class_recall,
    plot_reliability_diagram, plot_reliability_diagrams, CALIBRATION_PANELS, plot_calibration_vs_temperature,
    DISTILBERT_STARTS, DISTILBERT_LOSSES, plot_distilbert_comparison
)
from .lm import (
    ARM_COLORS, ARM_LABELS, ARM_TICKS, BETA_FIT_COLOR, LM_METRICS, arm_color, plot_kl_fits, visible_token, plot_position_targets,
    plot_next_token_distributions, plot_lm_arms
)

__all__ = [
    "OKABE_ITO", "MODEL_COLORS", "GOLD_COLOR", "FONT_SIZE", "CE_COLOR", "KD_COLOR", "FAMILY_COLORS",
    "OTHER_FAMILY_COLORS", "confusion_counts", "top_confusions", "plot_token_vectors", "plot_confusions", "softmax",
    "entropy_bits", "effective_classes", "entropy_curve", "average_soft_targets", "class_similarity",
    "most_similar_classes", "plot_softmax_toy", "plot_distribution", "plot_entropy_vs_temperature",
    "plot_similarity_map", "kd_gradient_norms", "logit_matching_gap", "plot_two_targets",
    "plot_gradient_vs_temperature", "plot_logit_matching_limit", "plot_loss_parts", "plot_logit_gradients",
    "CURVE_COLUMNS", "curve_series", "plot_learning_curves", "per_class_accuracy", "plot_per_class_change",
    "plot_sweep_heatmap", "plot_label_budget", "plot_capacity", "REMEDY_COLUMNS", "plot_remedy_curves",
    "remedy_table", "plot_remedy_summary", "plot_accuracy_vs_latency", "plot_soft_mass_on_class",
    "plot_bias_shift_scan", "OMITTED_CLASS_BARS", "plot_omitted_class_recall", "plot_reliability_diagram",
    "plot_reliability_diagrams", "CALIBRATION_PANELS", "plot_calibration_vs_temperature", "DISTILBERT_STARTS",
    "DISTILBERT_LOSSES", "plot_distilbert_comparison",
    # notebook 11
    "ARM_COLORS", "ARM_LABELS", "ARM_TICKS", "BETA_FIT_COLOR", "LM_METRICS", "arm_color", "plot_kl_fits", "visible_token",
    "plot_position_targets", "plot_next_token_distributions", "plot_lm_arms",
]

from .conventions import plot_copied_recipe, plot_spelling_race  # notebook 04

__all__ += ["plot_copied_recipe", "plot_spelling_race"]

from .panel import recipe_summary, plot_teacher_vs_student, plot_feature_weights, plot_recipe_accuracy  # notebook 12

__all__ += ["recipe_summary", "plot_teacher_vs_student", "plot_feature_weights", "plot_recipe_accuracy"]
