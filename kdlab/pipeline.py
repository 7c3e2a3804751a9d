"""The whole experiment in one call: teacher cache → CE-only student and KD student → test results."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .cache import TeacherSettings, load_teacher_cache, teacher_from_cache, teacher_head
from .data import DEFAULT_DATA_DIR, low_label_split, load_splits
from .students import build_student, check_same_tokenizer, count_parameters
from .teacher import load_encoder
from .training import STUDENT_DEFAULTS, default_device, evaluate, throughput, train_student
from .tuning import BASELINE_PATIENCE, matched_epochs


def distill(
    data: str | Path = DEFAULT_DATA_DIR,
    teacher: str | None = None,
    student: str = "bag",
    temperature: float = 4.0,
    lam: float = 0.5,
    epochs: int | None = None,
    seed: int = 0,
    labels_per_class: int | None = None,
    teacher_settings: TeacherSettings = TeacherSettings(),
    progress: bool = True,
    measure_teacher_speed: bool = True,
) -> dict:
    """Run teacher → CE-only student → KD student and return accuracies, sizes, speeds and timings."""
    timings = {}
    start = time.perf_counter()
    splits = load_splits(data)
    cache = load_teacher_cache(data, teacher, teacher_settings, splits=splits, progress=progress)
    timings["teacher_cache"] = time.perf_counter() - start
    encoder, tokenizer = load_encoder(teacher)
    num_labels = len(cache.label_names)
    hparams = dict(STUDENT_DEFAULTS[student]) if student in STUDENT_DEFAULTS else {}
    if epochs is not None:
        hparams["epochs"] = epochs
    rows, labelled = None, None
    if labels_per_class is not None:
        kept, _ = low_label_split(splits["train"], labels_per_class, seed)
        labelled = torch.zeros(len(splits["train"]), dtype=torch.bool)
        labelled[torch.tensor(list(kept["id"]))] = True
        rows = torch.arange(len(labelled))
    device = default_device()
    results = {}
    for name, run_lam in (("student_ce", 1.0), ("student_kd", lam)):
        # the truncated recipe (STUDENT_DEFAULTS) starts from the teacher's trained head as well as its layers
        head = teacher_head(cache) if student == "truncated" else None
        model = build_student(student, tokenizer, num_labels, teacher_encoder=encoder, seed=seed, teacher_head=head)
        check_same_tokenizer(model, tokenizer)
        run_hparams = dict(hparams)
        if name == "student_ce" and labelled is not None:  # a fair few-label baseline: KD's step count, best dev epoch
            run_hparams["epochs"] = matched_epochs(hparams["epochs"], len(labelled), int(labelled.sum()), hparams["batch_size"])
            run_hparams["early_stopping"] = BASELINE_PATIENCE
        start = time.perf_counter()
        history = train_student(
            model, cache, temperature=temperature, lam=run_lam, seed=seed, rows=rows, labelled=labelled,
            device=device, progress=progress, **run_hparams,
        )
        timings[name] = time.perf_counter() - start
        test = evaluate(model, cache.tokens["test"], cache.labels["test"], device=device)
        results[name] = {
            "test_accuracy": test.accuracy,
            "params": count_parameters(model),
            "examples_per_s": throughput(model, cache.tokens["test"], device=device),
            "history": history.epochs,
            "epoch_seconds": sum(history.column("seconds")) / len(history.epochs),
        }
    teacher_entry = {"test_accuracy": cache.accuracy("test"), "params": cache.meta["teacher_params"], "examples_per_s": None}
    if measure_teacher_speed:
        teacher_model = teacher_from_cache(cache, teacher).to(device)
        teacher_entry["examples_per_s"] = throughput(teacher_model, cache.tokens["test"], device=device)
    return {
        "teacher": teacher_entry,
        **results,
        "settings": {
            "data": str(data), "teacher": cache.meta["teacher"], "student": student, "temperature": temperature,
            "lam": lam, "seed": seed, "labels_per_class": labels_per_class, "device": str(device),
            "num_labels": num_labels, **hparams, "teacher_settings": cache.meta["settings"], "cache": str(cache.path),
        },
        "timings_s": timings,
    }
