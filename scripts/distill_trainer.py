"""Distill a kdlab student with a Hugging Face Trainer: one process, or many under torchrun / accelerate.

    python scripts/distill_trainer.py --student bag                        # one process (CPU or 1 GPU)
    torchrun --nproc_per_node 8 scripts/distill_trainer.py --student tiny-bert
    accelerate launch --multi_gpu --num_processes 8 scripts/distill_trainer.py --student tiny-bert

The Trainer wraps the student in DistributedDataParallel and gives each process its share of every
batch; the teacher never runs, its logits come from kdlab's teacher cache. On one machine the local
main process builds a missing cache while the others wait, then they all read it. For several
machines, build it first with --build-cache-only (see kdlab/scale_out.py for the multi-machine flags).
Writes OUTPUT_DIR/results.json (and OUTPUT_DIR/student/ with --save-student) from the main process.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from kdlab.cache import TeacherSettings, load_teacher_cache
from kdlab.cli import _lam, _positive_float, _positive_int, _temperature
from kdlab.data import DEFAULT_DATA_DIR
from kdlab.scale_out import DistillationDataset, distill_with_trainer, training_arguments
from kdlab.students import STUDENT_KINDS, build_student, count_parameters
from kdlab.teacher import load_encoder
from kdlab.training import STUDENT_DEFAULTS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA_DIR), help="folder with train/dev/test .tsv or .csv (columns text,label)")
    parser.add_argument("--teacher", default=None, help="local model folder or hub id (default: the packaged MiniLM)")
    parser.add_argument("--student", default="bag", choices=STUDENT_KINDS)
    parser.add_argument("--temperature", type=_temperature, default=4.0, help="softmax temperature T in (0, 1000] (default 4)")
    parser.add_argument("--lam", type=_lam, default=0.5, help="λ, weight on the hard-label CE term (default 0.5)")
    parser.add_argument("--epochs", type=_positive_int, default=None, help="student epochs (default: per student kind)")
    parser.add_argument("--batch-size", type=_positive_int, default=None, help="rows per process per step (default: per student kind)")
    parser.add_argument("--lr", type=_positive_float, default=None, help="peak learning rate (default: per student kind)")
    parser.add_argument("--max-train-rows", type=_positive_int, default=None, help="train on a random subset of this many rows")
    parser.add_argument("--output-dir", type=Path, default=Path("artifacts/distill_trainer"), help="where results.json goes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-student", action="store_true", help="also save the student's weights to OUTPUT_DIR/student")
    parser.add_argument("--build-cache-only", action="store_true", help="build (or check) the teacher cache, then exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    settings = TeacherSettings(seed=options.seed)
    if options.build_cache_only:
        cache = load_teacher_cache(options.data, options.teacher, settings, progress=not options.quiet)
        print(f"teacher cache ready: {cache.path}")
        return 0
    hparams = dict(STUDENT_DEFAULTS[options.student])
    for name in ("epochs", "batch_size", "lr"):
        if getattr(options, name) is not None:
            hparams[name] = getattr(options, name)
    # Built first: creating TrainingArguments joins the process group that main_process_first waits on.
    args = training_arguments(options.output_dir, seed=options.seed, progress=not options.quiet, **hparams)
    with args.main_process_first(local=True, desc="teacher cache"):
        cache = load_teacher_cache(options.data, options.teacher, settings, progress=not options.quiet and args.process_index == 0)
    # The encoder is loaded on the CPU for its tokenizer (and, for 'truncated', the layers the student copies).
    encoder, tokenizer = load_encoder(options.teacher)
    student = build_student(options.student, tokenizer, len(cache.label_names), teacher_encoder=encoder, seed=options.seed)
    del encoder
    rows = None
    if options.max_train_rows is not None and options.max_train_rows < len(cache.ids["train"]):
        generator = torch.Generator().manual_seed(options.seed)
        rows = torch.randperm(len(cache.ids["train"]), generator=generator)[: options.max_train_rows].sort().values
    run = distill_with_trainer(
        student, cache, temperature=options.temperature, lam=options.lam, rows=rows, progress=not options.quiet, args=args
    )
    test = run.trainer.evaluate(DistillationDataset(cache, "test"), metric_key_prefix="test")  # every process takes part
    if options.save_student:
        run.trainer.save_model(str(options.output_dir / "student"))
    if run.trainer.is_world_process_zero():
        results = {
            "train_accuracy": run.train_accuracy, "dev_accuracy": run.dev_accuracy, "test_accuracy": test["test_accuracy"],
            "teacher_test_accuracy": cache.accuracy("test"), "student_params": count_parameters(student),
            "train_seconds": run.seconds, "world_size": run.world_size, "optimizer_steps": run.trainer.state.global_step, "history": run.history.epochs,
            "settings": {
                "data": str(options.data), "teacher": cache.meta.get("teacher"), "student": options.student,
                "temperature": options.temperature, "lam": options.lam, "seed": options.seed,
                "train_rows": len(rows) if rows is not None else len(cache.ids["train"]),
                "device": str(args.device), **hparams,
            },
        }
        options.output_dir.mkdir(parents=True, exist_ok=True)
        (options.output_dir / "results.json").write_text(json.dumps(results, indent=2))
        print(f"{options.student} student, {run.world_size} process(es): dev accuracy {run.dev_accuracy:.2%}, "
              f"test accuracy {test['test_accuracy']:.2%}; results written to {options.output_dir / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
