"""Teacher vs CE-only student vs KD student on Banking77 test, over several seeds; prints a Markdown table.

    python benchmarks/kd_quality.py                 # 3 seeds, bag student, T=4, λ=0.5 (≈ 15 min on 2 cores)
    python benchmarks/kd_quality.py --seeds 0 --student tiny-bert

Numbers in the README come from this script; it also measures the low-label regime (K labels per class,
the rest of train as an unlabelled transfer set that only the KD student can use).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from kdlab.pipeline import distill


def mean_std(values: list[float]) -> str:
    """'mean ± std' in percent (std is 0 for a single seed)."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * spread:.2f}"


def machine() -> str:
    """CPU model, cores and torch version: timings mean nothing without them."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--student", default="bag")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--lam", type=float, default=0.5)
    parser.add_argument("--labels-per-class", type=int, default=10, help="K for the low-label rows (0 skips them)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    start = time.perf_counter()
    full, low = [], []
    for seed in args.seeds:
        full.append(distill(student=args.student, temperature=args.temperature, lam=args.lam, seed=seed,
                            progress=False, measure_teacher_speed=seed == args.seeds[0]))
        if args.labels_per_class:
            low.append(distill(student=args.student, temperature=args.temperature, lam=args.lam, seed=seed,
                               labels_per_class=args.labels_per_class, progress=False, measure_teacher_speed=False))
    first = full[0]
    teacher, ce, kd = first["teacher"], first["student_ce"], first["student_kd"]

    def column(runs, model, key="test_accuracy"):
        return [r[model][key] for r in runs]

    print(f"# KD quality — {datetime.date.today()} — {machine()}")
    print(f"student={args.student}, T={args.temperature}, λ={args.lam} (weight on CE), seeds={args.seeds}, "
          f"epochs={first['settings']['epochs']}, teacher = MiniLM-L6 + linear head on frozen features\n")
    print("| model | test accuracy % (mean ± std) | params | size vs teacher | examples/s (batch 32) | speed vs teacher |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| teacher | {100 * teacher['test_accuracy']:.2f} | {teacher['params']:,} | 1 | {teacher['examples_per_s']:,.0f} | 1× |")
    for name, label in (("student_ce", "student, CE only (λ=1)"), ("student_kd", f"student, KD (T={args.temperature}, λ={args.lam})")):
        entry = first[name]
        print(f"| {label} | {mean_std(column(full, name))} | {entry['params']:,} | 1/{teacher['params'] / entry['params']:.1f} | "
              f"{entry['examples_per_s']:,.0f} | {entry['examples_per_s'] / teacher['examples_per_s']:,.0f}× |")
    epoch_ce = statistics.mean(column(full, "student_ce", "epoch_seconds"))
    epoch_kd = statistics.mean(column(full, "student_kd", "epoch_seconds"))
    print(f"\nEpoch time with cached teacher logits: CE {epoch_ce:.2f} s, KD {epoch_kd:.2f} s, ratio KD/CE {epoch_kd / epoch_ce:.2f}")
    print(f"Teacher cache load: {statistics.mean(r['timings_s']['teacher_cache'] for r in full):.1f} s (mean over runs)")
    if low:
        k = args.labels_per_class
        print(f"\nLow-label regime: {k} labels per class ({k * first['settings']['num_labels']} labelled), "
              "the rest of train unlabelled (used only by KD)\n")
        print("| model | test accuracy % (mean ± std) |\n|---|---:|")
        print(f"| student, CE only on {k}/class | {mean_std(column(low, 'student_ce'))} |")
        print(f"| student, KD with transfer set | {mean_std(column(low, 'student_kd'))} |")
    print(f"\nTotal wall time: {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"full": full, "low_label": low, "machine": machine()}, indent=2))


if __name__ == "__main__":
    main()
