"""A time limit for calling a learner's code, so an endless loop cannot hang a lesson (notebook 03).

The checker (`kdlab.check_distillation_loss`) and the exercise checks (`kdlab.exercises`) both call code the
learner wrote; both go through `run_with_time_limit`.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Callable, TypeVar

T = TypeVar("T")


class TimedOut(Exception):
    """The learner's code did not return within the time it was given."""


class _Abandoned(BaseException):
    """Raised inside a thread the caller stopped waiting for (a BaseException, so `except Exception` won't catch it)."""


def run_with_time_limit(work: Callable[[], T], seconds: float) -> T:
    """work() in a daemon thread: its result, its own exception, or TimedOut after `seconds`.

    A thread still running at the deadline is asked to stop (CPython raises an exception inside it between
    bytecodes, which ends a pure-Python loop at once) and left behind as a daemon. A loop that swallows that
    exception with a bare `except:`, or a thread stuck inside one long C call, runs on until it notices.
    """
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except _Abandoned:
            pass
        except BaseException as error:  # handed back to the caller's thread, which reports it
            box["error"] = error

    thread = threading.Thread(target=target, name="kdlab-learner-code", daemon=True)
    thread.start()
    try:
        thread.join(max(0.0, seconds))
    except BaseException:  # interrupted by hand (■ / Ctrl-C): don't leave the learner's loop spinning
        _ask_to_stop(thread)
        raise
    if thread.is_alive():
        _ask_to_stop(thread)
        raise TimedOut(f"your code did not return within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _ask_to_stop(thread: threading.Thread) -> None:
    """Raise _Abandoned inside a stuck thread (CPython checks for it between bytecodes)."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(_Abandoned))
