"""Checks for the exercises at the end of every lesson: specific feedback, never a crash (notebook 00).

An exercise cell holds a stub for you to complete and ends with one of these checks. A check runs your code
on inputs of its own, compares the result with an independent answer, and tells you what is wrong and how to
get on — it never raises, so a notebook always runs top to bottom. With the environment variable
`KDLAB_EXERCISES=strict` an unsolved or wrong exercise raises `ExerciseNotSolved` instead: the tests run every
notebook that way, once with the stubs (each exercise must fail) and once with the solutions (none may).

Each check returns a `Feedback` (shown as a coloured box in Jupyter, as text elsewhere) whose `solved` says
whether the exercise is done.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .language import tr
from .time_limit import TimedOut, run_with_time_limit

STRICT_ENV = "KDLAB_EXERCISES"


class ExerciseNotSolved(AssertionError):
    """Raised by a check under KDLAB_EXERCISES=strict when the exercise is not (yet) solved."""


@dataclass
class Feedback:
    """What a check found: solved or not, what is wrong, and a hint towards the fix."""

    name: str
    solved: bool
    message: str
    hint: str = ""

    def __str__(self) -> str:
        status = tr("✔ solved") if self.solved else tr("✘ not solved yet")
        hint = "\n  " + tr("hint: {hint}", hint=self.hint) if self.hint and not self.solved else ""
        return f"{self.name}: {status} — {self.message}{hint}"

    def _repr_html_(self) -> str:
        colour, mark = ("#e6f4ea", tr("✔ solved")) if self.solved else ("#fdecea", tr("✘ not solved yet"))
        hint = f"<br><b>{html.escape(tr('Hint:'))}</b> {html.escape(self.hint)}" if self.hint and not self.solved else ""
        return (f'<div style="background:{colour};padding:8px 12px;border-radius:6px;font-size:1.05em">'
                f"<b>{html.escape(self.name)}: {mark}</b> — {html.escape(self.message)}{hint}</div>")

    def __repr__(self) -> str:
        return str(self)


def strict() -> bool:
    """True when KDLAB_EXERCISES=strict: unsolved exercises raise (the tests use it)."""
    return os.environ.get(STRICT_ENV, "").strip().lower() == "strict"


def _report(name: str, solved: bool, message: str, hint: str = "") -> Feedback:
    """Build the feedback (in the current language), and raise it instead under strict mode when not solved."""
    # The notebook's own words (name, hint) are looked up too, in the catalog its translators wrote.
    feedback = Feedback(tr(name), solved, message, tr(hint) if hint else hint)
    if not solved and strict():
        raise ExerciseNotSolved(str(feedback))
    return feedback


def _is_unfinished(value: Any) -> bool:
    """A stub's placeholder: `...` or None where an answer belongs."""
    return value is Ellipsis or value is None


def call_with_time_limit(fn: Callable, *args, seconds: float = 20.0, **kwargs):
    """Call a learner's function under kdlab.time_limit: an endless loop becomes feedback, not a hung lesson."""
    return run_with_time_limit(lambda: fn(*args, **kwargs), seconds)


def _describe_error(error: BaseException) -> tuple[str, str]:
    """A message and a hint for an exception raised by the learner's code."""
    if isinstance(error, NotImplementedError):
        return (tr("the stub still raises NotImplementedError"),
                tr("replace the `raise NotImplementedError` line with your code"))
    if isinstance(error, TimedOut):
        return str(error), tr("look for a loop that never ends")
    if isinstance(error, TypeError) and "Ellipsis" in str(error):
        return tr("a `...` placeholder is still there ({error})", error=error), tr("replace every `...` with your code")
    return (tr("your code raised {type_name}: {error}", type_name=type(error).__name__, error=error),
            tr("read the error line by line; run your code on a tiny input"))


def _close(actual: Any, expected: Any, rtol: float, atol: float) -> tuple[bool, str]:
    """Compare numbers, arrays or tensors; say how far apart they are when they are not close."""
    try:
        a = np.asarray(actual.detach().cpu() if hasattr(actual, "detach") else actual, dtype=np.float64)
        e = np.asarray(expected.detach().cpu() if hasattr(expected, "detach") else expected, dtype=np.float64)
    except (TypeError, ValueError):
        return actual == expected, tr("got {actual!r}, expected {expected!r}", actual=actual, expected=expected)
    if a.shape != e.shape:
        return False, tr("the shape is {shape}, expected {expected}", shape=a.shape, expected=e.shape)
    if not np.all(np.isfinite(a)):
        return False, tr("the result holds NaN or inf")
    if np.allclose(a, e, rtol=rtol, atol=atol):
        return True, ""
    worst = float(np.max(np.abs(a - e)))
    if a.size == 1:
        return False, tr("got {actual:.6g}, expected {expected:.6g}", actual=a.item(), expected=e.item())
    return False, tr("got largest difference {worst:.3g}", worst=worst)


def check_value(name: str, answer: Any, expected: Any, *, hint: str = "", rtol: float = 1e-4, atol: float = 1e-6) -> Feedback:
    """Compare a value the learner computed (a number, array or tensor) with the independent answer."""
    if _is_unfinished(answer):
        return _report(name, False, tr("no answer yet: the `...` placeholder is still there"),
                       hint or tr("replace `...` with your computation"))
    ok, detail = _close(answer, expected, rtol, atol)
    return _report(name, ok, tr("matches the expected value") if ok else detail, hint)


def check_function(
    name: str,
    fn: Callable,
    cases: Sequence[tuple[tuple, Any]],
    *,
    hint: str = "",
    rtol: float = 1e-4,
    atol: float = 1e-6,
    seconds: float = 20.0,
) -> Feedback:
    """Run the learner's function on each (args, expected) case and name the first case it gets wrong."""
    if not callable(fn):
        return _report(name, False, tr("expected a function, got {type_name}", type_name=type(fn).__name__), hint)
    for number, (args, expected) in enumerate(cases, start=1):
        try:
            actual = call_with_time_limit(fn, *args, seconds=seconds)
        except BaseException as error:  # noqa: BLE001
            message, default_hint = _describe_error(error)
            return _report(name, False, message, hint or default_hint)
        if _is_unfinished(actual):
            return _report(name, False, tr("your function returns nothing yet (None or `...`)"),
                           hint or tr("finish the body and `return` the result"))
        ok, detail = _close(actual, expected, rtol, atol)
        if not ok:
            return _report(name, False, tr("case {number} of {total}: {detail}", number=number, total=len(cases),
                                           detail=detail), hint)
    return _report(name, True, tr("all {total} cases match the independent answer", total=len(cases)))


def check_choice(name: str, answer: Any, correct: Any, *, options: Sequence[Any] | None = None, why: str = "") -> Feedback:
    """A 'predict, then run' question: the learner writes a choice; the check says whether it was right and why."""
    if _is_unfinished(answer):
        if options:
            message = tr("write your prediction first: one of {options}", options=list(options))
        else:
            message = tr("write your prediction first:")
        return _report(name, False, message, tr("predict before you look at the result"))
    if options is not None and answer not in options:
        return _report(name, False, tr("{answer!r} is not one of the options {options}", answer=answer, options=list(options)),
                       tr("pick one of the listed options"))
    ok = answer == correct
    why = tr(why) if why else why  # the notebook's words, from its catalog
    message = tr("yes — {why}", why=why) if ok else tr("not quite: the answer is {correct!r}. {why}", correct=correct, why=why)
    return _report(name, ok, message.strip(), "")


def check_true(name: str, condition: Any, message_if_true: str, message_if_false: str, *, hint: str = "") -> Feedback:
    """A custom condition computed in the notebook (e.g. 'the new curve lies above the old one')."""
    if _is_unfinished(condition):
        return _report(name, False, tr("no answer yet: the `...` placeholder is still there"),
                       hint or tr("replace `...` with your code"))
    ok = bool(condition)
    return _report(name, ok, tr(message_if_true) if ok else tr(message_if_false), hint)  # the notebook's catalog


def check_loss_function(name: str, fn: Callable, *, hint: str = "", seconds: float = 20.0) -> Feedback:
    """A KD loss written by the learner: correct when kdlab's checker finds no problem; else it names the bug."""
    from .checker import check_distillation_loss

    if not callable(fn):
        return _report(name, False, tr("expected a loss function, got {type_name}", type_name=type(fn).__name__), hint)
    findings = check_distillation_loss(fn, timeout_s=seconds)  # an endless loop comes back as a 'timed-out' finding
    if not findings:
        return _report(name, True, tr("the checker found no problem: same values and gradients as kdlab.distillation_loss"))
    first = findings[0]
    more = (tr(" (and {n} more: {codes})", n=len(findings) - 1, codes=", ".join(f.code for f in findings[1:]))
            if len(findings) > 1 else "")
    return _report(name, False, f"{first.code}: {first.message}{more}", hint or first.fix)


__all__ = [
    "ExerciseNotSolved", "Feedback", "STRICT_ENV", "call_with_time_limit", "check_choice", "check_function",
    "check_loss_function", "check_true", "check_value", "strict",
]
