"""The knowledge-distillation loss of Hinton et al. (2015), https://arxiv.org/abs/1503.02531 (notebook 03).

    L = lam * CE(z_s, y) + (1 - lam) * T² * KL(p_T ‖ p_S),  p_T = softmax(z_t / T),  p_S = softmax(z_s / T)

Partly labelled batches: `labels` may hold -100 (PyTorch's and Hugging Face's ignore index) for rows that
have no label. Every row weighs 1: a labelled row contributes lam·CE_i + (1 − lam)·KD_i, an unlabelled row
KD_i (only the teacher has anything to say about it), and the loss is the mean over rows. This is the one
rule: the training loop, the Trainer, the checker and the notebooks all call `distillation_loss` itself.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .checks import WrongTypeError, check_beta, check_lam, check_temperature

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


# --- language models: the generalised Jensen-Shannon divergence of GKD (notebook 11) ---


def generalized_jsd(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor | None = None,
    beta: float = 0.5,
    temperature: float = 1.0,
) -> Tensor:
    """Compare a student's and a teacher's next-token distributions at every position: β = 0 forward KL, 1 reverse (notebook 11).

    Follows TRL's `GKDTrainer.generalized_jsd_loss` (Agarwal et al. 2023, https://arxiv.org/abs/2306.13649), which
    the tests use as the reference. Logits are (batch, length, vocab); both are divided by T (no T² factor here).
    β = 0 gives KL(p_T ‖ p_S) (mode-covering), β = 1 gives KL(p_S ‖ p_T) (mode-seeking), in between
    β·KL(p_T ‖ M) + (1 − β)·KL(p_S ‖ M) with M = β·p_T + (1 − β)·p_S. The JSD tends to 0 as β → 0 or 1, not to a
    KL, which is why the two ends are defined separately. Positions whose label is -100 (padding, prompt) are
    dropped; the result is the sum over kept positions divided by their number (by the batch size when
    `labels` is None, as TRL does).
    """
    beta = check_beta(beta)
    temperature = check_temperature(temperature)
    _check_sequence_inputs(student_logits, teacher_logits, labels)
    # The teacher is a fixed target: no gradient may flow back into it. The input dtype is kept (as TRL does):
    # at the temperatures a language model is distilled at (1 to 2) float32 is exact enough and twice as fast.
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)

    def kl(log_p: Tensor, log_q: Tensor) -> Tensor:  # KL(p ‖ q) at each position, summed over the vocabulary
        return (log_p.exp() * (log_p - log_q)).sum(dim=-1)

    if beta == 0.0:
        divergence = kl(log_p_teacher, log_p_student)
    elif beta == 1.0:
        divergence = kl(log_p_student, log_p_teacher)
    else:
        log_mixture = torch.logsumexp(
            torch.stack([log_p_teacher + math.log(beta), log_p_student + math.log1p(-beta)]), dim=0
        )
        divergence = beta * kl(log_p_teacher, log_mixture) + (1 - beta) * kl(log_p_student, log_mixture)
    if labels is None:
        return divergence.sum() / divergence.shape[0]
    kept = labels.to(divergence.device) != IGNORE_INDEX
    # clamp: a batch with no kept position gives 0 (with a gradient path), not 0/0, as in TRL
    return divergence[kept].sum() / kept.sum().clamp_min(1)


def _check_sequence_inputs(student: Tensor, teacher: Tensor, labels: Tensor | None) -> None:
    """Logits (batch, length, vocab) of one shape and labels (batch, length) of integers, before torch fails obscurely."""
    for logits, name in ((student, "student_logits"), (teacher, "teacher_logits")):
        _check_logits(logits, name, ndim=None)
        if logits.ndim != 3 or logits.numel() == 0:
            raise ValueError(
                f"{name} must be 3-D (batch, length, vocab) with no empty dimension, got shape {tuple(logits.shape)}; "
                "for one sequence use logits.unsqueeze(0)"
            )
    if teacher.shape != student.shape:
        raise ValueError(
            f"teacher_logits has shape {tuple(teacher.shape)} but student_logits has {tuple(student.shape)}; "
            "they must match (same batch, positions and vocabulary: the same tokenizer)"
        )
    if labels is not None:
        if not isinstance(labels, Tensor):
            raise WrongTypeError(f"labels must be a torch.Tensor (or None), got {type(labels).__name__}; use torch.as_tensor(labels)")
        if tuple(labels.shape) != tuple(student.shape[:2]) or labels.dtype not in _INTEGER_DTYPES:
            raise ValueError(
                f"labels must be an integer tensor of shape {tuple(student.shape[:2])} (batch, length), {IGNORE_INDEX} "
                f"at positions to drop, got shape {tuple(labels.shape)} and dtype {labels.dtype}"
            )
