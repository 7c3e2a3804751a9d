"""One training loop for the CE-only baseline (λ = 1) and the distilled student (λ < 1) (notebook 05).

`distillation_step` is the one step both loops share: kdlab's own `train_student` and the Hugging Face
`Trainer` subclass in `kdlab.scale_out` call it, so the two cannot drift apart.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .cache import TeacherCache
from .checks import check_count, check_lam, check_non_negative_number, check_positive_number, check_probability, check_temperature
from .losses import IGNORE_INDEX, loss_and_terms
from .tokens import Tokens

# Good starting points per student kind, found on Banking77 dev (see benchmarks/kd_quality.py).
STUDENT_DEFAULTS = {
    "bag": {"lr": 2e-2, "epochs": 15, "batch_size": 256},
    "tiny-bert": {"lr": 1e-3, "epochs": 6, "batch_size": 32},
    "truncated": {"lr": 5e-4, "epochs": 2, "batch_size": 32},
}


# How many labelled training rows the loop scores after each epoch, chosen once (see `train_score_rows`).
TRAIN_SCORE_ROWS = 1000


@dataclass
class History:
    """Per-epoch record of loss parts, train and dev accuracy: what the learning-curve plots draw.

    `train_accuracy` is scored like `dev_accuracy`: after the epoch, in eval mode (dropout off), on a fixed
    subset of the labelled training rows (`train_score_rows`), so the train − dev gap measures overfitting alone;
    NaN when no training row has a label.
    """

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int | None = None  # set by early stopping: the epoch whose weights were kept

    def column(self, name: str) -> list[float]:
        """One quantity across epochs, e.g. history.column('dev_accuracy')."""
        return [row[name] for row in self.epochs]

    @property
    def best_dev_accuracy(self) -> float:
        return max(self.column("dev_accuracy"))

    @property
    def final_dev_accuracy(self) -> float:
        """Dev accuracy of the weights train_student returned: the best epoch's after early stopping, else the last."""
        if self.best_epoch is not None:
            return self.epochs[self.best_epoch - 1]["dev_accuracy"]
        return self.epochs[-1]["dev_accuracy"]


@dataclass
class Evaluation:
    """Accuracy and the logits behind it (for confusion, calibration and agreement analyses)."""

    accuracy: float
    logits: Tensor


def default_device() -> torch.device:
    """Use a GPU when there is one; everything also runs on a laptop CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_seed(seed: int) -> None:
    """Seed every generator training touches, so a workshop room gets identical numbers."""
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def evaluate(model: nn.Module, tokens: Tokens, labels: Tensor, batch_size: int = 256, device: torch.device | None = None) -> Evaluation:
    """Accuracy on a split, in eval mode without gradients."""
    logits = predict_logits(model, tokens, batch_size, device)
    return Evaluation(accuracy=(logits.argmax(dim=1) == labels).float().mean().item(), logits=logits)


def predict_logits(model: nn.Module, tokens: Tokens, batch_size: int = 256, device: torch.device | None = None) -> Tensor:
    """Logits for every row, batch by batch, back on the CPU."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(tokens), batch_size):
            batch = tokens.select(torch.arange(start, min(start + batch_size, len(tokens)))).to(device)
            chunks.append(model(batch.input_ids, batch.attention_mask).float().cpu())
    model.train(was_training)
    return torch.cat(chunks)


def train_student(
    student: nn.Module,
    cache: TeacherCache,
    *,
    temperature: float = 4.0,
    lam: float = 0.5,
    epochs: int = 12,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    lr_decay: bool = True,
    seed: int = 0,
    rows: Tensor | None = None,
    labelled: Tensor | None = None,
    early_stopping: int | None = None,
    token_dropout: float = 0.0,
    hidden_weight: float = 0.0,
    device: torch.device | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[History], None] | None = None,
) -> History:
    """Train a student on the cache's train split: λ·CE on labelled rows + (1−λ)·T²·KL on all rows.

    `rows` picks which train rows to use (default: all); `labelled` marks which of them may use their
    label (default: all) — the rest form an unlabelled transfer set that only the KD term sees.
    Teacher logits are looked up by example id, so shuffling can never misalign them.
    Remedies for overfitting: `early_stopping=k` stops after k epochs without a better dev accuracy and
    restores the best weights; `token_dropout=p` hides each word piece with probability p (augmentation);
    `weight_decay` and `lr_decay` act through the optimiser. `hidden_weight=w` adds w·(1 − cos) between
    the student's pooled sentence vector and the teacher's (DistilBERT's cosine loss); a student of another
    width (the bag's 64-d against MiniLM's 384-d) is given a learned linear projection onto the teacher's
    width first, trained with it and dropped afterwards (FitNets' regressor: `feature_projection`).
    """
    temperature, lam = check_temperature(temperature), check_lam(lam)
    epochs, batch_size = check_count(epochs, "epochs"), check_count(batch_size, "batch_size")
    lr = check_positive_number(lr, "lr", "the learning rate, e.g. 2e-2 for the bag student, 1e-3 for tiny-bert")
    weight_decay = check_non_negative_number(weight_decay, "weight_decay", "0 switches it off")
    EarlyStopping(early_stopping)  # checks the patience before any work
    token_dropout = check_probability(token_dropout, "token_dropout")
    hidden_weight = check_non_negative_number(hidden_weight, "hidden_weight", "0 switches the cosine loss off")
    if hidden_weight > 0:
        _check_hidden_loss(student, cache)
    device = torch.device(device) if device is not None else default_device()
    rows = torch.arange(len(cache.ids["train"])) if rows is None else torch.as_tensor(rows, dtype=torch.long)
    labelled = torch.ones(len(rows), dtype=torch.bool) if labelled is None else torch.as_tensor(labelled, dtype=torch.bool)
    if labelled.shape != rows.shape:
        raise ValueError(f"labelled must have one flag per row: {len(labelled)} flags for {len(rows)} rows")
    if lam == 1.0:  # CE-only: unlabelled rows carry nothing to learn from
        rows, labelled = rows[labelled], labelled[labelled]
    if len(rows) == 0 or (lam > 0 and not labelled.any()):
        raise ValueError("no labelled training rows: pass labelled rows, or use lam=0 for pure distillation")
    with reproducible(seed):
        return _train(student, cache, rows, labelled, temperature=temperature, lam=lam, epochs=epochs,
                      batch_size=batch_size, lr=lr, weight_decay=weight_decay, lr_decay=lr_decay, seed=seed,
                      early_stopping=early_stopping, token_dropout=token_dropout, hidden_weight=hidden_weight,
                      device=device, progress=progress, on_epoch_end=on_epoch_end)


@contextmanager
def reproducible(seed: int) -> Iterator[None]:
    """Seed every generator a run touches and use deterministic kernels, then put the caller's state back.

    On a CPU this makes a retrain with the same seed, data and thread count bit-identical by construction
    (the tuning lesson retrains and checks it), and leaves the caller's random stream as it was, so a cell after training draws
    the same numbers whether or not the training cell ran. On CUDA some kernels (e.g. the embedding bag's
    backward) have no deterministic version: torch warns, and runs agree only to float rounding.
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    was_deterministic, was_warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=devices):
        set_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)


class EarlyStopping:
    """Patience on dev accuracy, best weights kept in memory: one rule for `train_student` and the Trainer."""

    def __init__(self, patience: int | None):
        self.patience = None if patience is None else check_count(patience, "early_stopping", hint="a patience in epochs, or None")
        self.best_accuracy, self.best_epoch, self.best_state, self.waited = -1.0, None, None, 0

    def should_stop(self, model: nn.Module, dev_accuracy: float, epoch: int) -> bool:
        """Record this epoch's dev accuracy; True once `patience` epochs in a row brought no improvement."""
        if self.patience is None:
            return False
        if dev_accuracy > self.best_accuracy:
            self.best_accuracy, self.best_epoch, self.waited = dev_accuracy, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.waited += 1
        return self.waited >= self.patience

    def restore_best(self, model: nn.Module) -> int | None:
        """Put the best epoch's weights back into the model; returns that epoch (None when not stopping early)."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return self.best_epoch


def _train(student, cache, rows, labelled, *, temperature, lam, epochs, batch_size, lr, weight_decay, lr_decay, seed,
           early_stopping, token_dropout, hidden_weight, device, progress, on_epoch_end) -> History:
    """The loop itself, run inside `reproducible(seed)`."""
    tokens, labels, ids = cache.tokens["train"], cache.labels["train"], cache.ids["train"]
    generator = torch.Generator().manual_seed(seed)
    student.to(device)
    projection = feature_projection(student, cache) if hidden_weight > 0 else None
    trained = student if projection is None else nn.ModuleDict({"student": student, "projection": projection.to(device)})
    optimizer = make_optimizer(trained, lr, weight_decay, device)
    steps_per_epoch = (len(rows) + batch_size - 1) // batch_size
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 1.0 - step / (epochs * steps_per_epoch) if lr_decay else 1.0
    )
    history = History()
    stopper = EarlyStopping(early_stopping)
    scored = train_score_rows(rows[labelled])
    scored_tokens, scored_labels = tokens.select(scored), labels[scored]
    for epoch in range(1, epochs + 1):
        student.train()
        start = time.perf_counter()
        sums = {"loss": 0.0, "ce": 0.0, "kd": 0.0, "hidden": 0.0}
        seen = 0
        order = torch.randperm(len(rows), generator=generator)
        for batch_positions in tqdm(order.split(batch_size), desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False):
            batch_rows, batch_labelled = rows[batch_positions], labelled[batch_positions]
            batch = tokens.select(batch_rows)
            if token_dropout > 0:
                batch = drop_tokens(batch, token_dropout, generator)
            batch = batch.to(device)
            batch_labels = labels[batch_rows].to(device)
            batch_labelled = batch_labelled.to(device)
            step = distillation_step(
                student, batch.input_ids, batch.attention_mask, cache.logits_for("train", ids[batch_rows]).to(device),
                batch_labels.masked_fill(~batch_labelled, IGNORE_INDEX), temperature=temperature, lam=lam,
                hidden_weight=hidden_weight,
                teacher_features=cache.features_for("train", ids[batch_rows]).to(device) if hidden_weight > 0 else None,
                projection=projection,
            )
            loss = step.loss
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"the training loss became {loss.item()} in epoch {epoch}: the learning rate lr={lr:g} is too high "
                    f"for this student; try lr={lr / 10:g}"
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            n, n_labelled = len(batch_rows), int(batch_labelled.sum())
            sums["loss"] += loss.item() * n
            sums["ce"] += (step.ce.item() if step.ce is not None else 0.0) * n_labelled
            sums["kd"] += step.kd.item() * n
            sums["hidden"] += (step.hidden.item() if step.hidden is not None else 0.0) * n
            seen += n_labelled
        seconds = time.perf_counter() - start
        dev = evaluate(student, cache.tokens["dev"], cache.labels["dev"], device=device)
        train_accuracy = float("nan")  # undefined when no row has a label (pure distillation on a transfer set)
        if len(scored_labels):
            train_accuracy = (predict_logits(student, scored_tokens, device=device).argmax(dim=1) == scored_labels).float().mean().item()
        history.epochs.append({
            "epoch": epoch, "loss": sums["loss"] / len(rows), "ce": sums["ce"] / max(seen, 1),
            "kd": sums["kd"] / len(rows), "hidden": sums["hidden"] / len(rows),
            # scored like dev (after the epoch, dropout off) on a fixed labelled subset: the train − dev gap
            # on the learning curves is then the overfitting signal, not a dropout artefact
            "train_accuracy": train_accuracy,
            "dev_accuracy": dev.accuracy, "seconds": seconds,
        })
        if on_epoch_end is not None:
            on_epoch_end(history)
        if stopper.should_stop(student, dev.accuracy, epoch):
            break
    history.best_epoch = stopper.restore_best(student)
    student.eval()
    return history


def train_score_rows(labelled_rows: Tensor, count: int = TRAIN_SCORE_ROWS) -> Tensor:
    """The labelled train rows whose accuracy the loop records each epoch: `count` of them, drawn once.

    The draw uses its own generator seeded with 0, so it is the same whatever the training seed, and every run
    on the same rows is scored on the same subset; with `count` or fewer labelled rows, all of them are scored.
    """
    labelled_rows = torch.as_tensor(labelled_rows, dtype=torch.long)
    if len(labelled_rows) <= count:
        return labelled_rows
    pick = torch.randperm(len(labelled_rows), generator=torch.Generator().manual_seed(0))[:count]
    return labelled_rows[pick.sort().values]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; the fused kernel where torch has one (≈3× faster steps for the bag student's big embedding table)."""
    fused = device.type in ("cpu", "cuda") and all(p.dtype == torch.float32 for p in model.parameters())
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=fused or None)


def drop_tokens(batch: Tokens, probability: float, generator: torch.Generator) -> Tokens:
    """Hide random word pieces from the student (text augmentation); [CLS] and one real token always stay."""
    keep = torch.rand(batch.attention_mask.shape, generator=generator) >= probability
    keep[:, 0] = True  # [CLS]
    mask = batch.attention_mask * keep
    # a row left with only [CLS] gets its first word piece back, so no query becomes empty
    lonely = mask.sum(dim=1) <= 1
    mask[lonely, 1] = batch.attention_mask[lonely, 1]
    return Tokens(batch.input_ids, mask)


def _check_hidden_loss(student: nn.Module, cache: TeacherCache) -> None:
    """The cosine loss compares sentence vectors, so the student must return one and say its width."""
    if getattr(student, "feature_dim", None) is None:
        raise ValueError(
            f"hidden_weight > 0 needs a student that returns its sentence vector (return_features=True) and says "
            f"its width (feature_dim), as kdlab's students do; {type(student).__name__} does not"
        )


def feature_projection(student: nn.Module, cache: TeacherCache) -> nn.Linear | None:
    """A fresh linear map from the student's sentence vector to the teacher's width, or None when they match (notebook 12).

    FitNets' regressor: a 64-d bag cannot equal a 384-d MiniLM vector, but a learned map of it can point the same
    way. Drawn from the loop's seeded random stream, so a run stays reproducible.
    """
    _check_hidden_loss(student, cache)
    student_width, teacher_width = student.feature_dim, cache.features["train"].shape[1]
    return None if student_width == teacher_width else nn.Linear(student_width, teacher_width)


@dataclass
class Step:
    """What one training step computed: the loss to back-propagate, the logits, and its parts for the history."""

    loss: Tensor
    logits: Tensor
    ce: Tensor | None  # mean hard-label CE over the batch's labelled rows (detached); None if none has a label
    kd: Tensor  # mean T²·KL over all rows (detached)
    hidden: Tensor | None  # mean 1 − cos(student vector, teacher vector) when hidden_weight > 0 (detached)


def distillation_step(
    student: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    teacher_logits: Tensor,
    labels: Tensor | None,
    *,
    temperature: float,
    lam: float,
    hidden_weight: float = 0.0,
    teacher_features: Tensor | None = None,
    projection: nn.Module | None = None,
) -> Step:
    """One forward pass and its loss, shared by train_student and the Trainer so they cannot drift.

    `labels` holds -100 for unlabelled rows (the loss's rule: every row weighs 1). With `hidden_weight` > 0 the
    student's sentence vector (mapped by `projection` first, when the widths differ) is pulled towards the
    teacher's by w·(1 − cos) (DistilBERT's cosine loss).
    """
    if hidden_weight > 0:
        logits, features = student(input_ids, attention_mask, return_features=True)
    else:
        logits, features = student(input_ids, attention_mask), None
    loss, (ce, kd) = loss_and_terms(logits, teacher_logits, labels, temperature, lam)
    hidden = None
    if features is not None:
        if teacher_features is None:
            raise ValueError("hidden_weight > 0 needs teacher_features: the teacher's sentence vectors for these rows")
        if projection is not None:
            features = projection(features)
        if features.shape[-1] != teacher_features.shape[-1]:
            raise ValueError(f"the student's sentence vectors are {features.shape[-1]}-d and the teacher's "
                             f"{teacher_features.shape[-1]}-d: pass a projection (training.feature_projection)")
        cosine = (1.0 - torch.nn.functional.cosine_similarity(features, teacher_features.to(features.dtype), dim=1)).mean()
        loss = loss + hidden_weight * cosine
        hidden = cosine.detach()
    return Step(loss, logits, ce, kd, hidden)


def throughput(model: nn.Module, tokens: Tokens, batch_size: int = 32, max_examples: int = 512, device: torch.device | None = None) -> float:
    """Examples per second at inference, after one warm-up batch (first calls are slower)."""
    device = device or next(model.parameters()).device
    subset = Tokens(tokens.input_ids[:max_examples], tokens.attention_mask[:max_examples])
    predict_logits(model, Tokens(subset.input_ids[:batch_size], subset.attention_mask[:batch_size]), batch_size, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    predict_logits(model, subset, batch_size, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(subset) / (time.perf_counter() - start)
