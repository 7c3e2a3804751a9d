"""Experiments on the dev set: T × λ sweeps, label budgets, student sizes and overfitting remedies.

Every function trains real students with `train_student` and returns a tidy pandas table (one row per
run), so notebooks draw them and `benchmarks/kd_quality.py` prints them from the same code. All of them
score on **dev**; test is touched once, for the setting the dev set chose.
"""

from __future__ import annotations

import gc
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from types import SimpleNamespace
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd
import torch
from datasets import Dataset
from torch import Tensor, nn
from tqdm.auto import tqdm

from .cache import TeacherCache
from .calibration import expected_calibration_error, mean_confidence, top1_agreement
from .data import REPO_ROOT, low_label_split
from .results import BenchmarkResults, read_benchmark_results
from .students import count_parameters, student_start
from .teacher import train_head
from .training import STUDENT_DEFAULTS, History, predict_logits, throughput, train_student


BENCHMARK_RESULTS = REPO_ROOT / "benchmarks" / "results"


def benchmark_results(section: str, folder: str | Path | None = None) -> BenchmarkResults:
    """The full grid `benchmarks/kd_quality.py --section <section>` saved: its rows, and machine, date, settings in .meta.

    `folder` is where the script wrote it (`--out`; default benchmarks/results). A missing file raises
    FileNotFoundError, a malformed one ValueError, both naming the command that writes it.
    """
    path = Path(BENCHMARK_RESULTS if folder is None else folder) / f"{section}.json"
    out = "" if folder is None else f" --out {folder}"
    return read_benchmark_results(path, measured_by=f"benchmarks/kd_quality.py --section {section}",
                                  command=f"python benchmarks/kd_quality.py --section {section}{out}")


def full_grid(section: str, rerun: bool = False) -> BenchmarkResults:
    """A section's full grid: the saved JSON, or with `rerun` the benchmark run again now with its saved settings (notebooks 06, 07, 09 and 10).

    A rerun calls `benchmarks/kd_quality.py` in a subprocess with the settings the saved file records, so it is the
    same grid measured on this machine (and takes as long as the saved `seconds` say, or longer).
    """
    saved = benchmark_results(section)
    if not rerun:
        return saved
    flags = [part for name, value in saved.meta["settings"].items() if value is not None
             for part in (f"--{name.replace('_', '-')}", *map(str, value if isinstance(value, list) else [value]))]
    out = tempfile.mkdtemp(prefix=f"kdlab-{section}-")
    script = REPO_ROOT / "benchmarks" / "kd_quality.py"
    subprocess.run([sys.executable, str(script), "--section", section, "--out", out, *flags], check=True)
    return benchmark_results(section, folder=out)


def grid_seeds(result: BenchmarkResults) -> list[int]:
    """The seeds a saved grid really used (the remedies section trains only the first seed it was given)."""
    rows = result.rows
    return sorted({row["seed"] for row in rows if "seed" in row}) or list(result.meta["settings"]["seeds"][:1])


def grid_caption(result: BenchmarkResults) -> str:
    """The line under a full-grid figure: which command, when, where, how long, which seeds (notebooks 06, 07, 09 and 10)."""
    return (f"Full grid: python benchmarks/kd_quality.py --section {result.meta['section']} — {result.meta['date']}, "
            f"{result.meta['machine']}, {result.meta['seconds'] / 60:.0f} min, seeds {grid_seeds(result)}.")


def grid_overview(results: dict[str, BenchmarkResults]) -> pd.DataFrame:
    """One row per saved grid a notebook draws: date, seeds, minutes and machine (notebooks 06, 07, 09 and 10)."""
    return pd.DataFrame({section: {"date": r.meta["date"], "seeds": grid_seeds(r), "minutes": round(r.meta["seconds"] / 60, 1),
                                   "machine": r.meta["machine"]} for section, r in results.items()}).T


@dataclass
class Run:
    """One trained student and what we measured about it."""

    model: nn.Module
    history: History
    dev_accuracy: float
    params: int
    seconds: float


def labelled_mask(cache: TeacherCache, labels_per_class: int | None, seed: int = 0) -> Tensor:
    """One flag per train row: True for the K rows per class that keep their label (all rows for None)."""
    count = len(cache.ids["train"])
    if labels_per_class is None:
        return torch.ones(count, dtype=torch.bool)
    rows = Dataset.from_dict({"row": list(range(count)), "label": cache.labels["train"].tolist()})
    kept, _ = low_label_split(rows, labels_per_class, seed)
    mask = torch.zeros(count, dtype=torch.bool)
    mask[torch.tensor(list(kept["row"]), dtype=torch.long)] = True
    return mask


def matched_epochs(epochs: int, rows: int, labelled_rows: int, batch_size: int, cap: int = 200) -> int:
    """Epochs that give a CE-only baseline on few labelled rows as many optimiser steps as KD gets on all rows.

    Without this, K labels per class at batch 256 would be a handful of steps: a starved baseline, not a fair one.
    """
    steps = epochs * math.ceil(rows / batch_size)
    return max(epochs, min(cap, math.ceil(steps / math.ceil(labelled_rows / batch_size))))


# The few-label CE baseline trains for as many steps as KD and keeps its best dev epoch: every advantage.
BASELINE_PATIENCE = 10


def train_run(cache: TeacherCache, tokenizer, *, kind: str = "bag", seed: int = 0, student_options: dict | None = None,
              teacher_encoder: nn.Module | None = None, **train_options) -> Run:
    """Build a student of `kind` and train it; `train_options` override STUDENT_DEFAULTS[kind]."""
    options = {**STUDENT_DEFAULTS.get(kind, {}), "progress": False, **train_options}
    student = student_start(kind, cache, tokenizer, teacher_encoder=teacher_encoder, seed=seed, **(student_options or {}))
    start = time.perf_counter()
    history = train_student(student, cache, seed=seed, **options)
    seconds = time.perf_counter() - start
    # train_student already scored dev after every epoch (in eval mode): no second pass over dev
    return Run(student, history, history.final_dev_accuracy, count_parameters(student), seconds)


def sweep_temperature_lambda(cache: TeacherCache, tokenizer, temperatures: Sequence[float], lams: Sequence[float],
                             seeds: Sequence[int] = (0,), kind: str = "bag", progress: bool = True,
                             **train_options) -> pd.DataFrame:
    """Dev accuracy for every (T, λ, seed); λ is the weight on the hard-label CE term."""
    _check_grid(temperatures, "temperatures", lambda t: t > 0, "> 0")
    _check_grid(lams, "lams", lambda lam: 0 <= lam <= 1, "in [0, 1]")
    grid = [(t, lam, s) for t in temperatures for lam in lams for s in seeds]
    rows = []
    for temperature, lam, seed in tqdm(grid, desc="T × λ sweep", disable=not progress):
        run = train_run(cache, tokenizer, kind=kind, seed=seed, temperature=temperature, lam=lam, **train_options)
        rows.append({"temperature": temperature, "lam": lam, "seed": seed, "dev_accuracy": run.dev_accuracy,
                     "seconds": run.seconds})
    return pd.DataFrame(rows)


def summarize(frame: pd.DataFrame, by: Sequence[str], value: str = "dev_accuracy") -> pd.DataFrame:
    """Mean, standard deviation (0 for one seed) and number of seeds of `value` per group."""
    grouped = frame.groupby(list(by))[value]
    summary = grouped.agg(["mean", "std", "count"]).reset_index()
    summary["std"] = summary["std"].fillna(0.0)
    return summary


def best_setting(frame: pd.DataFrame, by: Sequence[str] = ("temperature", "lam")) -> dict:
    """The group with the highest mean dev accuracy (ties: the first in sort order) as a dict."""
    summary = summarize(frame, by)
    best = summary.sort_values(list(by)).loc[summary["mean"].idxmax()]
    return {key: best[key] for key in by} | {"dev_accuracy": best["mean"], "std": best["std"]}


# The three arms of the few-label experiment. The teacher of "KD" had its head trained on all 9,003 labels, which
# the student is told it does not have; the teacher of HONEST_KD saw only the same K labels per class.
HONEST_KD = "KD, teacher head on K labels"
LOW_LABEL_METHODS = ("CE only", "KD", HONEST_KD)


def teacher_on_labelled(cache: TeacherCache, labelled: Tensor, seed: int = 0) -> TeacherCache:
    """The cache as if the teacher's head had seen only the `labelled` train rows: the honest few-label teacher.

    The frozen MiniLM features stay (the encoder never saw Banking77's labels); only the linear head is refit, in
    seconds, on the labelled rows, and every split's logits are recomputed from it. Notebook 07 meets it through
    `low_label_curve`.
    """
    labelled = torch.as_tensor(labelled, dtype=torch.bool)
    if labelled.shape != cache.labels["train"].shape or not labelled.any():
        raise ValueError(f"labelled must be one flag per train row ({len(cache.labels['train']):,}) with at least one "
                         "True; make it with tuning.labelled_mask(cache, K)")
    features = cache.features["train"]
    head = nn.Linear(features.shape[1], len(cache.label_names))
    train_head(SimpleNamespace(head=head), features[labelled], cache.labels["train"][labelled], seed=seed)
    with torch.no_grad():
        logits = {split: head(split_features) for split, split_features in cache.features.items()}
    meta = {**cache.meta, "teacher_head_labelled_rows": int(labelled.sum())}
    return replace(cache, logits=logits, meta=meta,
                   head={"weight": head.weight.detach().clone(), "bias": head.bias.detach().clone()})


def low_label_curve(cache: TeacherCache, tokenizer, labels_per_class: Sequence[int | None], seeds: Sequence[int] = (0,),
                    temperature: float = 4.0, lam: float = 0.5, kind: str = "bag", progress: bool = True,
                    methods: Sequence[str] = LOW_LABEL_METHODS, **train_options) -> pd.DataFrame:
    """CE-only on K labels per class vs KD on those K labels + every other train row as unlabelled transfer set.

    Two KD arms: "KD" learns from the cached teacher, whose head saw all labels (optimistic), and HONEST_KD from
    `teacher_on_labelled`, whose head saw only the same K labels per class. The CE-only baseline gets as many
    optimiser steps as KD (`matched_epochs`) and early stopping on dev. Each row also holds its teacher's dev accuracy.
    """
    unknown = [m for m in methods if m not in LOW_LABEL_METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {list(LOW_LABEL_METHODS)}")
    rows = []
    grid = [(k, s, method) for k in labels_per_class for s in seeds for method in methods
            if not (k is None and method == HONEST_KD)]  # with every label, the honest teacher is the cached one
    for k, seed, method in tqdm(grid, desc="label budget", disable=not progress):
        labelled = labelled_mask(cache, k, seed)
        teacher = teacher_on_labelled(cache, labelled, seed) if method == HONEST_KD else cache
        options = {**STUDENT_DEFAULTS.get(kind, {}), **train_options}
        if method == "CE only" and k is not None:
            options["epochs"] = matched_epochs(options["epochs"], len(labelled), int(labelled.sum()), options["batch_size"])
            options.setdefault("early_stopping", BASELINE_PATIENCE)
        run = train_run(teacher, tokenizer, kind=kind, seed=seed, temperature=temperature,
                        lam=1.0 if method == "CE only" else lam, labelled=labelled, **options)
        rows.append({"labels_per_class": "all" if k is None else k, "labelled": int(labelled.sum()), "method": method,
                     "seed": seed, "dev_accuracy": run.dev_accuracy, "seconds": run.seconds,
                     "teacher_dev_accuracy": teacher.accuracy("dev")})
    return pd.DataFrame(rows)


def capacity_curve(cache: TeacherCache, tokenizer, students: dict[str, tuple[str, dict]], seeds: Sequence[int] = (0,),
                   temperature: float = 4.0, lam: float = 0.5, teacher_encoder: nn.Module | None = None,
                   progress: bool = True, train_options: dict | None = None) -> pd.DataFrame:
    """For each named student (kind, builder options): params, dev accuracy with CE only and with KD, examples/s.

    `train_options` maps a kind to its own overrides (e.g. fewer epochs for encoder students).
    """
    rows = []
    grid = [(name, s, method) for name in students for s in seeds for method in ("CE only", "KD")]
    for name, seed, method in tqdm(grid, desc="student sizes", disable=not progress):
        kind, options = students[name]
        run = train_run(cache, tokenizer, kind=kind, seed=seed, student_options=options, teacher_encoder=teacher_encoder,
                        temperature=temperature, lam=1.0 if method == "CE only" else lam,
                        **(train_options or {}).get(kind, {}))
        rows.append({"student": name, "kind": kind, "params": run.params, "method": method, "seed": seed,
                     "dev_accuracy": run.dev_accuracy, "seconds": run.seconds,
                     "examples_per_s": throughput(run.model, cache.tokens["dev"])})
    return pd.DataFrame(rows)


# Overfitting remedies for the bag student, each switched on alone against a baseline with none of them,
# trained long enough (30 epochs) to overfit. Student options go to build_student, the rest to train_student.
NO_REMEDY = {"student_options": {"dropout": 0.0}, "weight_decay": 0.0, "lr_decay": False}
REMEDIES = {
    "no remedy": {},
    "dropout 0.3": {"student_options": {"dropout": 0.3}},
    "weight decay 0.1": {"weight_decay": 0.1},
    "early stopping (patience 3)": {"early_stopping": 3},
    "lr decay to 0": {"lr_decay": True},
    "token dropout 0.15": {"token_dropout": 0.15},
}


def remedy_curves(cache: TeacherCache, tokenizer, remedies: dict[str, dict] | None = None,
                  methods: Iterable[str] = ("CE only", "KD"), epochs: int = 30, seed: int = 0,
                  temperature: float = 4.0, lam: float = 0.5, kind: str = "bag", progress: bool = True) -> pd.DataFrame:
    """Learning curves (one row per epoch) for each remedy alone, with and without KD."""
    if kind != "bag":  # the dropout remedies are BagStudent builder options, which encoder students do not take
        raise ValueError(f"remedy_curves compares remedies for the 'bag' student, got kind={kind!r}")
    remedies = REMEDIES if remedies is None else remedies
    rows = []
    grid = [(name, method) for name in remedies for method in methods]
    for name, method in tqdm(grid, desc="remedies", disable=not progress):
        settings = {**NO_REMEDY, **remedies[name]}
        run = train_run(cache, tokenizer, kind=kind, seed=seed, epochs=epochs, temperature=temperature,
                        lam=1.0 if method == "CE only" else lam, **settings)
        for row in run.history.epochs:
            rows.append({"remedy": name, "method": method, "epoch": row["epoch"], "train_accuracy": row["train_accuracy"],
                         "dev_accuracy": row["dev_accuracy"], "kept_epoch": run.history.best_epoch,
                         "final_dev_accuracy": run.dev_accuracy})
    return pd.DataFrame(rows)


def _check_grid(values: Sequence[float], name: str, ok, rule: str) -> None:
    values = list(values)
    if not values:
        raise ValueError(f"{name} is empty; pass at least one value")
    bad = [v for v in values if not ok(v)]
    if bad:
        raise ValueError(f"every value in {name} must be {rule}, got {bad}")


def distilbert_comparison(cache: TeacherCache, tokenizer, teacher_encoder: nn.Module, *, keep_layers: int = 3,
                          hidden_weight: float = 1.0, seeds: Sequence[int] = (0,), rows: Tensor | None = None,
                          temperature: float = 4.0, lam: float = 0.5, progress: bool = True,
                          **train_options) -> pd.DataFrame:
    """DistilBERT's two ideas, separately: start from teacher layers (vs the same shape at random), and add a
    cosine loss between sentence vectors (vs logits only). Same data, steps and seed for all four; each start
    uses its kind's default learning rate unless `lr` is given (random init gets tiny-bert's larger one)."""
    config = teacher_encoder.config
    same_shape = {"layers": keep_layers, "hidden": config.hidden_size, "heads": config.num_attention_heads}
    # "teacher layers" starts from everything the teacher has: its layers and (student_start) its trained head
    starts = {"teacher layers": ("truncated", {"keep_layers": keep_layers}),
              "random init": ("tiny-bert", same_shape)}
    # without this each start would take its own kind's default epochs and batch size: not the same steps
    train_options = {key: STUDENT_DEFAULTS["truncated"][key] for key in ("epochs", "batch_size")} | train_options
    grid = [(start, weight, seed) for start in starts for weight in (0.0, hidden_weight) for seed in seeds]
    results = []
    for start, weight, seed in tqdm(grid, desc="DistilBERT-style students", disable=not progress):
        kind, options = starts[start]
        run = train_run(cache, tokenizer, kind=kind, seed=seed, student_options=options, teacher_encoder=teacher_encoder,
                        temperature=temperature, lam=lam, hidden_weight=weight, rows=rows, **train_options)
        results.append({"start": start, "loss": "logits + cosine" if weight else "logits only", "seed": seed,
                        "lr": train_options.get("lr", STUDENT_DEFAULTS[kind]["lr"]),
                        "params": run.params, "dev_accuracy": run.dev_accuracy, "seconds": run.seconds,
                        "dev_curve": run.history.column("dev_accuracy")})
        del run  # before the next student is built: one transformer student in memory at a time (Binder has 2 GB)
        gc.collect()
    return pd.DataFrame(results)


def calibration_by_temperature(cache: TeacherCache, tokenizer, temperatures: Sequence[float], *, seed: int = 0,
                               lam: float = 0.5, kind: str = "bag", bins: int = 15, progress: bool = True,
                               **train_options) -> pd.DataFrame:
    """Dev ECE, mean confidence and top-1 agreement with the teacher for a CE-only student and KD students at each T."""
    _check_grid(temperatures, "temperatures", lambda t: t > 0, "> 0")
    teacher_logits, labels = cache.logits["dev"], cache.labels["dev"]
    settings = [("CE only", None)] + [("KD", t) for t in temperatures]
    rows = [{"model": "teacher", "temperature": None, **_calibration_row(teacher_logits, labels, teacher_logits, bins)}]
    for method, temperature in tqdm(settings, desc="calibration vs T", disable=not progress):
        run = train_run(cache, tokenizer, kind=kind, seed=seed, temperature=temperature or 1.0,
                        lam=1.0 if method == "CE only" else lam, **train_options)
        logits = predict_logits(run.model, cache.tokens["dev"])
        rows.append({"model": method, "temperature": temperature, **_calibration_row(logits, labels, teacher_logits, bins)})
    return pd.DataFrame(rows)


def _calibration_row(logits: Tensor, labels: Tensor, teacher_logits: Tensor, bins: int) -> dict:
    return {"dev_accuracy": float((logits.argmax(dim=1) == labels).double().mean()),
            "ece": expected_calibration_error(logits, labels, bins), "mean_confidence": mean_confidence(logits),
            "agreement_with_teacher": top1_agreement(logits, teacher_logits)}
