"""Command line: `python -m kdlab distill` runs teacher → CE student → KD student and prints a table (notebook 05).

`python -m kdlab distill-lm` trains the language-model arms of notebook 11 and prints theirs.

Every option is checked before any work starts (the JSON path too), so a typo costs a second, not a training
run; errors go to stderr as one `error:` line with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .checks import MAX_TEMPERATURE, check_count, check_lam, check_positive_number, check_temperature
from .data import DEFAULT_DATA_DIR
from .recipes import BEST, RECIPES
from .students import STUDENT_KINDS


def _parsed(text: str, convert, check, example: str):
    """Turn an option's text into a checked value, or an argparse message that says what was expected."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {example}, got {text!r}") from None
    try:
        return check(value)
    except ValueError as problem:  # WrongTypeError is a ValueError too
        raise argparse.ArgumentTypeError(str(problem)) from None


def _temperature(text: str) -> float:
    return _parsed(text, float, check_temperature, f"a number in (0, {MAX_TEMPERATURE:g}], e.g. 4")


def _lam(text: str) -> float:
    return _parsed(text, float, check_lam, "a number in [0, 1], e.g. 0.5")


def _positive_float(text: str) -> float:
    return _parsed(text, float, lambda v: check_positive_number(v, "value"), "a number > 0, e.g. 0.001")


def _positive_int(text: str) -> int:
    return _parsed(text, int, lambda v: check_count(v, "value"), "a whole number ≥ 1, e.g. 10")


def _non_negative_int(text: str) -> int:
    return _parsed(text, int, lambda v: check_count(v, "value", minimum=0), "a whole number ≥ 0, e.g. 0")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's options, documented where a user will read them (--help)."""
    parser = argparse.ArgumentParser(prog="python -m kdlab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("distill", help="train a CE-only and a KD student against a cached teacher; print results")
    run.add_argument("--data", default=str(DEFAULT_DATA_DIR),
                     help="a folder with train/dev/test .tsv or .csv (columns text,label), a folder written by "
                          "DatasetDict.save_to_disk, or a hub dataset id when online (default: Banking77)")
    run.add_argument("--teacher", default=None, help="local model folder or hub id (default: the packaged MiniLM)")
    run.add_argument("--student", default="bag", choices=STUDENT_KINDS)
    run.add_argument("--temperature", type=_temperature, default=4.0, help=f"softmax temperature T in (0, {MAX_TEMPERATURE:g}] (default 4)")
    run.add_argument("--lam", type=_lam, default=0.5, help="λ, weight on the hard-label CE term, in [0, 1] (default 0.5)")
    run.add_argument("--epochs", type=_positive_int, default=None, help="student epochs (default: per student kind)")
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=_non_negative_int, default=None, help="the students' seed (default 0)")
    seeds.add_argument("--seeds", type=_non_negative_int, nargs="+", default=None,
                       help="several student seeds, e.g. --seeds 0 1 2: the table shows mean ± std")
    run.add_argument("--teacher-seed", type=_non_negative_int, default=0,
                     help="seed of the teacher's head (default 0): every student seed shares one teacher and one cache")
    run.add_argument("--labels-per-class", type=_positive_int, default=None,
                     help="keep K labels per class; the rest of train becomes an unlabelled transfer set")
    run.add_argument("--teacher-finetune-epochs", type=_non_negative_int, default=0,
                     help="fine-tune the whole teacher (about 6 min per epoch on 2 CPU cores) instead of a head on frozen features")
    run.add_argument("--recipe", default="default", choices=list(RECIPES), metavar="NAME",
                     help="how the KD student is taught (notebook 12): " + "; ".join(f"{name}: {r.summary}" for name, r in RECIPES.items() if name != "best")
                          + f"; best = {BEST}, the highest on dev (default: default)")
    run.add_argument("--json", type=Path, default=None, help="also write the results as JSON to this file")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    add_distill_lm(commands)
    return parser


def add_distill_lm(commands) -> None:
    """`distill-lm`: the arms of the language-model lesson, each a student trained from the LM teacher."""
    from .lm_distill import ARMS

    run = commands.add_parser("distill-lm", help="train language-model students by CE, forward/reverse KL, sequence-level "
                                                 "and on-policy distillation from the small GPT-2 teacher; print results")
    run.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS), help="which arms to train (default: all five)")
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=_non_negative_int, default=None, help="the students' seed (default 0)")
    seeds.add_argument("--seeds", type=_non_negative_int, nargs="+", default=None,
                       help="several student seeds, e.g. --seeds 0 1 2: the table shows mean ± std")
    run.add_argument("--steps", type=_positive_int, default=300, help="training steps per student (default 300, as in the benchmark)")
    run.add_argument("--batch-size", type=_positive_int, default=32, help="queries per step (default 32)")
    run.add_argument("--temperature", type=_temperature, default=1.0, help="T of the token-level losses (default 1)")
    run.add_argument("--samples", type=_positive_int, default=200,
                     help="queries each student samples for the teacher-NLL and distinct-2 (default 200)")
    run.add_argument("--recipe", default="default", choices=list(RECIPES), metavar="NAME",
                     help="how the KD student is taught (notebook 12): " + "; ".join(f"{name}: {r.summary}" for name, r in RECIPES.items() if name != "best")
                          + f"; best = {BEST}, the highest on dev (default: default)")
    run.add_argument("--json", type=Path, default=None, help="also write the results as JSON to this file")
    run.add_argument("--quiet", action="store_true", help="no progress bars")


def check_json_path(path: Path) -> None:
    """Refuse a --json path that could not be written, before the training rather than after it."""
    if path.is_dir():
        raise ValueError(f"--json {path} is a folder; give a file name, e.g. {path / 'results.json'}")
    parent = path.parent
    while not parent.exists():  # the folders will be made; the first existing one must be writable
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"--json {path}: {parent} is a file, so no folder can be made there; choose another path")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"--json {path} cannot be written (no write permission in {parent}); choose another path")


def format_results(results: dict) -> str:
    """A plain-text results table: accuracy (mean ± std over seeds), size and speed of teacher and both students."""
    teacher_params = results["teacher"]["params"]
    lines = [f"{'model':<12} {'test acc':>16} {'params':>12} {'size vs teacher':>16} {'examples/s':>11}"]
    for name in ("teacher", "student_ce", "student_kd"):
        entry = results[name]
        speed = "n/a" if entry["examples_per_s"] is None else f"{entry['examples_per_s']:,.0f}"
        accuracy = f"{entry['test_accuracy']:.2%}"
        if len(entry.get("test_accuracies", [])) > 1:
            accuracy = f"{100 * entry['test_accuracy']:.2f} ± {100 * entry['test_accuracy_std']:.2f}%"
        lines.append(
            f"{name:<12} {accuracy:>16} {entry['params']:>12,} {entry['params'] / teacher_params:>16.3f} {speed:>11}"
        )
    seeds = results["settings"]["seeds"]
    lines.append(f"student seeds: {' '.join(map(str, seeds))}" + (" (mean ± std over seeds)" if len(seeds) > 1 else ""))
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in results["timings_s"].items())
    lines.append(f"wall time: {timing}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python -m kdlab`."""
    args = build_parser().parse_args(argv)
    if args.command == "distill-lm":
        return distill_lm(args)
    from .cache import TeacherSettings, check_cache_root
    from .pipeline import distill

    if args.quiet:  # the libraries' own bars too (transformers shows one while it loads weights)
        import datasets
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        datasets.disable_progress_bars()
    start = time.perf_counter()
    try:
        if args.json is not None:
            check_json_path(args.json)
        check_cache_root()
        results = distill(
            data=args.data, teacher=args.teacher, student=args.student, temperature=args.temperature, lam=args.lam,
            epochs=args.epochs, seeds=args.seeds or [args.seed or 0], labels_per_class=args.labels_per_class,
            teacher_settings=TeacherSettings(finetune_epochs=args.teacher_finetune_epochs, seed=args.teacher_seed),
            progress=not args.quiet, recipe=args.recipe,
        )
    except (ValueError, FileNotFoundError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return _report(results, args, start, format_results)


def _report(results: dict, args, start: float, format_table) -> int:
    """The end of every command: total time, the table on stdout, the JSON where --json asked; exit status 0."""
    results["timings_s"]["total"] = time.perf_counter() - start
    print(format_table(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(f"results written to {args.json}")
    return 0


def distill_lm(args) -> int:
    """`python -m kdlab distill-lm`: every check first, then the teacher (built on first use) and the arms."""
    from .cache import check_cache_root
    from .lm_distill import check_arms_and_seeds, compare_lm_arms, format_lm_results
    from .lm_teacher import load_lm_teacher
    from .threads import use_policy_threads

    if args.quiet:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    start = time.perf_counter()
    try:
        if args.json is not None:
            check_json_path(args.json)
        check_arms_and_seeds(args.arms, args.seeds or [args.seed or 0])
        check_cache_root()
        print(use_policy_threads(), file=sys.stderr)
        teacher = load_lm_teacher(progress=not args.quiet)
        results = compare_lm_arms(teacher, arms=args.arms, seeds=args.seeds or [args.seed or 0], steps=args.steps,
                                  samples=args.samples, progress=not args.quiet, batch_size=args.batch_size,
                                  temperature=args.temperature)
    except (ValueError, FileNotFoundError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return _report(results, args, start, format_lm_results)
