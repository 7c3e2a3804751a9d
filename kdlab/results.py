"""Results the benchmark scripts saved: one shape for all of them, read by notebooks 06, 08 and 09.

`benchmarks/kd_quality.py --section S` and `benchmarks/deployment.py --json PATH` each write a JSON file of rows
plus the machine, the date and their settings. `kdlab.tuning.benchmark_results(section)` and
`kdlab.deployment.benchmark_results(path)` read them into the same `BenchmarkResults`, and refuse a missing file
(FileNotFoundError) or a malformed one (ValueError) with the command that writes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BenchmarkResults:
    """Rows a benchmark measured on one machine, one day: a reference to compare with, not a live measurement."""

    rows: list[dict]
    """One dict per measured setting or model (the table's rows)."""
    meta: dict
    """Everything else the script saved: at least machine and date; settings, seconds, ... as each script writes them."""
    source: str
    """Which script measured the rows, where and when: the label every table or figure of them carries."""


def read_benchmark_results(path: str | Path, *, measured_by: str, command: str,
                           required: tuple[str, ...] = ()) -> BenchmarkResults:
    """Read a results file; `command` is what the learner should run to (re)write it, `required` extra keys it must hold."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `{command}` to measure it")
    try:
        stored = json.loads(path.read_text())
    except ValueError as problem:
        raise ValueError(f"{path.name} is not valid JSON ({problem}): rerun `{command}`") from None
    if not isinstance(stored, dict):
        raise ValueError(f"{path.name} holds a {type(stored).__name__}, not a results object: rerun `{command}`")
    missing = [key for key in ("rows", "machine", "date", *required) if key not in stored]
    if missing:
        raise ValueError(f"{path.name} lacks {missing}: rerun `{command}`")
    meta = {key: value for key, value in stored.items() if key != "rows"}
    return BenchmarkResults(stored["rows"], meta, f"measured by {measured_by} on {meta['machine']}, {meta['date']}")


__all__ = ["BenchmarkResults", "read_benchmark_results"]
