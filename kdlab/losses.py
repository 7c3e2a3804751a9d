"""The knowledge-distillation loss of Hinton et al. (2015), https://arxiv.org/abs/1503.02531 (notebook 03).

    L = lam * CE(z_s, y) + (1 - lam) * T² * KL(p_T ‖ p_S),  p_T = softmax(z_t / T),  p_S = softmax(z_s / T)

Partly labelled batches: `labels` may hold -100 (PyTorch's and Hugging Face's ignore index) for rows that
have no label. Every row weighs 1: a labelled row contributes lam·CE_i + (1 − lam)·KD_i, an unlabelled row
KD_i (only the teacher has anything to say about it), and the loss is the mean over rows. This is the one
rule: the training loop, the Trainer, the checker and the notebooks all call `distillation_loss` itself.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .checks import WrongTypeError, check_lam, check_temperature

IGNORE_INDEX = -100  # a row without a label, as in torch.nn.CrossEntropyLoss and transformers


class KDTerms(NamedTuple):
    """The two parts of the loss as batch means, for plots, logs and the checker (what distillation_terms returns)."""

    ce: Tensor | None  # hard-label cross-entropy at T = 1, averaged over the labelled rows; None if none has a label
    kd: Tensor  # T² · KL(p_T ‖ p_S), summed over classes, averaged over all rows ("batchmean")


def soft_targets(logits: Tensor, temperature: float) -> Tensor:
    """Turn logits into probabilities; a higher temperature moves mass onto the runner-up classes (notebook 02)."""
    temperature = check_temperature(temperature)
    _check_logits(logits, "logits", ndim=None)
    return torch.softmax(logits / temperature, dim=-1)


def distillation_terms(
    student_logits: Tensor, teacher_logits: Tensor, labels: Tensor | None = None, temperature: float = 4.0
) -> KDTerms:
    """Compute the hard-label term and the soft-target term separately, to look at each (notebook 03)."""
    ce_rows, kd_rows, labelled = _row_terms(student_logits, teacher_logits, labels, temperature)
    ce = ce_rows[labelled].mean() if labelled.any() else None
    return KDTerms(ce, kd_rows.mean())


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor | None = None,
    temperature: float = 4.0,
    lam: float = 0.5,
) -> Tensor:
    """Blend the hard labels with the teacher's soft targets: lam * CE + (1 - lam) * T² * KL (notebook 03)."""
    return loss_and_terms(student_logits, teacher_logits, labels, temperature, lam)[0]


def loss_and_terms(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor | None, temperature: float,
                   lam: float) -> tuple[Tensor, KDTerms]:
    """distillation_loss and its two parts (detached) from one pass, for training loops that log both."""
    lam = check_lam(lam)
    ce_rows, kd_rows, labelled = _row_terms(student_logits, teacher_logits, labels, temperature)
    # labelled rows: lam·CE_i + (1 − lam)·KD_i; unlabelled rows: KD_i; every row weighs 1 in the mean
    loss = torch.where(labelled, lam * ce_rows + (1 - lam) * kd_rows, kd_rows).mean()
    ce = ce_rows[labelled].mean().detach() if labelled.any() else None
    return loss, KDTerms(ce, kd_rows.mean().detach())


def _row_terms(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor | None, temperature: float):
    """Per-row CE (0 where unlabelled) and T²·KL, plus the labelled mask; the single place the maths lives."""
    temperature = check_temperature(temperature)
    _check_inputs(student_logits, teacher_logits, labels)
    dtype = student_logits.dtype
    # float64 inside: at high T every logit / T is close to 0, and float32 loses the small differences the KL
    # is made of (at T = 1e4 it read 2.88 for a true 0.596). The cost is nothing next to a student's forward pass.
    student = student_logits.double()
    # The teacher is a fixed target: no gradient may flow back into it (or into its cached logits).
    teacher = teacher_logits.detach().double()
    # log_softmax on both sides never takes log(0), so this stays finite for T = 0.05 and logits of ±50.
    log_p_student = F.log_softmax(student / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=-1)
    kl_rows = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1)
    # The soft term's gradients shrink like 1/T²; T² keeps them on the CE term's scale whatever T is.
    kd_rows = temperature**2 * kl_rows
    if labels is None:
        labelled = torch.zeros(len(student), dtype=torch.bool, device=student.device)
        ce_rows = torch.zeros_like(kd_rows)
    else:
        labels = labels.to(student.device).long()
        labelled = labels != IGNORE_INDEX
        ce_rows = F.cross_entropy(student, labels, reduction="none", ignore_index=IGNORE_INDEX)
    return ce_rows.to(dtype), kd_rows.to(dtype), labelled


# --- validation: cheap checks that turn deep torch errors into messages a learner can act on ---

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _check_logits(logits, name: str, ndim: int | None = 2) -> None:
    """Logits must be a floating-point torch tensor (of `ndim` dimensions, when given)."""
    if not isinstance(logits, Tensor):
        raise WrongTypeError(f"{name} must be a torch.Tensor of floats, got {type(logits).__name__}; convert it with torch.as_tensor(...)")
    if not logits.is_floating_point():
        raise WrongTypeError(f"{name} must hold floating-point logits, got dtype {logits.dtype}; use .float()")
    if ndim is not None and (logits.ndim != ndim or logits.shape[0] == 0):
        raise ValueError(f"{name} must be 2-D (batch >= 1, num_classes), got shape {tuple(logits.shape)}")


def _check_inputs(student: Tensor, teacher: Tensor, labels: Tensor | None) -> None:
    """Check types, shapes, labels and teacher values once per step, before torch fails somewhere obscure."""
    _check_logits(student, "student_logits")
    _check_logits(teacher, "teacher_logits")
    (batch, classes), (t_batch, t_classes) = student.shape, teacher.shape
    if t_batch != batch:
        raise ValueError(f"teacher_logits has batch size {t_batch} but student_logits has {batch}; must match")
    if t_classes != classes:
        raise ValueError(f"teacher_logits has {t_classes} classes but student_logits has {classes}; must match")
    if labels is not None:
        if not isinstance(labels, Tensor):
            raise WrongTypeError(
                f"labels must be a torch.Tensor of class indices (or None), got {type(labels).__name__}; "
                "convert it with torch.as_tensor(labels)"
            )
        if labels.shape != (batch,) or labels.dtype not in _INTEGER_DTYPES:
            raise ValueError(
                f"labels must be a 1-D integer tensor of length {batch} (one class index per example, "
                f"{IGNORE_INDEX} for an unlabelled row), got shape {tuple(labels.shape)} and dtype {labels.dtype}"
            )
        given = labels[labels != IGNORE_INDEX]
        if len(given):
            low, high = int(given.min()), int(given.max())
            if low < 0 or high >= classes:
                raise ValueError(
                    f"labels must be in the range [0, {classes}) or {IGNORE_INDEX} (no label), got values {low} to {high}"
                )
    if not bool(torch.isfinite(teacher).all()):
        raise ValueError("teacher_logits contain NaN or inf; rebuild the teacher cache")
