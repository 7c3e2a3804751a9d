"""The knowledge-distillation loss of Hinton et al. (2015), https://arxiv.org/abs/1503.02531.

    L = lam * CE(z_s, y) + (1 - lam) * T² * KL(p_T ‖ p_S),  p_T = softmax(z_t / T),  p_S = softmax(z_s / T)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


class KDTerms(NamedTuple):
    """The two parts of the loss, kept apart so a training loop can weight them as it needs."""

    ce: Tensor | None  # hard-label cross-entropy at T = 1; None for an unlabeled batch
    kd: Tensor  # T² · KL(p_T ‖ p_S), summed over classes, averaged over the batch


def soft_targets(logits: Tensor, temperature: float) -> Tensor:
    """Turn logits into probabilities; a higher temperature moves mass onto the runner-up classes."""
    _check_temperature(temperature)
    return torch.softmax(logits / temperature, dim=-1)


def distillation_terms(
    student_logits: Tensor, teacher_logits: Tensor, labels: Tensor | None = None, temperature: float = 4.0
) -> KDTerms:
    """Compute the hard-label term and the soft-target term separately, so callers can weight them."""
    _check_inputs(student_logits, teacher_logits, labels, temperature)
    # The teacher is a fixed target: no gradient may flow back into it (or into its cached logits).
    teacher_logits = teacher_logits.detach().to(student_logits.dtype)
    # log_softmax on both sides never takes log(0), so this stays finite for T = 0.05 and logits of ±50.
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1).mean()  # "batchmean"
    # The soft term's gradients shrink like 1/T²; T² keeps them on the CE term's scale whatever T is.
    kd = temperature**2 * kl
    ce = None if labels is None else F.cross_entropy(student_logits, labels.long())
    return KDTerms(ce, kd)


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor | None = None,
    temperature: float = 4.0,
    lam: float = 0.5,
) -> Tensor:
    """Blend the hard labels with the teacher's soft targets: lam * CE + (1 - lam) * T² * KL."""
    _check_lam(lam)
    ce, kd = distillation_terms(student_logits, teacher_logits, labels, temperature)
    if ce is None:  # an unlabeled transfer batch: only the teacher has anything to teach
        return kd
    return lam * ce + (1 - lam) * kd


# --- validation: cheap checks that turn deep torch errors into messages a learner can act on ---

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _check_temperature(temperature: float) -> None:
    """Reject temperatures that would divide by zero or flip the softmax."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")


def _check_lam(lam: float) -> None:
    """Reject weights outside [0, 1], where the loss would reward being wrong."""
    if not 0.0 <= lam <= 1.0:  # also False for NaN
        raise ValueError(f"lam (the weight on the hard-label CE term) must be in [0, 1], got {lam!r}")


def _check_inputs(student: Tensor, teacher: Tensor, labels: Tensor | None, temperature: float) -> None:
    """Check shapes, labels and teacher values once per step, before torch fails somewhere obscure."""
    _check_temperature(temperature)
    for name, logits in (("student_logits", student), ("teacher_logits", teacher)):
        if logits.ndim != 2 or logits.shape[0] == 0:
            raise ValueError(f"{name} must be 2-D (batch >= 1, num_classes), got shape {tuple(logits.shape)}")
    (batch, classes), (t_batch, t_classes) = student.shape, teacher.shape
    if t_batch != batch:
        raise ValueError(f"teacher_logits has batch size {t_batch} but student_logits has {batch}; must match")
    if t_classes != classes:
        raise ValueError(f"teacher_logits has {t_classes} classes but student_logits has {classes}; must match")
    if labels is not None:
        if labels.shape != (batch,) or labels.dtype not in _INTEGER_DTYPES:
            raise ValueError(
                f"labels must be a 1-D integer tensor of length {batch} (one class index per example), "
                f"got shape {tuple(labels.shape)} and dtype {labels.dtype}"
            )
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= classes:
            raise ValueError(f"labels must be in the range [0, {classes}), got values {low} to {high}")
    if not bool(torch.isfinite(teacher).all()):
        raise ValueError("teacher_logits contain NaN or inf; rebuild the teacher cache")
