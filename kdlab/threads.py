"""One thread policy for notebooks, tests, benchmarks and the checker (notebook 00).

kdlab's models are small: one PyTorch thread is about as fast as several, far faster on a busy or
quota-limited CPU (a Binder session sees every host core but may use one), and gives the same numbers on
every machine. So the policy is: the count `OMP_NUM_THREADS` names when it is set (binder/start sets it to
the session's CPU quota; set it yourself to use more cores), else 1. Every place that sets torch's thread
count calls this module; nothing else calls `torch.set_num_threads`.

The module also holds the one rule for Python threads and transformers: `model_building()` (below).
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Iterator

import torch

from .checks import check_count


def policy_threads() -> tuple[int, str]:
    """The thread count the policy picks, and where it came from (for the notebook's readout)."""
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    if text:
        try:
            return check_count(int(text), "OMP_NUM_THREADS"), f"OMP_NUM_THREADS={text}"
        except (ValueError, TypeError):
            raise ValueError(f"OMP_NUM_THREADS must be a whole number ≥ 1, got {text!r}; unset it or set e.g. OMP_NUM_THREADS=1") from None
    return 1, "kdlab's default for small models (set OMP_NUM_THREADS to use more)"


def set_threads(count: int) -> int:
    """Set torch's thread count for the rest of the process (a benchmark's --threads); the one call to torch's setter."""
    count = check_count(count, "threads")
    torch.set_num_threads(count)
    return count


def use_policy_threads() -> str:
    """Set torch's thread count by the policy and say what was chosen and why, for the first cell of a lesson."""
    count, source = policy_threads()
    set_threads(count)
    return f"torch uses {count} thread(s): {source}"


@contextmanager
def threads(count: int) -> Iterator[None]:
    """Run a block with `count` torch threads and restore the previous count afterwards (tests, the checker)."""
    previous = torch.get_num_threads()
    set_threads(count)
    try:
        yield
    finally:
        set_threads(previous)


# transformers 5's from_pretrained swaps PreTrainedModel.tie_weights for a no-op class-wide while it loads
# (transformers.initialization.no_tie_weights) and puts back whatever it found. Two loads in two threads at once
# can put the no-op back for good, and every GPT-2 built afterwards in that process has an untied output layer:
# 12 % more parameters and a different model. (transformers PR 44940 proposes a per-thread flag.) The lock makes
# kdlab's loads and builds of transformers models take turns.
_MODEL_BUILDING = threading.RLock()


@contextmanager
def model_building() -> Iterator[None]:
    """Load or build one transformers model at a time, because from_pretrained's weight-tying switch is process-wide."""
    with _MODEL_BUILDING:
        yield
