"""Run every notebook in a fresh kernel; print wall time and the kernel's peak memory against the Binder budget.

    python benchmarks/notebooks.py            # with the teacher cache as it is (build it first for the "warm" row)
    python benchmarks/notebooks.py --cold     # from nothing: the teacher cache goes to an empty temp folder

Budgets (shared/DESIGN.md): peak RSS ≤ 1.5 GB per notebook; whole series ≤ 5 min with the cache, ≤ 10 min without.
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


def run_notebook(path: Path) -> tuple[float, float]:
    """Execute one notebook top to bottom in a new kernel; return (seconds, peak RSS in GB)."""
    notebook = nbformat.read(path, as_version=4)
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
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/[0-9]*.ipynb")
    args = parser.parse_args()
    paths = args.notebooks or sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    if args.cold:
        os.environ["KDLAB_CACHE"] = tempfile.mkdtemp(prefix="kdlab-cold-cache-")
    print(f"# Notebooks — {datetime.date.today()} — {os.cpu_count()} cores — {'cold (no teacher cache)' if args.cold else 'teacher cache present'}\n")
    print("| notebook | wall time (s) | kernel peak RSS (GB) | RSS ≤ 1.5 GB |")
    print("|---|---:|---:|:---:|")
    total = 0.0
    worst = 0.0
    for path in paths:
        seconds, peak = run_notebook(path)
        total += seconds
        worst = max(worst, peak)
        print(f"| {path.name} | {seconds:.0f} | {peak:.2f} | {'yes' if peak <= RSS_BUDGET_GB else 'NO'} |", flush=True)
    budget = 600 if args.cold else 300
    print(f"| **whole series** | **{total:.0f}** (budget {budget}) | max {worst:.2f} | {'yes' if worst <= RSS_BUDGET_GB else 'NO'} |")
    sys.exit(0 if total <= budget and worst <= RSS_BUDGET_GB else 1)


if __name__ == "__main__":
    main()
