"""How well distillation works on Banking77, measured: every table the README and notebooks 06/09 quote.

    python benchmarks/kd_quality.py                       # headline: teacher vs CE-only vs KD on test, 3 seeds
    python benchmarks/kd_quality.py --section sweep       # T × λ on dev, 3 seeds (notebook 06's heatmap)
    python benchmarks/kd_quality.py --section all         # every section below, one after the other

Sections: headline, sweep, low-label, low-label-honest, capacity, remedies, calibration, omit-class, distilbert, beyond. Each prints
a Markdown table and writes benchmarks/results/<section>.json (rows + machine + date + settings), which
the notebooks read to draw the full grids next to their own smaller live runs. Tuning sections score on
dev; only the headline, low-label-honest (its K = --labels-per-class row) and beyond (which picks its best recipe on dev)
touch test. Timings are per run on the machine named in the table's header.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import pandas as pd

import kdlab
from kdlab import tuning
from kdlab.omitted_class import omit_class_experiment
from kdlab.pipeline import distill

RESULTS = Path(__file__).resolve().parent / "results"


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


def headline(args, cache=None, tokenizer=None, encoder=None) -> dict:
    """Teacher vs CE-only vs KD student on test over seeds, plus the low-label row (K labels per class)."""
    full, low = [], []
    for seed in args.seeds:
        full.append(distill(student=args.student, temperature=args.temperature, lam=args.lam, seeds=[seed],
                            progress=False, measure_teacher_speed=seed == args.seeds[0]))
        if args.labels_per_class:
            low.append(distill(student=args.student, temperature=args.temperature, lam=args.lam, seeds=[seed],
                               labels_per_class=args.labels_per_class, progress=False, measure_teacher_speed=False))
    first = full[0]
    teacher = first["teacher"]

    def column(runs, model, key="test_accuracy"):
        return [r[model][key] for r in runs]

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
    return {"full": full, "low_label": low}


def markdown(frame: pd.DataFrame, index: bool = True) -> str:
    """A DataFrame as a Markdown table (pandas' own needs the optional 'tabulate' package)."""
    frame = frame.reset_index() if index else frame
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def table(frame: pd.DataFrame, by: list[str], value: str = "dev_accuracy") -> str:
    """Mean ± std (in %) of `value` per group, as Markdown."""
    summary = tuning.summarize(frame, by, value)
    lines = ["| " + " | ".join(by) + f" | {value} % (mean ± std) | seeds |", "|" + "---|" * len(by) + "---:|---:|"]
    for _, row in summary.iterrows():
        lines.append("| " + " | ".join(str(row[k]) for k in by) + f" | {100 * row['mean']:.2f} ± {100 * row['std']:.2f} | {row['count']} |")
    return "\n".join(lines)


def sweep(args, cache, tokenizer, encoder) -> dict:
    """T × λ on dev over seeds; the best cell is then trained once more and scored once on test."""
    frame = tuning.sweep_temperature_lambda(cache, tokenizer, args.temperatures, args.lams, args.seeds, progress=False)
    summary = tuning.summarize(frame, ["temperature", "lam"])
    print(summary.pivot(index="temperature", columns="lam", values="mean").mul(100).round(2).pipe(markdown))
    print("\nspread (std over seeds, points):\n")
    print(summary.pivot(index="temperature", columns="lam", values="std").mul(100).round(2).pipe(markdown))
    best = tuning.best_setting(frame)
    run = tuning.train_run(cache, tokenizer, seed=args.seeds[0], temperature=best["temperature"], lam=best["lam"])
    test = kdlab.evaluate(run.model, cache.tokens["test"], cache.labels["test"]).accuracy
    print(f"\nchosen on dev: T={best['temperature']}, λ={best['lam']} (dev {100 * best['dev_accuracy']:.2f} ± "
          f"{100 * best['std']:.2f}); test, touched once: {100 * test:.2f}")
    return {"rows": frame.to_dict("records"), "best": best, "test_accuracy": test}


def low_label(args, cache, tokenizer, encoder) -> dict:
    """CE-only vs KD on dev for K labels per class, the rest of train as unlabelled transfer set."""
    ks = [None if k == 0 else k for k in args.ks]
    frame = tuning.low_label_curve(cache, tokenizer, ks, args.seeds, args.temperature, args.lam,
                                   methods=("CE only", "KD"), progress=False)  # the honest arm: low-label-honest
    print(table(frame, ["labels_per_class", "labelled", "method"]))
    return {"rows": frame.to_dict("records")}


def low_label_honest(args, cache, tokenizer, encoder) -> dict:
    """The honest few-label arm: KD from a teacher whose head saw only the same K labels per class (dev curve, and
    test for the headline's K over seeds — next to the optimistic "KD" rows of the low-label and headline sections)."""
    ks = [k for k in args.ks if k != 0]  # with every label the honest teacher is the cached one
    frame = tuning.low_label_curve(cache, tokenizer, ks, args.seeds, args.temperature, args.lam,
                                   methods=(tuning.HONEST_KD,), progress=False)
    print(table(frame, ["labels_per_class", "labelled", "method"]))
    teachers = frame.groupby("labels_per_class")["teacher_dev_accuracy"].agg(["mean", "std"]).mul(100).round(2)
    print("\nthe honest teachers' own dev accuracy % (head refit on K labels per class, one per seed):\n")
    print(teachers.pipe(markdown))
    test = []
    if args.labels_per_class:
        k = args.labels_per_class
        for seed in args.seeds:
            labelled = tuning.labelled_mask(cache, k, seed)
            teacher = tuning.teacher_on_labelled(cache, labelled, seed)
            run = tuning.train_run(teacher, tokenizer, seed=seed, temperature=args.temperature, lam=args.lam,
                                   labelled=labelled)
            test.append({"labels_per_class": k, "seed": seed, "method": tuning.HONEST_KD,
                         "test_accuracy": kdlab.evaluate(run.model, cache.tokens["test"], cache.labels["test"]).accuracy,
                         "teacher_test_accuracy": teacher.accuracy("test")})
        print(f"\ntest, K = {k}: student {mean_std([r['test_accuracy'] for r in test])}, its teacher "
              f"{mean_std([r['teacher_test_accuracy'] for r in test])}")
    return {"rows": frame.to_dict("records"), "test": test}


CAPACITY_STUDENTS = {
    **{f"bag dim {d}": ("bag", {"dim": d}) for d in (8, 16, 32, 64, 128, 256)},
    **{f"tiny-bert {n}×128": ("tiny-bert", {"layers": n}) for n in (1, 2, 4)},
    **{f"truncated {n} of 6 layers": ("truncated", {"keep_layers": n}) for n in (1, 2, 3)},
}


def capacity(args, cache, tokenizer, encoder) -> dict:
    """Accuracy (dev) vs parameters vs throughput for students of several sizes, CE-only and KD (encoders: first seed only)."""
    frames = []
    for kinds, seeds in ((["bag"], args.seeds), (["tiny-bert", "truncated"], args.seeds[:1])):  # encoders: CPU-hours, 1 seed
        chosen = {name: spec for name, spec in CAPACITY_STUDENTS.items() if spec[0] in kinds and spec[0] in args.kinds
                  and (spec[0] != "truncated" or spec[1]["keep_layers"] <= args.max_truncated_layers)}
        if chosen:
            frames.append(tuning.capacity_curve(
                cache, tokenizer, chosen, seeds, args.temperature, args.lam, teacher_encoder=encoder, progress=False,
                train_options={"tiny-bert": {"epochs": args.encoder_epochs}, "truncated": {"epochs": args.encoder_epochs}}))
    frame = pd.concat(frames, ignore_index=True)
    print(table(frame, ["student", "params", "method"]))
    speed = frame.groupby("student")[["examples_per_s", "seconds"]].mean().round(1)
    print("\nmean inference examples/s (batch 32, dev) and training seconds per run:\n")
    print(speed.pipe(markdown))
    return {"rows": frame.to_dict("records"), "encoder_epochs": args.encoder_epochs}


def remedies(args, cache, tokenizer, encoder) -> dict:
    """Learning curves of the bag student for each overfitting remedy alone, with and without KD, 30 epochs."""
    frame = tuning.remedy_curves(cache, tokenizer, seed=args.seeds[0], epochs=args.remedy_epochs,
                                 temperature=args.temperature, lam=args.lam, progress=False)
    last = frame.groupby(["remedy", "method"]).agg(final_dev=("final_dev_accuracy", "last"), best_dev=("dev_accuracy", "max"),
                                                   last_train=("train_accuracy", "last"), kept_epoch=("kept_epoch", "last"))
    print((last[["final_dev", "best_dev", "last_train"]] * 100).round(2).join(last["kept_epoch"]).pipe(markdown))
    return {"rows": frame.to_dict("records"), "epochs": args.remedy_epochs}


def calibration(args, cache, tokenizer, encoder) -> dict:
    """ECE, confidence and agreement with the teacher on dev: teacher, CE-only student, KD students at each T."""
    frames = [tuning.calibration_by_temperature(cache, tokenizer, args.temperatures, seed=s, lam=args.lam, progress=False).assign(seed=s)
              for s in args.seeds]
    frame = pd.concat(frames, ignore_index=True)
    frame["temperature"] = frame["temperature"].fillna(0)  # 0 = not distilled (teacher, CE only), for grouping
    for value in ("ece", "agreement_with_teacher", "dev_accuracy"):
        print(f"\n{value}:\n")
        print(table(frame, ["model", "temperature"], value))
    return {"rows": frame.to_dict("records")}


def omit_class(args, cache, tokenizer, encoder) -> dict:
    """Hinton's omit-a-class: recall of an intent never seen in training, before and after the bias shift chosen on dev (reported on test)."""
    rows = []
    for name in args.omit:
        index = cache.label_names.index(name)
        for seed in args.seeds:
            result = omit_class_experiment(cache, tokenizer, index, seed=seed, temperature=args.temperature, lam=args.lam)
            for method in ("CE only", "KD"):
                entry = result[method]
                scan = entry["scan"].set_index("shift")
                rows.append({"class": name, "seed": seed, "method": method, "removed_rows": result["removed_rows"],
                             "recall_as_trained": entry["recall_as_trained"], "best_shift": entry["best_shift"],
                             "recall_after_shift": scan.loc[entry["best_shift"], "class_recall"],
                             "dev_accuracy_as_trained": scan.loc[0.0, "accuracy"],
                             "dev_accuracy_after_shift": scan.loc[entry["best_shift"], "accuracy"],
                             # the shift was chosen on dev: test, scored once as trained and once shifted, reports it
                             "test_recall_as_trained": entry["test"]["class_recall"].iloc[0],
                             "test_recall_after_shift": entry["test"]["class_recall"].iloc[1],
                             "test_accuracy_as_trained": entry["test"]["accuracy"].iloc[0],
                             "test_accuracy_after_shift": entry["test"]["accuracy"].iloc[1],
                             "test_queries": int((cache.labels["test"] == index).sum())})
    frame = pd.DataFrame(rows)
    summary = frame.groupby(["class", "method"]).mean(numeric_only=True).drop(columns="seed")
    print(summary.round(3).pipe(markdown))
    return {"rows": rows}


def distilbert(args, cache, tokenizer, encoder) -> dict:
    """Teacher-layer init vs random init, logits-only vs logits + cosine loss, same data and steps."""
    rows = None if args.distilbert_rows is None else torch.arange(args.distilbert_rows)
    frame = tuning.distilbert_comparison(cache, tokenizer, encoder, keep_layers=args.keep_layers, seeds=args.seeds[:1],
                                         rows=rows, epochs=args.encoder_epochs, temperature=args.temperature, lam=args.lam,
                                         progress=False)
    print(frame.drop(columns="dev_curve").round(4).pipe(markdown, index=False))
    return {"rows": frame.to_dict("records"), "train_rows": args.distilbert_rows, "epochs": args.encoder_epochs,
            "keep_layers": args.keep_layers}


def beyond(args, cache, tokenizer, encoder) -> dict:
    """Notebook 12: the panel's teachers, then one bag student per recipe and seed (dev picks the best; test reports)."""
    from kdlab.calibration import expected_calibration_error
    from kdlab.ensemble import load_teacher_panel
    from kdlab.recipes import RECIPES, teach
    from kdlab.students import student_start
    from kdlab.training import STUDENT_DEFAULTS, evaluate

    start = time.perf_counter()
    panel = load_teacher_panel(cache, progress=False)
    panel_seconds = time.perf_counter() - start
    teachers = [{"teacher": name, **{f"{split}_accuracy": panel.accuracy(name, split) for split in ("dev", "test")},
                 "test_ece": expected_calibration_error(panel.logits[name]["test"], cache.labels["test"])}
                for name in ("weak", "default", "ensemble")]
    print(pd.DataFrame(teachers).round(4).pipe(markdown, index=False))
    hparams = dict(STUDENT_DEFAULTS["bag"])

    def run(name, seed, **extra):
        chosen = RECIPES[name] if not extra else dataclasses.replace(RECIPES[name], **extra)
        model = student_start("bag", cache, tokenizer, seed=seed)
        began = time.perf_counter()
        history = teach(model, cache, chosen, panel=panel, seed=seed, temperature=args.temperature, lam=args.lam,
                        progress=False, make_student=lambda s: student_start("bag", cache, tokenizer, seed=s), **hparams)
        return {"recipe": name, "seed": seed, "teacher": chosen.teacher, "augmented": chosen.augmented,
                "hidden_weight": chosen.hidden_weight, "born_again": chosen.born_again,
                "dev_accuracy": evaluate(model, cache.tokens["dev"], cache.labels["dev"]).accuracy,
                "test_accuracy": evaluate(model, cache.tokens["test"], cache.labels["test"]).accuracy,
                "final_dev_accuracy": history.epochs[-1]["dev_accuracy"], "seconds": time.perf_counter() - began}

    names = [n for n in RECIPES if n != "best"] if args.recipes is None else args.recipes
    rows = [run(name, seed) for name in names for seed in args.seeds]
    frame = pd.DataFrame(rows)
    print("\nbag student, mean ± std over seeds (dev chooses; test reports):\n")
    summary = frame.groupby("recipe", sort=False).agg(dev=("dev_accuracy", mean_std), test=("test_accuracy", mean_std),
                                                      seconds=("seconds", "mean"))
    print(summary.round(1).pipe(markdown))
    weights = [run("features", seed, hidden_weight=w) for w in args.feature_weights for seed in args.seeds]
    print("\nfeature-loss weight (recipe 'features'), dev:\n")
    print(pd.DataFrame(weights).groupby("hidden_weight").agg(dev=("dev_accuracy", mean_std), test=("test_accuracy", mean_std)).pipe(markdown))
    return {"rows": rows, "teachers": teachers, "feature_weights": weights, "panel": panel.meta,
            "panel_seconds": panel_seconds, "teacher_params": cache.meta["teacher_params"]}


SECTIONS = {"headline": headline, "sweep": sweep, "low-label": low_label, "low-label-honest": low_label_honest, "capacity": capacity, "remedies": remedies,
            "calibration": calibration, "omit-class": omit_class, "distilbert": distilbert,
            "beyond": beyond}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=[*SECTIONS, "all"], nargs="+", default=["headline"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--student", default="bag", help="headline section only")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--lam", type=float, default=0.5)
    parser.add_argument("--labels-per-class", type=int, default=10, help="K for the headline's low-label rows (0 skips them)")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--lams", type=float, nargs="+", default=[0.0, 0.1, 0.3, 0.5, 0.7, 0.9])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10, 25, 50, 0], help="labels per class; 0 = all")
    parser.add_argument("--kinds", nargs="+", default=["bag", "tiny-bert", "truncated"], help="capacity section")
    parser.add_argument("--encoder-epochs", type=int, default=2, help="epochs for tiny-bert / truncated students")
    parser.add_argument("--max-truncated-layers", type=int, default=3, help="capacity: deepest truncated student")
    parser.add_argument("--remedy-epochs", type=int, default=30)
    parser.add_argument("--omit", nargs="+", default=["card_arrival", "exchange_rate", "lost_or_stolen_card"])
    parser.add_argument("--keep-layers", type=int, default=3)
    parser.add_argument("--distilbert-rows", type=int, default=None, help="train rows for the distilbert section (default all)")
    parser.add_argument("--recipes", nargs="+", default=None, help="beyond: recipes to run (default: all but 'best')")
    parser.add_argument("--feature-weights", type=float, nargs="+", default=[0.3, 1.0, 3.0], help="beyond: feature-loss weights on dev")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for <section>.json")
    args = parser.parse_args()

    sections = list(SECTIONS) if "all" in args.section else args.section
    cache = kdlab.load_teacher_cache(progress=False)
    encoder, tokenizer = kdlab.load_encoder()
    print(f"# KD quality — {datetime.date.today()} — {machine()}")
    for name in sections:
        start = time.perf_counter()
        print(f"\n## {name}\n")
        result = SECTIONS[name](args, cache, tokenizer, encoder)
        seconds = time.perf_counter() - start
        print(f"\n{name}: {seconds:.0f} s")
        args.out.mkdir(parents=True, exist_ok=True)
        settings = {k: v for k, v in vars(args).items() if k not in ("out", "section")}
        payload = {"section": name, "date": str(datetime.date.today()), "machine": machine(), "seconds": seconds,
                   "settings": settings, **result}
        (args.out / f"{name}.json").write_text(json.dumps(payload, indent=1, default=str))


if __name__ == "__main__":
    main()
