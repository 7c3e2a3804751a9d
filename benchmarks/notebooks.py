"""Run every notebook in a fresh kernel on ONE core, as on Binder; print wall time and peak memory against the budgets.

    python benchmarks/notebooks.py              # with the teacher cache as it is (build it first for the "warm" row)
    python benchmarks/notebooks.py --solutions  # the same, with every exercise's solution pasted in
    python benchmarks/notebooks.py --cold       # from nothing: the teacher cache goes to an empty temp folder

The process pins itself (and so every kernel it starts) to CPU 0, like `taskset -c 0`, with one torch thread.
Budgets (docs/ARCHITECTURE.md): each notebook ≤ 90 s on one core with the caches present and ≤ 1.5 GB peak RSS.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
PEAK_RSS_CELL = "import resource, json; print(json.dumps({'peak_rss_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))"
RSS_BUDGET_GB = 1.5
TIME_BUDGET_S = 90


def run_notebook(path: Path, solutions: bool = False) -> tuple[float, float]:
    """Execute one notebook top to bottom in a new kernel; return (seconds, peak RSS in GB)."""
    notebook = nbformat.read(path, as_version=4)
    if solutions:
        sys.path.insert(0, str(REPO / "tests"))
        from exercise_runs import with_solutions

        notebook = with_solutions(notebook)
    notebook.cells.append(nbformat.v4.new_code_cell(PEAK_RSS_CELL))
    client = NotebookClient(notebook, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    text = "".join(out.get("text", "") for out in notebook.cells[-1].outputs)
    peak_kb = json.loads(text.strip().splitlines()[-1])["peak_rss_kb"]
    return seconds, peak_kb / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="start without a teacher cache (KDLAB_CACHE = empty temp folder)")
    parser.add_argument("--solutions", action="store_true", help="paste every exercise's solution in before running")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/[0-9]*.ipynb")
    args = parser.parse_args()
    paths = args.notebooks or sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"  # kdlab's thread policy reads it: one torch thread, as binder/start sets it
    os.sched_setaffinity(0, {0})  # one core, like Binder and `taskset -c 0`; the kernels inherit it
    if args.cold:
        os.environ["KDLAB_CACHE"] = tempfile.mkdtemp(prefix="kdlab-cold-cache-")
    mode = ("cold (no teacher cache)" if args.cold else "teacher cache present") + (", solutions pasted in" if args.solutions else ", as committed")
    print(f"# Notebooks — {datetime.date.today()} — pinned to 1 of {os.cpu_count()} cores — {mode}\n")
    print(f"| notebook | wall time (s) | ≤ {TIME_BUDGET_S} s | kernel peak RSS (GB) | RSS ≤ 1.5 GB |")
    print("|---|---:|:---:|---:|:---:|")
    total = 0.0
    worst = 0.0
    slowest = 0.0
    for path in paths:
        seconds, peak = run_notebook(path, args.solutions)
        total += seconds
        worst, slowest = max(worst, peak), max(slowest, seconds)
        print(f"| {path.name} | {seconds:.0f} | {'yes' if seconds <= TIME_BUDGET_S else 'NO'} | {peak:.2f} | "
              f"{'yes' if peak <= RSS_BUDGET_GB else 'NO'} |", flush=True)
    print(f"| **whole series** | **{total:.0f}** | slowest {slowest:.0f} | max {worst:.2f} | {'yes' if worst <= RSS_BUDGET_GB else 'NO'} |")
    sys.exit(0 if (args.cold or slowest <= TIME_BUDGET_S) and worst <= RSS_BUDGET_GB else 1)


if __name__ == "__main__":
    main()
