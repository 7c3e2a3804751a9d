"""Calibration and agreement, against a table worked out on paper and a plain-loop second implementation."""

from __future__ import annotations

import math

import pytest
import torch

from kdlab.calibration import (
    ReliabilityBins, expected_calibration_error, mean_confidence, reliability_bins, top1_agreement,
)


def two_class_logits(confidences: list[float]) -> torch.Tensor:
    """Logits whose softmax is exactly [c, 1 − c]: class 0 is predicted with confidence c."""
    c = torch.tensor(confidences, dtype=torch.float64)
    return torch.stack([c.log(), (1 - c).log()], dim=1)


# Six predictions of class 0; label 1 makes a prediction wrong. Bins of width 0.2 put them in
#   (0.8, 1]: 0.9 ✓, 0.9 ✗, 0.95 ✓  → confidence 2.75/3, accuracy 2/3, gap 0.25
#   (0.6, 0.8]: 0.7 ✓, 0.65 ✗       → confidence 0.675,  accuracy 1/2, gap 0.175
#   (0.4, 0.6]: 0.55 ✓              → confidence 0.55,   accuracy 1,   gap 0.45
# ECE = (3·0.25 + 2·0.175 + 1·0.45) / 6 = 1.55 / 6.
PAPER_CONFIDENCES = [0.9, 0.9, 0.7, 0.65, 0.55, 0.95]
PAPER_LABELS = torch.tensor([0, 1, 0, 1, 0, 0])


def test_hand_computed_bins_and_ece():
    bins = reliability_bins(two_class_logits(PAPER_CONFIDENCES), PAPER_LABELS, bins=5)
    assert isinstance(bins, ReliabilityBins)
    torch.testing.assert_close(bins.edges, torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8, 1.0], dtype=torch.float64))
    assert bins.count.tolist() == [0, 0, 1, 2, 3]
    assert math.isnan(bins.confidence[0]) and math.isnan(bins.accuracy[1])  # empty bins say so
    torch.testing.assert_close(bins.confidence[2:], torch.tensor([0.55, 0.675, 2.75 / 3], dtype=torch.float64))
    torch.testing.assert_close(bins.accuracy[2:], torch.tensor([1.0, 0.5, 2 / 3], dtype=torch.float64))
    assert bins.ece == pytest.approx(1.55 / 6)
    assert expected_calibration_error(two_class_logits(PAPER_CONFIDENCES), PAPER_LABELS, bins=5) == pytest.approx(1.55 / 6)


def test_one_bin_ece_is_the_gap_between_mean_confidence_and_accuracy():
    logits = two_class_logits(PAPER_CONFIDENCES)
    assert mean_confidence(logits) == pytest.approx(4.65 / 6)
    assert expected_calibration_error(logits, PAPER_LABELS, bins=1) == pytest.approx(abs(4 / 6 - 4.65 / 6))


def test_confidence_on_an_edge_goes_to_the_lower_bin():
    logits = two_class_logits([0.5, 0.75])  # both exactly on edges of 4 bins
    bins = reliability_bins(logits, torch.tensor([0, 0]), bins=4)
    assert bins.count.tolist() == [0, 1, 1, 0]


def loop_reliability(logits: torch.Tensor, labels: torch.Tensor, bins: int, temperature: float = 1.0):
    """A second implementation, one prediction at a time: counts, confidence sums and hits per bin, then the ECE."""
    count, conf_sum, hits = [0] * bins, [0.0] * bins, [0] * bins
    for row, label in zip(logits.double().tolist(), labels.tolist()):
        scaled = [value / temperature for value in row]
        top = max(scaled)
        exps = [math.exp(value - top) for value in scaled]
        probs = [e / sum(exps) for e in exps]
        confidence = max(probs)
        predicted = probs.index(confidence)
        index = min(bins - 1, max(0, math.ceil(confidence * bins) - 1))  # (i/bins, (i+1)/bins] → i
        count[index] += 1
        conf_sum[index] += confidence
        hits[index] += predicted == label
    ece = sum(abs(hits[i] - conf_sum[i]) for i in range(bins)) / len(labels)
    return count, conf_sum, hits, ece


@pytest.mark.parametrize("bins", [1, 3, 10, 15])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_matches_a_loop_implementation_on_random_logits(bins, temperature):
    generator = torch.Generator().manual_seed(bins)
    logits = 3.0 * torch.randn(200, 5, generator=generator)
    labels = torch.randint(5, (200,), generator=generator)
    count, conf_sum, hits, ece = loop_reliability(logits, labels, bins, temperature)
    result = reliability_bins(logits, labels, bins=bins, temperature=temperature)
    assert result.count.tolist() == count
    filled = result.count > 0
    torch.testing.assert_close(result.confidence[filled], torch.tensor(conf_sum, dtype=torch.float64)[filled] / result.count[filled])
    torch.testing.assert_close(result.accuracy[filled], torch.tensor(hits, dtype=torch.float64)[filled] / result.count[filled])
    assert torch.isnan(result.confidence[~filled]).all() and torch.isnan(result.accuracy[~filled]).all()
    assert result.ece == pytest.approx(ece, abs=1e-12)
    assert expected_calibration_error(logits, labels, bins, temperature) == pytest.approx(ece, abs=1e-12)


@pytest.mark.parametrize("bins", [1, 4, 5, 10, 15])
def test_perfectly_calibrated_predictions_have_zero_ece(bins):
    # 10 predictions at 80 % with 8 right, 5 at 60 % with 3 right, 100 at 99 % with 99 right: each confidence
    # level is right exactly that often, so every bin, however the levels share bins, has a gap of 0.
    confidences = [0.8] * 10 + [0.6] * 5 + [0.99] * 100
    labels = [0] * 8 + [1] * 2 + [0] * 3 + [1] * 2 + [0] * 99 + [1]
    logits, labels = two_class_logits(confidences), torch.tensor(labels)
    assert expected_calibration_error(logits, labels, bins) == pytest.approx(0.0, abs=1e-12)
    # Control: flipping one right answer to wrong breaks it.
    labels[0] = 1
    assert expected_calibration_error(logits, labels, bins) > 0.005


def test_temperature_softens_without_changing_predictions():
    generator = torch.Generator().manual_seed(0)
    logits = 4.0 * torch.randn(300, 6, generator=generator)
    labels = torch.randint(6, (300,), generator=generator)
    confidences = [mean_confidence(logits, t) for t in (0.5, 1.0, 2.0, 4.0, 100.0)]
    assert confidences == sorted(confidences, reverse=True)  # higher T → less confident
    assert confidences[-1] == pytest.approx(1 / 6, abs=0.01)  # very high T → nearly uniform
    assert mean_confidence(logits, 2.0) == pytest.approx(mean_confidence(logits / 2.0))
    hot, scaled = reliability_bins(logits, labels, 10, temperature=3.0), reliability_bins(logits / 3.0, labels, 10)
    torch.testing.assert_close(hot.count, scaled.count)
    assert hot.ece == pytest.approx(scaled.ece)
    plain = reliability_bins(logits, labels, 10)
    # The same predictions are right: temperature moves them between bins but never changes the argmax.
    total_hits = lambda b: float((b.accuracy.nan_to_num() * b.count).sum())
    assert total_hits(hot) == pytest.approx(total_hits(plain))


def test_overconfident_model_gets_better_calibrated_when_softened():
    # Always 99 % sure, right 70 % of the time: T > 1 lowers confidence towards 70 % and the ECE with it.
    confidences, labels = [0.99] * 10, torch.tensor([0] * 7 + [1] * 3)
    logits = two_class_logits(confidences)
    assert expected_calibration_error(logits, labels, 10) == pytest.approx(0.29)
    assert expected_calibration_error(logits, labels, 10, temperature=2.0) < expected_calibration_error(logits, labels, 10)


def test_top1_agreement_counts_same_argmax():
    a = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    b = torch.tensor([[9.0, 1.0, 0.0], [0.0, 1.0, 2.0], [1.0, 0.0, 2.0], [0.0, 4.0, 0.0]])
    assert top1_agreement(a, b) == pytest.approx(0.5)  # rows 0 and 2 agree
    assert top1_agreement(a, a) == 1.0


@pytest.mark.parametrize("call, message", [
    (lambda: reliability_bins(torch.zeros(4, 3), torch.zeros(3, dtype=torch.long)), "labels"),
    (lambda: reliability_bins(torch.zeros(4), torch.zeros(4, dtype=torch.long)), "logits"),
    (lambda: reliability_bins(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)), "no examples"),
    (lambda: reliability_bins(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), bins=0), "bins"),
    (lambda: reliability_bins(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), bins=2.5), "bins"),
    (lambda: reliability_bins(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), temperature=0.0), "temperature"),
    (lambda: expected_calibration_error(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), temperature=-1.0), "temperature"),
    (lambda: expected_calibration_error(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), temperature=float("nan")), "temperature"),
    (lambda: mean_confidence(torch.zeros(4, 3), temperature=0.0), "temperature"),
    (lambda: mean_confidence(torch.zeros(4, 3), temperature=-2.0), "temperature"),
    (lambda: top1_agreement(torch.zeros(4, 3), torch.zeros(5, 3)), "same examples"),
    (lambda: top1_agreement(torch.zeros(0, 3), torch.zeros(0, 3)), "no examples"),
])
def test_mistakes_raise_value_errors_that_say_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("bad, error", [("2", TypeError), (True, TypeError), (None, TypeError), (1001.0, ValueError),
                                        (float("inf"), ValueError)])
def test_temperature_is_checked_by_kdlab_checks(bad, error):
    """The same rule as every other module (kdlab.checks.check_temperature): no strings, bools, None, inf or T > 1000."""
    logits, labels = torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)
    for call in (lambda: reliability_bins(logits, labels, temperature=bad), lambda: mean_confidence(logits, temperature=bad)):
        with pytest.raises(error, match="temperature"):
            call()
