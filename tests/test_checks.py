"""kdlab.checks: one set of argument checks, strict about types, with messages that name the argument."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from kdlab.checks import (
    MAX_TEMPERATURE, WrongTypeError, check_beta, check_count, check_lam, check_non_negative_number,
    check_positive_number, check_probability, check_temperature,
)

NOT_NUMBERS = ["4", None, True, False, [4.0], torch.tensor(4.0), np.array([4.0]), object()]


@pytest.mark.parametrize("value", NOT_NUMBERS)
@pytest.mark.parametrize("check", [check_temperature, check_lam, check_beta, check_positive_number])
def test_anything_but_a_real_number_is_refused_as_both_type_and_value_error(check, value):
    name = "x" if check is check_positive_number else None
    args = (value, name) if name else (value,)
    with pytest.raises(WrongTypeError, match=r"must be a number") as caught:
        check(*args)
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, ValueError)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 0.0, -1.0, MAX_TEMPERATURE * 1.0001, 1e30])
def test_temperature_outside_its_range_is_refused(value):
    with pytest.raises(ValueError, match=r"temperature must be"):
        check_temperature(value)


@pytest.mark.parametrize("value", [0.05, 1, 4.0, np.float32(2.5), np.int64(3), MAX_TEMPERATURE])
def test_temperatures_inside_the_range_come_back_as_floats(value):
    result = check_temperature(value)
    assert isinstance(result, float) and result == pytest.approx(float(value))


@pytest.mark.parametrize("check, name", [(check_lam, "lam"), (check_beta, "beta")])
def test_weights_must_lie_in_the_unit_interval(check, name):
    assert check(0) == 0.0 and check(1) == 1.0 and check(np.float64(0.25)) == 0.25
    for bad in (-0.01, 1.01, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=rf"{name} .*must be in \[0, 1\]"):
            check(bad)


def test_counts_probabilities_and_amounts():
    assert check_count(3, "epochs") == 3 and check_count(np.int32(0), "seed", minimum=0) == 0
    for bad in (0, -1):
        with pytest.raises(ValueError, match="epochs must be an integer ≥ 1"):
            check_count(bad, "epochs")
    for bad in (2.0, "2", True):
        with pytest.raises(WrongTypeError, match="epochs must be an integer"):
            check_count(bad, "epochs")
    assert check_probability(0.0, "p") == 0.0
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\)"):
        check_probability(1.0, "p")
    assert check_probability(1.0, "p", allow_one=True) == 1.0
    with pytest.raises(ValueError, match="lr must be > 0"):
        check_positive_number(0.0, "lr")
    assert check_non_negative_number(0, "weight_decay") == 0.0
    with pytest.raises(ValueError, match="weight_decay must be ≥ 0"):
        check_non_negative_number(-1e-9, "weight_decay")


def test_the_maximum_temperature_is_where_float32_could_no_longer_be_trusted():
    # The reason for the bound, measured: the textbook float32 formula drifts away from the truth as T grows.
    generator = torch.Generator().manual_seed(0)
    student, teacher = 3 * torch.randn(64, 77, generator=generator), 3 * torch.randn(64, 77, generator=generator)

    def float32_kd(T):
        log_p_t, log_p_s = torch.log_softmax(teacher / T, 1), torch.log_softmax(student / T, 1)
        return (T**2 * (log_p_t.exp() * (log_p_t - log_p_s)).sum(1).mean()).item()

    def float64_kd(T):
        log_p_t, log_p_s = torch.log_softmax(teacher.double() / T, 1), torch.log_softmax(student.double() / T, 1)
        return (T**2 * (log_p_t.exp() * (log_p_t - log_p_s)).sum(1).mean()).item()

    assert abs(float32_kd(1e4) / float64_kd(1e4) - 1) > 0.05  # float32 is already off by more than 5 % here
    assert math.isclose(float64_kd(MAX_TEMPERATURE), float64_kd(MAX_TEMPERATURE / 2), rel_tol=1e-2)  # the limit


def test_no_module_keeps_a_temperature_check_of_its_own():
    kdlab = Path(__file__).resolve().parents[1] / "kdlab"
    own = [path.name for path in kdlab.rglob("*.py") if re.search(r"def _?check_temperature", path.read_text())]
    assert own == ["checks.py"], own


def test_one_thread_policy_and_one_setter(monkeypatch):
    import torch

    from kdlab import threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.policy_threads()[0] == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.policy_threads() == (3, "OMP_NUM_THREADS=3")
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS must be a whole number"):
        threads.policy_threads()
    before = torch.get_num_threads()
    with threads.threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    root = Path(__file__).resolve().parents[1]
    callers = [str(p.relative_to(root)) for folder in ("kdlab", "benchmarks", "scripts", "tests")
               for p in (root / folder).rglob("*.py") if "torch.set_num_threads(" in p.read_text() and p.name != "test_checks.py"]
    assert callers == ["kdlab/threads.py"], callers
