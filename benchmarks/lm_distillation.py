"""Language-model distillation, measured: the five arms of notebook 11 at one student size and step budget, 3 seeds.

    python benchmarks/lm_distillation.py                    # all arms × seeds 0 1 2, writes results/lm-distillation.json
    python benchmarks/lm_distillation.py --steps 300 --jobs 3     # what README quotes (2026-12-01)

Every arm trains the same 2 × 88 GPT-2 student (1/11 of the teacher) for the same number of steps of 32 queries
from the cached language-model teacher (kdlab.load_lm_teacher, built on first use), then scores it on the test
queries (teacher-forced perplexity) and on 200 queries it samples itself (the teacher's per-token NLL of them,
and distinct-2). Prints a Markdown table (mean ± std over seeds) and writes the JSON that README and notebook 11
quote. `--jobs` runs the seeds in parallel processes, one torch thread each (kdlab.threads).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kd_quality import machine  # noqa: E402  (one definition of "the machine" for every benchmark)

import kdlab  # noqa: E402
from kdlab.lm_distill import ARMS, compare_lm_arms, format_lm_results, merge_lm_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "lm-distillation.json"


def one_seed(seed: int, arms: list[str], steps: int, samples: int, parts: Path) -> dict:
    """One seed's comparison, in its own process with one torch thread; also saved alone, in case a later seed fails."""
    os.environ["OMP_NUM_THREADS"] = "1"
    kdlab.use_policy_threads()
    teacher = kdlab.load_lm_teacher(progress=False)
    result = compare_lm_arms(teacher, arms=arms, seeds=[seed], steps=steps, samples=samples)
    parts.mkdir(parents=True, exist_ok=True)
    (parts / f"seed{seed}.json").write_text(json.dumps(result, default=str))
    return result


def markdown(results: dict) -> str:
    """The README's table: one row per model, mean ± std over seeds."""
    def cell(entry, metric, digits):
        text = f"{entry[metric]:.{digits}f}"
        return text + (f" ± {entry[metric + '_std']:.{digits}f}" if len(entry.get(metric + "_per_seed", [])) > 1 else "")

    teacher = results["teacher"]
    rows = ["| model | params | test perplexity | teacher NLL of own samples (nats/token) | distinct-2 | train s / run |",
            "|---|---:|---:|---:|---:|---:|",
            f"| teacher (4 × 256) | {teacher['params']:,} | {teacher['test_perplexity']:.2f} | "
            f"{teacher['teacher_nll_of_samples']:.3f} | {teacher['distinct_2']:.3f} | {teacher['train_seconds']:.0f} |"]
    for arm, entry in results["arms"].items():
        rows.append(f"| {arm} | {entry['params']:,} | {cell(entry, 'test_perplexity', 2)} | "
                    f"{cell(entry, 'teacher_nll_of_samples', 3)} | {cell(entry, 'distinct_2', 3)} | {entry['train_seconds']:.0f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes (one thread each)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    kdlab.lm_distill.check_arms_and_seeds(args.arms, args.seeds)
    start = time.perf_counter()
    kdlab.load_lm_teacher(progress=False)  # built once here, not by each worker
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        jobs = [pool.submit(one_seed, seed, args.arms, args.steps, args.samples, Path(tempfile.gettempdir()) / "kdlab-lm-distillation-parts")
                for seed in args.seeds]
        parts = [job.result() for job in jobs]
    results = merge_lm_results(parts)
    seconds = time.perf_counter() - start
    payload = {"date": str(datetime.date.today()), "machine": machine().replace(", 1 threads", f", 1 thread × {args.jobs} jobs"),
               "seconds": seconds, **results,
               "rows": [{"model": "teacher", **{k: v for k, v in results["teacher"].items() if k != "settings"}}]
               + [{"model": arm, **{k: v for k, v in entry.items() if k != "runs"}} for arm, entry in results["arms"].items()]}
    print(f"# Language-model distillation — {payload['date']} — {payload['machine']}\n")
    print(markdown(results))
    print(f"\n{len(args.seeds)} seeds × {len(args.arms)} arms, {args.steps} steps of 32 queries each: {seconds:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1, default=str))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
