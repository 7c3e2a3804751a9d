"""The whole experiment in one call: teacher cache → CE-only and KD students over seeds → test results (notebook 05)."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

import torch

from .cache import TeacherSettings, load_teacher_cache, teacher_from_cache
from .checks import check_count, check_lam, check_temperature
from .data import DEFAULT_DATA_DIR, low_label_split, load_splits
from .ensemble import load_teacher_panel
from .recipes import teach
from .recipes import recipe as find_recipe
from .students import STUDENT_KINDS, count_parameters, student_start
from .teacher import load_encoder
from .training import STUDENT_DEFAULTS, default_device, evaluate, throughput, train_student
from .tuning import BASELINE_PATIENCE, matched_epochs


def check_labels_per_class(train_labels: Sequence[int], labels_per_class: int | None) -> None:
    """Refuse a K that would keep every label: the run would silently be a full-label run, not a few-label one."""
    if labels_per_class is None:
        return
    check_count(labels_per_class, "labels_per_class", hint="labelled examples kept per class")
    largest = max(Counter(train_labels).values())
    if labels_per_class >= largest:
        raise ValueError(
            f"labels_per_class={labels_per_class} keeps every label (the largest class has {largest} training rows), "
            f"so no row would be left for the unlabelled transfer set; pick K below {largest}, or leave the option out "
            "for a full-label run"
        )


def distill(
    data: str | Path = DEFAULT_DATA_DIR,
    teacher: str | None = None,
    student: str = "bag",
    temperature: float = 4.0,
    lam: float = 0.5,
    epochs: int | None = None,
    seeds: Sequence[int] = (0,),
    labels_per_class: int | None = None,
    teacher_settings: TeacherSettings = TeacherSettings(),
    progress: bool = True,
    measure_teacher_speed: bool = True,
    recipe: str = "default",
) -> dict:
    """Run teacher → CE-only student → KD student for each seed; return accuracies (mean ± std), sizes, speeds, timings.

    The teacher (and its cache) depends only on `teacher_settings` (its own seed), so every student seed is
    taught by the same teacher: the spread over `seeds` is the students' alone. `recipe` names how the KD
    student is taught (`kdlab.recipes`); the CE-only baseline is the same for every recipe.
    """
    temperature, lam = check_temperature(temperature), check_lam(lam)
    chosen = find_recipe(recipe)
    if chosen.needs_panel and teacher_settings.finetune_epochs > 0:
        raise ValueError(f"recipe {recipe!r} builds its teachers on the frozen encoder's layers, which a fine-tuned "
                         "teacher no longer matches; use --teacher-finetune-epochs 0 with it, or --recipe default")
    if student not in STUDENT_KINDS:
        raise ValueError(f"student must be one of {', '.join(STUDENT_KINDS)}, got {student!r}")
    if epochs is not None:
        check_count(epochs, "epochs")
    seeds = [int(check_count(seed, "seed", minimum=0)) for seed in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be one or more different integers ≥ 0, got {seeds}")
    timings = {}
    start = time.perf_counter()
    splits = load_splits(data)
    check_labels_per_class(splits["train"]["label"], labels_per_class)  # before the teacher's minutes, not after
    cache = load_teacher_cache(data, teacher, teacher_settings, splits=splits, progress=progress)
    timings["teacher_cache"] = time.perf_counter() - start
    encoder, tokenizer = load_encoder(teacher)
    panel = None
    if chosen.needs_panel:
        start = time.perf_counter()
        panel = load_teacher_panel(cache, teacher=teacher, progress=progress)
        timings["teacher_panel"] = time.perf_counter() - start
    hparams = dict(STUDENT_DEFAULTS[student])
    if epochs is not None:
        hparams["epochs"] = epochs
    device = default_device()
    runs = {"student_ce": [], "student_kd": []}
    for seed in seeds:
        rows, labelled = None, None
        if labels_per_class is not None:
            kept, _ = low_label_split(splits["train"], labels_per_class, seed)
            labelled = torch.zeros(len(splits["train"]), dtype=torch.bool)
            labelled[torch.tensor(list(kept["id"]))] = True
            rows = torch.arange(len(labelled))
        for name, run_lam in (("student_ce", 1.0), ("student_kd", lam)):
            model = student_start(student, cache, tokenizer, teacher_encoder=encoder, seed=seed)
            run_hparams = dict(hparams)
            if name == "student_ce" and labelled is not None:  # a fair few-label baseline: KD's step count, best dev epoch
                run_hparams["epochs"] = matched_epochs(hparams["epochs"], len(labelled), int(labelled.sum()), hparams["batch_size"])
                run_hparams["early_stopping"] = BASELINE_PATIENCE
            start = time.perf_counter()
            if name == "student_kd" and recipe != "default":
                history = teach(model, cache, chosen, panel=panel, labelled=labelled, seed=seed, temperature=temperature,
                                lam=run_lam, device=device, progress=progress,
                                make_student=lambda s: student_start(student, cache, tokenizer, teacher_encoder=encoder, seed=s),
                                **run_hparams)
            else:
                history = train_student(
                    model, cache, temperature=temperature, lam=run_lam, seed=seed, rows=rows, labelled=labelled,
                    device=device, progress=progress, **run_hparams,
                )
            timings[f"{name}_seed{seed}"] = time.perf_counter() - start
            test = evaluate(model, cache.tokens["test"], cache.labels["test"], device=device)
            runs[name].append({
                "seed": seed, "test_accuracy": test.accuracy, "params": count_parameters(model),
                "examples_per_s": throughput(model, cache.tokens["test"], device=device) if seed == seeds[0] else None,
                "history": history.epochs, "epoch_seconds": sum(history.column("seconds")) / len(history.epochs),
            })
    results = {name: _summary(per_seed) for name, per_seed in runs.items()}
    teacher_entry = {"test_accuracy": cache.accuracy("test"), "params": cache.meta["teacher_params"], "examples_per_s": None}
    if panel is not None:  # the teacher the KD student actually learnt from
        results["student_kd"]["taught_by"] = {"teacher": chosen.teacher, "test_accuracy": panel.accuracy(chosen.teacher),
                                              "augmented_queries": len(panel.source) if chosen.augmented else 0}
    if measure_teacher_speed:
        teacher_model = teacher_from_cache(cache, teacher).to(device)
        teacher_entry["examples_per_s"] = throughput(teacher_model, cache.tokens["test"], device=device)
    return {
        "teacher": teacher_entry,
        **results,
        "settings": {
            "data": str(data), "teacher": cache.meta["teacher"], "student": student, "temperature": temperature,
            "lam": lam, "recipe": recipe, "seeds": seeds, "teacher_seed": teacher_settings.seed, "labels_per_class": labels_per_class,
            "device": str(device), "num_labels": len(cache.label_names), **hparams,
            "teacher_settings": cache.meta["settings"], "cache": str(cache.path),
        },
        "timings_s": timings,
    }


def _summary(per_seed: list[dict]) -> dict:
    """One model's entry: mean test accuracy over seeds, its standard deviation, and every seed's run beside it."""
    accuracies = [run["test_accuracy"] for run in per_seed]
    return {
        "test_accuracy": statistics.fmean(accuracies),
        "test_accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        "test_accuracies": accuracies,
        "seeds": [run["seed"] for run in per_seed],
        "params": per_seed[0]["params"],
        "examples_per_s": per_seed[0]["examples_per_s"],
        "history": per_seed[0]["history"],  # the first seed's learning curve
        "epoch_seconds": statistics.fmean(run["epoch_seconds"] for run in per_seed),
        "runs": per_seed,
    }
