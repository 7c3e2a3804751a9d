"""Omit-a-class: the transfer set without the class, the bias-shift scan worked out by hand, the whole experiment on toy data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import kdlab.tuning as tuning
from kdlab.omitted_class import (
    best_bias_shift, bias_shift_scan, omit_class_experiment, output_layer, raise_class_bias, rows_without_class,
    shift_class_logit,
)
from kdlab.students import build_student
from kdlab.training import predict_logits


@pytest.mark.parametrize("class_index", [0, 1, 2])
def test_rows_without_class_drops_exactly_that_intent(toy_cache, class_index):
    name = toy_cache.label_names[class_index]
    # the intent of each train row, read from the toy .tsv file rather than from the cache
    intents = [line.split("\t")[1] for line in (Path(toy_cache.meta["data"]) / "train.tsv").read_text().splitlines()[1:]]
    expected = [i for i, intent in enumerate(intents) if intent != name]
    rows = rows_without_class(toy_cache, class_index)
    assert rows.tolist() == expected
    assert len(rows) == 60  # the toy data holds 30 of each of the 3 intents
    assert (toy_cache.labels["train"][rows] != class_index).all()


@pytest.mark.parametrize("bad", [-1, 3, 1.0, "card_lost"])
def test_rows_without_class_refuses_a_class_that_does_not_exist(toy_cache, bad):
    with pytest.raises(ValueError, match="class_index"):
        rows_without_class(toy_cache, bad)


def test_shift_class_logit_moves_one_column_of_a_copy():
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    before = logits.clone()
    shifted = shift_class_logit(logits, 2, 1.5)
    assert torch.equal(logits, before)  # the input is not modified
    assert torch.equal(shifted[:, [0, 1, 3]], logits[:, [0, 1, 3]])
    torch.testing.assert_close(shifted[:, 2], logits[:, 2] + 1.5)
    with pytest.raises(ValueError, match="class_index"):
        shift_class_logit(logits, 4, 1.0)


# Five dev rows, three classes; class 2 is the one the student never saw.
LOGITS = torch.tensor([
    [2.0, 0.0, 1.0],   # label 0
    [0.0, 2.0, 1.5],   # label 2
    [1.0, 0.0, 0.2],   # label 2
    [0.0, 1.0, 0.8],   # label 1
    [3.0, 0.0, 0.0],   # label 0
])
LABELS = torch.tensor([0, 2, 2, 1, 0])
# Worked out by hand, shift → predictions → (accuracy, recall of class 2, precision of class 2):
#   0.0 → [0, 1, 0, 1, 0] → (3/5, 0/2, 0 since nothing is called class 2)
#   0.6 → [0, 2, 0, 2, 0] → (3/5, 1/2, 1/2)
#   0.9 → [0, 2, 2, 2, 0] → (4/5, 2/2, 2/3)
#   1.5 → [2, 2, 2, 2, 0] → (3/5, 2/2, 2/4)
HAND = pd.DataFrame({
    "shift": [0.0, 0.6, 0.9, 1.5],
    "accuracy": [0.6, 0.6, 0.8, 0.6],
    "class_recall": [0.0, 0.5, 1.0, 1.0],
    "class_precision": [0.0, 0.5, 2 / 3, 0.5],
})


def test_bias_shift_scan_matches_the_hand_computed_table():
    scan = bias_shift_scan(LOGITS, LABELS, 2, [0.0, 0.6, 0.9, 1.5])
    assert list(scan.columns) == ["shift", "accuracy", "class_recall", "class_precision"]
    pd.testing.assert_frame_equal(scan, HAND, check_exact=False, atol=1e-6)
    assert best_bias_shift(scan) == pytest.approx(0.9)


def test_best_bias_shift_takes_the_smallest_shift_among_ties():
    scan = bias_shift_scan(LOGITS, LABELS, 2, [1.5, 0.6, 0.0])  # all three at accuracy 3/5, given out of order
    assert scan["accuracy"].tolist() == pytest.approx([0.6, 0.6, 0.6])
    assert best_bias_shift(scan) == 0.0
    table = pd.DataFrame({"shift": [2.0, 1.0, 3.0, 0.5], "accuracy": [0.5, 0.5, 0.4, 0.45]})
    assert best_bias_shift(table) == 1.0


def test_bias_shift_scan_needs_the_class_in_the_labels():
    with pytest.raises(ValueError, match="no examples of class 1"):
        bias_shift_scan(LOGITS, torch.tensor([0, 2, 2, 0, 0]), 1, [0.0])
    with pytest.raises(ValueError, match="class_index"):
        bias_shift_scan(LOGITS[:, :2], LABELS, 2, [0.0])


@pytest.mark.parametrize("kind, options", [("bag", {"dim": 8}), ("tiny-bert", {"layers": 1, "hidden": 16, "heads": 2})])
def test_raise_class_bias_shifts_the_models_logits_like_shift_class_logit(toy_cache, tiny_teacher, kind, options):
    _, tokenizer = tiny_teacher
    model = build_student(kind, tokenizer, 3, **options).eval()
    assert output_layer(model) is (model.classifier[-1] if kind == "bag" else model.head)
    dev = toy_cache.tokens["dev"]
    before = predict_logits(model, dev)
    raise_class_bias(model, 1, 2.5)
    after = predict_logits(model, dev)
    torch.testing.assert_close(after, shift_class_logit(before, 1, 2.5), atol=1e-5, rtol=1e-5)
    assert torch.equal(after.argmax(dim=1), shift_class_logit(before, 1, 2.5).argmax(dim=1))


def test_raise_class_bias_errors():
    with pytest.raises(ValueError, match="no Linear layer"):
        raise_class_bias(nn.Sequential(nn.ReLU()), 0, 1.0)
    with pytest.raises(ValueError, match="class_index"):
        raise_class_bias(nn.Linear(4, 3), 3, 1.0)


@pytest.fixture(scope="module")
def experiment(toy_cache, tiny_teacher):
    """Omit class 1 from the toy transfer set; record what reached train_student."""
    calls = []
    real = tuning.train_student

    def spy(student, cache, **options):
        calls.append(options)
        return real(student, cache, **options)

    tuning.train_student = spy
    try:
        result = omit_class_experiment(toy_cache, tiny_teacher[1], 1, temperature=4.0, lam=0.5,
                                       student_options={"dim": 8}, epochs=6)
    finally:
        tuning.train_student = real
    return result, calls


def test_omit_class_experiment_returns_the_documented_keys(experiment, toy_cache):
    result, _ = experiment
    assert {"class_index", "class_name", "train_rows", "removed_rows", "CE only", "KD"} <= set(result)
    assert (result["class_index"], result["class_name"]) == (1, toy_cache.label_names[1])
    assert (result["train_rows"], result["removed_rows"]) == (60, 30)
    for method in ("CE only", "KD"):
        entry = result[method]
        assert set(entry) == {"model", "dev_logits", "scan", "best_shift", "dev_accuracy", "recall_as_trained", "test"}
        logits, labels = entry["dev_logits"], toy_cache.labels["dev"]
        assert logits.shape == (30, 3)
        torch.testing.assert_close(logits, predict_logits(entry["model"], toy_cache.tokens["dev"]))
        assert entry["dev_accuracy"] == pytest.approx(float((logits.argmax(1) == labels).float().mean()))
        assert entry["scan"]["shift"].tolist() == [0.5 * i for i in range(21)]  # the default grid
        assert entry["best_shift"] == best_bias_shift(entry["scan"])
        is_class = labels == 1
        recall = float(((logits.argmax(1) == 1) & is_class).sum() / is_class.sum())
        assert entry["recall_as_trained"] == pytest.approx(recall)
        # test is scored twice, as trained and at the shift dev chose, by hand from the model's own test logits
        test_logits, test_labels = predict_logits(entry["model"], toy_cache.tokens["test"]), toy_cache.labels["test"]
        assert entry["test"]["shift"].tolist() == [0.0, entry["best_shift"]]
        for row, shift in zip(entry["test"].itertuples(), (0.0, entry["best_shift"])):
            shifted = test_logits.clone()
            shifted[:, 1] += shift
            predicted, is_class = shifted.argmax(1), test_labels == 1
            assert row.class_recall == pytest.approx(float(((predicted == 1) & is_class).sum() / is_class.sum()))
            assert row.accuracy == pytest.approx(float((predicted == test_labels).float().mean()))


def test_both_students_train_without_the_class_and_only_kd_sees_the_teacher(experiment, toy_cache):
    _, calls = experiment
    assert [call["lam"] for call in calls] == [1.0, 0.5]
    for call in calls:
        assert torch.equal(call["rows"], rows_without_class(toy_cache, 1))


def test_ce_only_student_never_predicts_the_class_it_never_saw(experiment):
    # CE on the other labels only ever pushes the omitted class's logit down (its bias gradient is +p > 0);
    # on the toy data that leaves it never the top class on dev.
    result, _ = experiment
    assert result["CE only"]["recall_as_trained"] == 0.0
    assert (result["CE only"]["dev_logits"].argmax(1) != 1).all()
