"""Teacher and KD students as deployable models: size, batch-1 latency, batch-32 throughput, accuracy, and int8.

    python benchmarks/deployment.py                     # ≈ 10–15 min on 2 shared cores (trains 3 students once)
    python benchmarks/deployment.py --json benchmarks/results/deployment.json --markdown benchmarks/results/deployment.md

Students are trained once with knowledge distillation (T=4, λ=0.5) for kdlab.deployment.DEPLOYMENT_EPOCHS
and saved under the git-ignored .cache/, where notebook 06 finds them; a second run only measures.
The committed benchmarks/results/deployment.json is what notebook 06 shows, labelled with machine and date,
for the students it cannot train within a notebook's time and memory budget.
Timings depend on the CPU and on whatever else runs on it: compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import torch

import kdlab
from kdlab.deployment import DEPLOYMENT_EPOCHS, HEAD_FROM_TEACHER, deployment_row, quantize_dynamic_int8, trained_student
from kdlab.teacher import load_encoder


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table; int8 rows also show their accuracy cost and agreement with float."""
    lines = [
        "| model | params | size on disk (MB) | latency batch 1, median (ms) | latency batch 1, p95 (ms) "
        "| throughput batch 32 (examples/s) | test accuracy (%) | int8 accuracy cost (pp) | int8 agrees with float (%) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cost = f"{100 * r['accuracy_cost']:+.2f}" if "accuracy_cost" in r else ""
        agree = f"{100 * r['agreement']:.1f}" if "agreement" in r else ""
        lines.append(
            f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['size_mb']:.1f} | {r['latency_median_ms']:.2f} "
            f"| {r['latency_p95_ms']:.2f} | {r['throughput_per_s']:.0f} | {100 * r['accuracy']:.2f} | {cost} | {agree} |"
        )
    return "\n".join(lines)


def cpu_name() -> str:
    """The CPU model as Linux names it (e.g. 'AMD EPYC'), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: a phone answers one query on one core, and on a shared CPU "
                             "more threads than free cores make timings erratic)")
    parser.add_argument("--repeats", type=int, default=200, help="batch-1 latency samples per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-teacher-int8", action="store_true", help="skip quantizing the teacher (saves ~1 min)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows, machine and date here (notebook 06 "
                        "reads benchmarks/results/deployment.json)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table and its notes here")
    args = parser.parse_args()

    kdlab.threads.set_threads(args.threads)
    started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    cache = kdlab.load_teacher_cache(progress=False)
    encoder, tokenizer = load_encoder()
    tokens, labels = cache.tokens["test"], cache.labels["test"]
    timings, rows = {}, []

    def add(name, model, **known):
        start = time.perf_counter()
        row = deployment_row(name, model, tokens, labels, repeats=args.repeats, **known)
        timings[f"measure {name}"] = time.perf_counter() - start
        rows.append(row)
        print(f"  measured {name} in {timings[f'measure {name}']:.0f} s", flush=True)
        return row

    teacher = kdlab.teacher_from_cache(cache)
    teacher_row = add("teacher (MiniLM-L6)", teacher, logits=cache.logits["test"])  # the cache holds its test logits
    if not args.skip_teacher_int8:
        add("teacher int8", quantize_dynamic_int8(teacher), baseline=teacher_row, params=teacher_row["params"])
    for kind, epochs in DEPLOYMENT_EPOCHS.items():
        start = time.perf_counter()
        student, loaded = trained_student(cache, tokenizer, kind=kind, teacher_encoder=encoder, seed=args.seed, epochs=epochs)
        timings[f"train {kind}"] = time.perf_counter() - start
        print(f"{kind}: {'loaded from .cache' if loaded else f'trained {epochs} epoch(s)'} in {timings[f'train {kind}']:.0f} s",
              flush=True)
        student_row = add(f"{kind} KD student", student)
        add(f"{kind} int8", quantize_dynamic_int8(student), baseline=student_row, params=student_row["params"])

    total = time.perf_counter() - started
    date = datetime.date.today().isoformat()
    machine = f"{cpu_name()}, {os.cpu_count()} cores shared with other jobs, {args.threads} torch thread(s)"
    recipes = {kind: {**kdlab.STUDENT_DEFAULTS[kind], "epochs": epochs, "head_from_teacher": kind in HEAD_FROM_TEACHER,
                      "temperature": 4.0, "lam": 0.5, "seed": args.seed} for kind, epochs in DEPLOYMENT_EPOCHS.items()}
    recipe_text = "; ".join(
        f"{kind} {r['epochs']} epoch(s), lr {r['lr']:g}, batch {r['batch_size']}" + (", head from the teacher's" if r["head_from_teacher"] else "")
        for kind, r in recipes.items()
    )
    report = (
        f"## Deployment benchmark ({date})\n\n{markdown(rows)}\n\n"
        f"Test split of Banking77 ({len(labels)} queries). Students: KD (T=4, λ=0.5), seed {args.seed}: {recipe_text}. "
        f"Latency: {args.repeats} single queries (padding trimmed) after 10 warm-up calls; throughput: "
        f"512 test queries in batches of 32. int8 = torch dynamic quantization (Linear int8, embeddings weight-only "
        f"int8); params of int8 rows = the float model's. torch {torch.__version__}, {machine} (load average "
        f"{load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at end): timings are noisy; compare rows, not runs. "
        f"Total {total / 60:.1f} min."
    )
    print("\n" + report)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report + "\n")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "rows": [{k: v for k, v in r.items() if k != "predictions"} for r in rows], "machine": machine, "date": date,
            "test_queries": len(labels), "recipes": recipes, "torch": torch.__version__, "threads": args.threads,
            "load_average": [load_at_start, os.getloadavg()[0]], "timings_s": timings,
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
