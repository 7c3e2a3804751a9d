"""Calibration and agreement: does a model's confidence mean what it says, and does the student copy the teacher?

Expected calibration error (Guo et al. 2017, https://arxiv.org/abs/1706.04599): sort predictions into
confidence bins and average |accuracy − confidence| over bins, weighted by how many predictions each holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .checks import check_temperature


@dataclass
class ReliabilityBins:
    """Per confidence bin: mean confidence, accuracy and count — the bars of a reliability diagram."""

    edges: Tensor  # bins + 1 edges from 0 to 1
    confidence: Tensor  # mean top-1 probability in each bin (nan where empty)
    accuracy: Tensor  # fraction correct in each bin (nan where empty)
    count: Tensor  # predictions in each bin

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean gap between accuracy and confidence."""
        filled = self.count > 0
        gaps = (self.accuracy[filled] - self.confidence[filled]).abs()
        return float((gaps * self.count[filled]).sum() / self.count.sum())


def reliability_bins(logits: Tensor, labels: Tensor, bins: int = 15, temperature: float = 1.0) -> ReliabilityBins:
    """Bin top-1 confidences into equal-width bins; `temperature` rescales logits first (T > 1 softens)."""
    logits, labels = _check(logits, labels)
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be an integer ≥ 1, got {bins!r}")
    temperature = check_temperature(temperature)
    probs = torch.softmax(logits.double() / temperature, dim=1)
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == labels).double()
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    # bin i holds confidences in (edge_i, edge_i+1]; a confidence of exactly 0 cannot occur for a top-1 prob
    index = (torch.bucketize(confidence, edges, right=False) - 1).clamp(0, bins - 1)
    count = torch.bincount(index, minlength=bins).double()
    conf_sum = torch.bincount(index, weights=confidence, minlength=bins)
    correct_sum = torch.bincount(index, weights=correct, minlength=bins)
    empty = count == 0
    mean_conf = torch.where(empty, torch.nan, conf_sum / count.clamp(min=1))
    accuracy = torch.where(empty, torch.nan, correct_sum / count.clamp(min=1))
    return ReliabilityBins(edges, mean_conf, accuracy, count)


def expected_calibration_error(logits: Tensor, labels: Tensor, bins: int = 15, temperature: float = 1.0) -> float:
    """ECE in [0, 1]: 0 means 'when it says 80 %, it is right 80 % of the time'."""
    return reliability_bins(logits, labels, bins, temperature).ece


def mean_confidence(logits: Tensor, temperature: float = 1.0) -> float:
    """Average top-1 probability: compare with accuracy to see over- or under-confidence at a glance."""
    temperature = check_temperature(temperature)
    return float(torch.softmax(logits.double() / temperature, dim=1).max(dim=1).values.mean())


def top1_agreement(logits_a: Tensor, logits_b: Tensor) -> float:
    """Fraction of examples where two models pick the same class: how faithfully a student copies its teacher."""
    if logits_a.shape != logits_b.shape:
        raise ValueError(f"both models must score the same examples: shapes {tuple(logits_a.shape)} and {tuple(logits_b.shape)}")
    if len(logits_a) == 0:
        raise ValueError("no examples: pass at least one row of logits")
    return float((logits_a.argmax(dim=1) == logits_b.argmax(dim=1)).double().mean())


def _check(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Turn shape mistakes into messages that say what was expected."""
    logits, labels = torch.as_tensor(logits), torch.as_tensor(labels)
    if logits.ndim != 2:
        raise ValueError(f"logits must be (examples, classes), got shape {tuple(logits.shape)}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must hold one class index per row of logits ({logits.shape[0]}), got shape {tuple(labels.shape)}")
    if len(labels) == 0:
        raise ValueError("no examples: pass at least one row of logits")
    return logits, labels.long()
