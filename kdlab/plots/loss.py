"""Notebook 03's figures: the two targets of the loss, why T² is there, the high-T limit, and the loss explorer's panels."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..language import tr
from ..checks import check_lam, check_temperature
from .soft_targets import softmax
from .style import (CE_COLOR, FONT_SIZE, KD_COLOR, OKABE_ITO, _as_logit_tensor, _as_temperatures, _draws_on_axes,
                    _new_axes_grid, _pair, _log_scale)


def kd_gradient_norms(student_logits, teacher_logits, temperatures: Sequence[float]) -> dict[str, np.ndarray]:
    """Per T, the mean per-example size of the gradient the soft term sends to the student: why T² is there.

    Introduced in notebook 03 (03-The-Distillation-Loss).
    """
    import torch

    from ..losses import distillation_terms

    student, teacher = _pair(student_logits, teacher_logits)
    temperatures = _as_temperatures(temperatures)
    with_t2 = []
    for t in temperatures:
        z = student.clone().requires_grad_()
        (grad,) = torch.autograd.grad(distillation_terms(z, teacher, None, float(t)).kd, z)
        # ×batch size: the batch mean hands each example 1/B of its pull; undo that to show one example's.
        with_t2.append(float((grad * len(z)).norm(dim=1).mean()))
    with_t2 = np.asarray(with_t2)
    return {"temperature": temperatures, "with_t_squared": with_t2, "without_t_squared": with_t2 / temperatures**2}


def logit_matching_gap(student_logits, teacher_logits, temperatures: Sequence[float]) -> dict[str, np.ndarray]:
    """Per T, how far the T²·KL gradient is from logit matching (z_s − z_t)/(N·B): Hinton's high-T limit.

    Introduced in notebook 03 (03-The-Distillation-Loss).
    """
    import torch

    from ..losses import distillation_terms

    student, teacher = _pair(student_logits, teacher_logits)
    temperatures = _as_temperatures(temperatures)
    batch, classes = student.shape
    # The limit assumes zero-mean logits per example (softmax ignores the mean anyway).
    centred = (student - student.mean(1, keepdim=True)) - (teacher - teacher.mean(1, keepdim=True))
    limit = centred / (classes * batch)
    gaps = []
    for t in temperatures:
        z = student.clone().requires_grad_()
        (grad,) = torch.autograd.grad(distillation_terms(z, teacher, None, float(t)).kd, z)
        gaps.append(float((grad - limit).norm() / limit.norm()))
    return {"temperature": temperatures, "relative_error": np.asarray(gaps)}


def plot_two_targets(
    student_logits, teacher_logits, gold: int, label_names: Sequence[str], temperature: float = 4.0,
    top_k: int = 6, figure: Figure | None = None, *, axes=None,
) -> Figure:
    """The picture of the loss for one query: the hard term compares with a one-hot, the soft term with the teacher.

    Draws on `axes` (two Axes: hard term, soft term) when given, else on `figure`, else on a new Figure; returns the
    Figure that holds them.

    Introduced in notebook 03 (03-The-Distillation-Loss).
    """
    student = np.asarray(student_logits, dtype=np.float64).ravel()
    teacher = np.asarray(teacher_logits, dtype=np.float64).ravel()
    if student.shape != teacher.shape or len(label_names) != student.size:
        raise ValueError(f"student_logits ({student.size}), teacher_logits ({teacher.size}) and label_names "
                         f"({len(label_names)}) must have the same number of classes")
    if not 0 <= gold < student.size:
        raise ValueError(f"gold must be a class index in [0, {student.size}), got {gold}")
    temperature = check_temperature(temperature)
    p_teacher = softmax(teacher, temperature)
    classes = [int(i) for i in np.argsort(-p_teacher, kind="stable")[:top_k]]
    if gold not in classes:
        classes = classes[:-1] + [gold]
    figure, (left, right) = _new_axes_grid(axes, figure, (1, 2), (13, 0.55 * top_k + 2.2), "plot_two_targets", sharey=True)
    rows = np.arange(len(classes))[::-1]
    height = 0.38
    one_hot = np.eye(student.size)[gold]
    panels = (
        (left, softmax(student, 1.0), one_hot, tr("one-hot label"), OKABE_ITO["black"], "T = 1",
         tr("Hard-label term: CE(student at T = 1, label)")),
        (right, softmax(student, temperature), p_teacher, tr("teacher"), KD_COLOR, f"T = {temperature:g}",
         tr("Soft term: KL(teacher ‖ student), both at T = {temperature:g}", temperature=temperature)),
    )
    for ax, p_student, target, target_name, target_color, t_text, title in panels:
        ax.barh(rows + height / 2, target[classes], height, color=target_color, label=f"{target_name} ({t_text})")
        ax.barh(rows - height / 2, p_student[classes], height, color=CE_COLOR, label=tr("student ({t_text})", t_text=t_text))
        ax.set_xlim(0, 1.05)
        ax.set_xlabel(tr("probability"), fontsize=FONT_SIZE)
        ax.set_title(tr(title), fontsize=FONT_SIZE)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=FONT_SIZE - 2, loc="lower right")
    left.set_yticks(rows, [f"★ {label_names[c]}" if c == gold else label_names[c] for c in classes], fontsize=FONT_SIZE - 1)
    figure.suptitle(tr("Two targets for one query: the label says only which intent; the teacher also says which "
                       "look alike"),
                    fontsize=FONT_SIZE + 1)
    return figure


@_draws_on_axes(figsize=(9, 5.5))
def plot_gradient_vs_temperature(
    student_logits, teacher_logits, temperatures: Sequence[float] | None = None, labels=None, *,
    ax: Axes | None = None,
) -> Axes:
    """Log-log plot of the soft term's gradient size against T, with and without T², on real logits.

    Introduced in notebook 03 (03-The-Distillation-Loss).
    """
    temperatures = np.geomspace(0.5, 100, 40) if temperatures is None else temperatures
    norms = kd_gradient_norms(student_logits, teacher_logits, temperatures)
    t = norms["temperature"]
    ax.plot(t, norms["with_t_squared"], color=KD_COLOR, linewidth=2.5, label=tr("T²·KL  (kdlab, Hinton et al.)"))
    ax.plot(t, norms["without_t_squared"], color=KD_COLOR, linewidth=2.5, linestyle="--", label=tr("KL alone (T² forgotten)"))
    if labels is not None:
        import torch

        student = _as_logit_tensor(student_logits, "student_logits")
        labels = torch.as_tensor(np.asarray(labels)).long()
        if labels.shape != (student.shape[0],):
            raise ValueError(f"labels must have one entry per row of student_logits ({student.shape[0]}), "
                             f"got shape {tuple(labels.shape)}")
        hard = torch.softmax(student, dim=1) - torch.nn.functional.one_hot(labels, student.shape[1])
        ax.axhline(float(hard.norm(dim=1).mean()), color=CE_COLOR, linewidth=2,
                   label=tr("hard-label CE term (does not depend on T)"))
    _log_scale(ax, "x")
    _log_scale(ax, "y")
    ax.set_xlabel(tr("temperature T (log scale)"), fontsize=FONT_SIZE)
    ax.set_ylabel(tr("‖∂ term / ∂ student logits‖ per example (log scale)"), fontsize=FONT_SIZE - 1)
    ax.set_title(tr("Without T², the teacher's voice fades as 1/T²"), fontsize=FONT_SIZE + 1)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=FONT_SIZE - 2)
    return ax


@_draws_on_axes(figsize=(9, 5))
def plot_logit_matching_limit(
    student_logits, teacher_logits, temperatures: Sequence[float] | None = None, *, ax: Axes | None = None,
) -> Axes:
    """Log-log plot of the distance between the KD gradient and plain logit matching, shrinking as T grows.

    Introduced in notebook 03 (03-The-Distillation-Loss).
    """
    temperatures = np.geomspace(1, 1000, 40) if temperatures is None else temperatures
    gap = logit_matching_gap(student_logits, teacher_logits, temperatures)
    ax.plot(gap["temperature"], 100 * gap["relative_error"], color=OKABE_ITO["purple"], linewidth=2.5)
    _log_scale(ax, "x")
    _log_scale(ax, "y")
    ax.set_xlabel(tr("temperature T (log scale)"), fontsize=FONT_SIZE)
    ax.set_ylabel(tr("relative gap to logit matching [%]"), fontsize=FONT_SIZE)
    ax.set_title(tr("At high T, distillation becomes logit matching"), fontsize=FONT_SIZE + 1)
    ax.grid(alpha=0.3, which="both")
    return ax


@_draws_on_axes(figsize=(6, 4.6))
def plot_loss_parts(ce: float, kd: float, lam: float, *, ax: Axes | None = None) -> Axes:
    """Bars for the two terms and the λ-weighted total, whose stack shows each term's share.

    Introduced in notebook 03 (03-The-Distillation-Loss), drawn by `LossExplorer`.
    """
    lam = check_lam(lam)
    names = [tr("CE\n(hard labels)"), tr("T²·KL\n(soft targets)"), tr("total\nλ·CE + (1−λ)·T²·KL")]
    ax.bar(0, ce, color=CE_COLOR)
    ax.bar(1, kd, color=KD_COLOR)
    ax.bar(2, lam * ce, color=CE_COLOR, label=f"λ·CE = {lam:.2f} × {ce:.2f}")
    ax.bar(2, (1 - lam) * kd, bottom=lam * ce, color=KD_COLOR, label=f"(1−λ)·T²·KL = {1 - lam:.2f} × {kd:.2f}")
    for x, value in ((0, ce), (1, kd), (2, lam * ce + (1 - lam) * kd)):
        ax.text(x, value, f"{value:.3f}", ha="center", va="bottom", fontsize=FONT_SIZE - 1)
    ax.set_xticks(range(3), names, fontsize=FONT_SIZE - 2)
    ax.set_ylim(0, 1.55 * max(ce, kd, 1e-3))  # headroom so the legend never covers a bar
    ax.set_ylabel(tr("loss [nats, mean over the batch]"), fontsize=FONT_SIZE - 1)
    ax.set_title(tr("The two terms and their λ-weighted sum"), fontsize=FONT_SIZE + 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=FONT_SIZE - 2, loc="upper left")
    return ax


@_draws_on_axes(figsize=(8, 4.6))
def plot_logit_gradients(
    grad_ce, grad_kd, label_names: Sequence[str], classes: Sequence[int], gold: int | None = None, *,
    ax: Axes | None = None,
) -> Axes:
    """Per intent, the gradient each weighted term sends to one example's logit (negative: descent raises it).

    Introduced in notebook 03 (03-The-Distillation-Loss), drawn by `LossExplorer`.
    """
    grad_ce = np.asarray(grad_ce, dtype=np.float64).ravel()
    grad_kd = np.asarray(grad_kd, dtype=np.float64).ravel()
    if grad_ce.shape != grad_kd.shape or grad_ce.size != len(label_names):
        raise ValueError(f"grad_ce ({grad_ce.size}), grad_kd ({grad_kd.size}) and label_names ({len(label_names)}) "
                         "must have one entry per class")
    classes = [int(c) for c in classes]
    if not classes or min(classes) < 0 or max(classes) >= grad_ce.size:
        raise ValueError(f"classes must be non-empty class indices in [0, {grad_ce.size}), got {classes}")
    rows = np.arange(len(classes))[::-1]
    height = 0.38
    ax.barh(rows + height / 2, grad_ce[classes], height, color=CE_COLOR, label=tr("from λ·CE"))
    ax.barh(rows - height / 2, grad_kd[classes], height, color=KD_COLOR, label=tr("from (1−λ)·T²·KL"))
    ax.scatter(grad_ce[classes] + grad_kd[classes], rows, color=OKABE_ITO["black"], zorder=3, label=tr("sum (what training uses)"))
    ax.axvline(0, color=OKABE_ITO["black"], linewidth=0.8)
    ax.set_yticks(rows, [f"★ {label_names[c]}" if c == gold else label_names[c] for c in classes], fontsize=FONT_SIZE - 1)
    ax.set_xlabel(tr("∂loss/∂logit for this query (negative: training raises the logit)"), fontsize=FONT_SIZE - 1)
    ax.set_title(tr("Where each term pushes this query's logits"), fontsize=FONT_SIZE + 1)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=FONT_SIZE - 2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax
