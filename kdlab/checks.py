"""One set of argument checks for every module: a clear message before any work starts (notebook 03).

Every public function that takes a temperature, a weight λ, a mixture β, a count or a probability checks it
here, so `kdlab.soft_targets`, the training loop, the Trainer, the plots, the widgets and the CLI refuse the
same values with the same words. The rules are strict on purpose: a string, a bool, NaN or inf is refused
even where Python would quietly turn it into a number.
"""

from __future__ import annotations

import math
import numbers

# Above this the float arithmetic of the soft term breaks down: logits / T all round to the same value, so
# the KL between two nearly uniform distributions is lost in rounding (at T = 1e4 the float32 T²·KL read 2.88
# where the true value is 0.596; at 1e5 it came out negative). The loss is computed in float64 and stays
# exact to 1e-6 up to this bound (tests/test_losses.py checks it against 50-digit arithmetic); beyond it,
# T² · KL has long since become logit matching (notebook 03), so no lesson needs more.
MAX_TEMPERATURE = 1000.0


class WrongTypeError(TypeError, ValueError):
    """A wrong kind of value (a string for a number, a list for a tensor): both a TypeError and a ValueError,
    so code that catches the contract's ValueError catches it too."""


def _is_real_number(value) -> bool:
    """True for int, float and numpy scalars; False for bool, str, None, tensors and arrays."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _number(value, name: str, hint: str, finite: bool = True) -> float:
    """The value as a float, or a TypeError that names the argument and says what it should be."""
    if not _is_real_number(value):
        raise WrongTypeError(f"{name} must be a number ({hint}), got {type(value).__name__} {value!r}")
    value = float(value)
    if finite and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number ({hint}), got {value!r}")
    return value


def check_temperature(temperature, name: str = "temperature") -> float:
    """Refuse temperatures outside (0, MAX_TEMPERATURE]: they divide by zero, flip the softmax, or drown in rounding."""
    hint = "1 = plain softmax; 2 to 8 is typical for KD"
    value = _number(temperature, name, hint)
    if not 0 < value <= MAX_TEMPERATURE:
        raise ValueError(f"{name} must be > 0 and ≤ {MAX_TEMPERATURE:g} ({hint}), got {temperature!r}")
    return value


def check_lam(lam, name: str = "lam") -> float:
    """Refuse λ outside [0, 1]: λ weighs the hard-label CE term, 1 − λ the soft term, and neither may go negative."""
    return _unit_interval(lam, name, "the weight on the hard-label CE term: 1 = labels only, 0 = teacher only, 0.5 = an even blend")


def check_beta(beta, name: str = "beta") -> float:
    """Refuse β outside [0, 1]: the generalised JSD's mixture between forward (0) and reverse (1) KL."""
    return _unit_interval(beta, name, "0 = forward KL(teacher‖student), 1 = reverse KL(student‖teacher), 0.5 = symmetric JSD")


def _unit_interval(value, name: str, hint: str) -> float:
    """A weight in [0, 1]; NaN and inf fail the range test, so they get the range message."""
    number = _number(value, name, hint, finite=False)
    if not 0.0 <= number <= 1.0:  # also False for NaN
        raise ValueError(f"{name} ({hint}) must be in [0, 1], got {value!r}")
    return number


def check_probability(value, name: str, *, allow_one: bool = False) -> float:
    """Refuse a probability outside [0, 1) (or [0, 1] when allow_one), e.g. a dropout rate."""
    upper = "1]" if allow_one else "1)"
    number = _number(value, name, f"a probability in [0, {upper}")
    if not (0.0 <= number <= 1.0 if allow_one else 0.0 <= number < 1.0):
        raise ValueError(f"{name} must be a probability in [0, {upper}, got {value!r}")
    return number


def check_positive_number(value, name: str, hint: str = "a finite number > 0") -> float:
    """Refuse zero, negatives, NaN, inf, strings and bools where a positive amount is needed (a learning rate)."""
    number = _number(value, name, hint)
    if number <= 0:
        raise ValueError(f"{name} must be > 0 ({hint}), got {value!r}")
    return number


def check_non_negative_number(value, name: str, hint: str = "a finite number ≥ 0") -> float:
    """Refuse negatives, NaN, inf, strings and bools where 0 means 'off' (a weight decay, a loss weight)."""
    number = _number(value, name, hint)
    if number < 0:
        raise ValueError(f"{name} must be ≥ 0 ({hint}), got {value!r}")
    return number


def check_count(value, name: str, minimum: int = 1, hint: str | None = None) -> int:
    """Refuse anything but an integer ≥ minimum (floats, bools and strings too), e.g. epochs or a batch size."""
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise WrongTypeError(f"{name} must be an integer ≥ {minimum}{f' ({hint})' if hint else ''}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}{f' ({hint})' if hint else ''}, got {value!r}")
    return int(value)
