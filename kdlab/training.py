"""One training loop for the CE-only baseline (λ = 1) and the distilled student (λ < 1)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .cache import TeacherCache
from .losses import distillation_terms
from .tokens import Tokens

# Good starting points per student kind, found on Banking77 dev (see benchmarks/kd_quality.py).
STUDENT_DEFAULTS = {
    "bag": {"lr": 2e-2, "epochs": 15, "batch_size": 256},
    "tiny-bert": {"lr": 1e-3, "epochs": 6, "batch_size": 32},
    "truncated": {"lr": 5e-4, "epochs": 2, "batch_size": 32},
}


@dataclass
class History:
    """Per-epoch record of loss parts and dev accuracy: what the learning-curve plots draw."""

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
    the student's pooled sentence vector and the teacher's (DistilBERT's cosine loss).
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1] (the weight on the hard-label CE term), got {lam}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer ≥ 1, got {epochs!r}")
    if early_stopping is not None and (not isinstance(early_stopping, int) or early_stopping < 1):
        raise ValueError(f"early_stopping is a patience in epochs: None or an integer ≥ 1, got {early_stopping!r}")
    if not 0.0 <= token_dropout < 1.0:
        raise ValueError(f"token_dropout is a probability of hiding each word piece: in [0, 1), got {token_dropout}")
    if hidden_weight < 0:
        raise ValueError(f"hidden_weight must be ≥ 0 (0 switches the cosine loss off), got {hidden_weight}")
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
    tokens, labels, ids = cache.tokens["train"], cache.labels["train"], cache.ids["train"]
    set_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    student.to(device)
    optimizer = make_optimizer(student, lr, weight_decay, device)
    steps_per_epoch = (len(rows) + batch_size - 1) // batch_size
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 1.0 - step / (epochs * steps_per_epoch) if lr_decay else 1.0
    )
    history = History()
    best_accuracy, best_state, waited = -1.0, None, 0
    for epoch in range(1, epochs + 1):
        student.train()
        start = time.perf_counter()
        sums = {"loss": 0.0, "ce": 0.0, "kd": 0.0, "hidden": 0.0}
        correct, seen = 0, 0
        order = torch.randperm(len(rows), generator=generator)
        for batch_positions in tqdm(order.split(batch_size), desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False):
            batch_rows, batch_labelled = rows[batch_positions], labelled[batch_positions]
            batch = tokens.select(batch_rows)
            if token_dropout > 0:
                batch = drop_tokens(batch, token_dropout, generator)
            batch = batch.to(device)
            batch_labels = labels[batch_rows].to(device)
            if hidden_weight > 0:
                pooled = student.pooled(batch.input_ids, batch.attention_mask)
                student_logits = student.head(student.dropout(pooled))
            else:
                student_logits = student(batch.input_ids, batch.attention_mask)
            loss, ce, kd = _batch_loss(
                student_logits, cache, ids[batch_rows], batch_labels, batch_labelled.to(device), temperature, lam
            )
            if hidden_weight > 0:
                target = cache.features_for("train", ids[batch_rows]).to(device)
                hidden = (1.0 - torch.nn.functional.cosine_similarity(pooled, target, dim=1)).mean()
                loss = loss + hidden_weight * hidden
                sums["hidden"] += hidden.item() * len(batch_rows)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            n = len(batch_rows)
            sums["loss"] += loss.item() * n
            sums["ce"] += ce * n
            sums["kd"] += kd * n
            hits = student_logits.detach().argmax(dim=1) == batch_labels
            correct += int(hits[batch_labelled.to(device)].sum())
            seen += int(batch_labelled.sum())
        seconds = time.perf_counter() - start
        dev = evaluate(student, cache.tokens["dev"], cache.labels["dev"], device=device)
        history.epochs.append({
            "epoch": epoch, **{k: v / len(rows) for k, v in sums.items()},
            # running accuracy on the labelled training batches, in train mode (dropout on): the gap to
            # dev accuracy is the overfitting signal on the learning curves
            "train_accuracy": correct / max(seen, 1),
            "dev_accuracy": dev.accuracy, "seconds": seconds,
        })
        if on_epoch_end is not None:
            on_epoch_end(history)
        if early_stopping is not None:
            if dev.accuracy > best_accuracy:
                best_accuracy, waited = dev.accuracy, 0
                best_state = {k: v.detach().clone() for k, v in student.state_dict().items()}
            else:
                waited += 1
                if waited >= early_stopping:
                    break
    if best_state is not None:
        student.load_state_dict(best_state)
        history.best_epoch = max(history.epochs, key=lambda row: row["dev_accuracy"])["epoch"]
    student.eval()
    return history


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
    """The cosine loss compares sentence vectors, so the student must expose one of the teacher's width."""
    if not hasattr(student, "pooled"):
        raise ValueError(
            f"hidden_weight > 0 needs a student with a pooled sentence vector (an encoder student: 'truncated' "
            f"or 'tiny-bert'); {type(student).__name__} has none"
        )
    student_width = student.head.in_features
    teacher_width = cache.features["train"].shape[1]
    if student_width != teacher_width:
        raise ValueError(
            f"hidden_weight > 0 compares sentence vectors, but the student's are {student_width}-d and the "
            f"teacher's {teacher_width}-d; use a student of the teacher's width (e.g. 'truncated')"
        )


def _batch_loss(student_logits, cache, example_ids, labels, labelled, temperature, lam) -> tuple[Tensor, float, float]:
    """λ·CE over the labelled rows + (1−λ)·KD over all rows; teacher logits fetched by example id.

    Both parts are always computed so the history can show them (the CE-only baseline's distance
    from the teacher, too); λ decides which of them the gradient sees.
    """
    teacher_logits = cache.logits_for("train", example_ids).to(student_logits.device)
    kd = distillation_terms(student_logits, teacher_logits, None, temperature).kd
    if labelled.any():
        ce = distillation_terms(student_logits[labelled], teacher_logits[labelled], labels[labelled], temperature).ce
    else:
        ce = student_logits.new_zeros(())
    return lam * ce + (1.0 - lam) * kd, ce.item(), kd.item()


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
