"""Command line: `python -m kdlab distill` runs teacher → CE student → KD student and prints a table."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from .data import DEFAULT_DATA_DIR
from .students import STUDENT_KINDS


def _positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _unit_float(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1] (the weight on the hard-label CE term), got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The CLI's options, documented where a user will read them (--help)."""
    parser = argparse.ArgumentParser(prog="python -m kdlab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("distill", help="train a CE-only and a KD student against a cached teacher; print results")
    run.add_argument("--data", default=str(DEFAULT_DATA_DIR), help="folder with train/dev/test .tsv or .csv (columns text,label), or a hub dataset id when online")
    run.add_argument("--teacher", default=None, help="local model folder or hub id (default: the packaged MiniLM)")
    run.add_argument("--student", default="bag", choices=STUDENT_KINDS)
    run.add_argument("--temperature", type=_positive_float, default=4.0, help="softmax temperature T (default 4)")
    run.add_argument("--lam", type=_unit_float, default=0.5, help="λ, weight on the hard-label CE term (default 0.5)")
    run.add_argument("--epochs", type=_positive_int, default=None, help="student epochs (default: per student kind)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--labels-per-class", type=_positive_int, default=None, help="keep K labels per class; the rest of train becomes an unlabelled transfer set")
    run.add_argument("--teacher-finetune-epochs", type=int, default=0, help="fine-tune the whole teacher (about 6 min per epoch on 2 CPU cores) instead of a head on frozen features")
    run.add_argument("--json", type=Path, default=None, help="also write the results as JSON to this path")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def format_results(results: dict) -> str:
    """A plain-text results table: accuracy, size and speed of teacher and both students."""
    teacher_params = results["teacher"]["params"]
    lines = [f"{'model':<12} {'test acc':>9} {'params':>12} {'size vs teacher':>16} {'examples/s':>11}"]
    for name in ("teacher", "student_ce", "student_kd"):
        entry = results[name]
        speed = "n/a" if entry["examples_per_s"] is None else f"{entry['examples_per_s']:,.0f}"
        lines.append(
            f"{name:<12} {entry['test_accuracy']:>9.2%} {entry['params']:>12,} "
            f"{entry['params'] / teacher_params:>16.3f} {speed:>11}"
        )
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in results["timings_s"].items())
    lines.append(f"wall time: {timing}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python -m kdlab`."""
    args = build_parser().parse_args(argv)
    from .cache import TeacherSettings
    from .pipeline import distill

    start = time.perf_counter()
    try:
        results = distill(
            data=args.data, teacher=args.teacher, student=args.student, temperature=args.temperature, lam=args.lam,
            epochs=args.epochs, seed=args.seed, labels_per_class=args.labels_per_class,
            teacher_settings=TeacherSettings(finetune_epochs=args.teacher_finetune_epochs, seed=args.seed),
            progress=not args.quiet,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}")
        return 2
    results["timings_s"]["total"] = time.perf_counter() - start
    print(format_results(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(f"results written to {args.json}")
    return 0
