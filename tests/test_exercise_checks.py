"""kdlab.exercises: feedback that names what is wrong, silence by default, a raise under KDLAB_EXERCISES=strict."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F

from kdlab import exercises
from kdlab.exercises import ExerciseNotSolved, check_choice, check_function, check_loss_function, check_true, check_value


@pytest.fixture
def strict(monkeypatch):
    monkeypatch.setenv("KDLAB_EXERCISES", "strict")


@pytest.fixture(autouse=True)
def lenient_by_default(monkeypatch):
    monkeypatch.delenv("KDLAB_EXERCISES", raising=False)


def test_a_value_is_checked_against_the_independent_answer():
    assert check_value("ln 2", math.log(2), 0.6931471805599453).solved
    wrong = check_value("ln 2", 0.7, math.log(2))
    assert not wrong.solved and "got 0.7, expected 0.693147" in wrong.message
    placeholder = check_value("ln 2", ..., math.log(2))
    assert not placeholder.solved and "placeholder" in placeholder.message
    assert not check_value("shape", torch.zeros(2, 3), torch.zeros(3, 2)).solved


def test_strict_mode_raises_only_for_unsolved_exercises(strict):
    assert check_value("ln 2", math.log(2), math.log(2)).solved
    with pytest.raises(ExerciseNotSolved, match="ln 2: ✘ not solved yet"):
        check_value("ln 2", ..., math.log(2))
    with pytest.raises(ExerciseNotSolved):
        check_choice("which", ..., "b", options=["a", "b"])


def test_a_function_is_run_on_cases_and_the_first_wrong_case_is_named():
    cases = [((torch.tensor([1.0, 2.0]),), torch.tensor([0.2689414, 0.7310586])),
             ((torch.tensor([0.0, 0.0]),), torch.tensor([0.5, 0.5]))]
    assert check_function("softmax", lambda z: torch.softmax(z, 0), cases).solved
    assert "case 1 of 2" in check_function("softmax", lambda z: z / z.sum(), cases).message

    def stub(z):
        raise NotImplementedError

    feedback = check_function("softmax", stub, cases)
    assert not feedback.solved and "NotImplementedError" in feedback.message and "replace" in feedback.hint
    assert "returns nothing yet" in check_function("softmax", lambda z: None, cases).message


def test_an_endless_loop_is_stopped_by_the_time_limit():
    def forever(z):
        while True:
            time.sleep(0.01)

    start = time.perf_counter()
    feedback = check_function("loop", forever, [((1,), 1)], seconds=0.5)
    assert time.perf_counter() - start < 3
    assert not feedback.solved and "did not return within 0.5 s" in feedback.message


def test_a_loss_function_is_judged_by_the_checker_which_names_the_bug():
    def right(student, teacher, labels, temperature=4.0, lam=0.5):
        kd = F.kl_div(F.log_softmax(student / temperature, 1), F.softmax(teacher.detach() / temperature, 1),
                      reduction="batchmean") * temperature**2
        return kd if labels is None else lam * F.cross_entropy(student, labels) + (1 - lam) * kd

    def no_t_squared(student, teacher, labels, temperature=4.0, lam=0.5):
        kd = F.kl_div(F.log_softmax(student / temperature, 1), F.softmax(teacher.detach() / temperature, 1),
                      reduction="batchmean")
        return kd if labels is None else lam * F.cross_entropy(student, labels) + (1 - lam) * kd

    assert check_loss_function("KD loss", right).solved
    wrong = check_loss_function("KD loss", no_t_squared)
    assert not wrong.solved and wrong.message.startswith("missing-t-squared") and "temperature ** 2" in wrong.hint


def test_predictions_and_conditions():
    assert check_choice("bigger", "b", "b", options=["a", "b"], why="T² keeps it").solved
    missed = check_choice("bigger", "a", "b", options=["a", "b"], why="T² keeps it")
    assert not missed.solved and "the answer is 'b'" in missed.message
    assert "not one of the options" in check_choice("bigger", "c", "b", options=["a", "b"]).message
    assert check_true("rises", True, "it rises", "it does not").message == "it rises"
    assert not check_true("rises", ..., "it rises", "it does not").solved


def test_feedback_renders_as_html_and_text():
    feedback = check_value("x", 1.0, 2.0, hint="double it")
    assert "✘ not solved yet" in str(feedback) and "hint: double it" in str(feedback)
    assert "<b>Hint:</b> double it" in feedback._repr_html_()
    assert exercises.strict() is False
