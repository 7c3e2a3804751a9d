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
    "bag": {"lr": 1e-2, "epochs": 15, "batch_size": 64},
    "tiny-bert": {"lr": 1e-3, "epochs": 6, "batch_size": 32},
    "truncated": {"lr": 1e-4, "epochs": 2, "batch_size": 32},
}


@dataclass
class History:
    """Per-epoch record of loss parts and dev accuracy: what the learning-curve plots draw."""

    epochs: list[dict] = field(default_factory=list)

    def column(self, name: str) -> list[float]:
        """One quantity across epochs, e.g. history.column('dev_accuracy')."""
        return [row[name] for row in self.epochs]

    @property
    def best_dev_accuracy(self) -> float:
        return max(self.column("dev_accuracy"))


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
    device: torch.device | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[History], None] | None = None,
) -> History:
    """Train a student on the cache's train split: λ·CE on labelled rows + (1−λ)·T²·KL on all rows.

    `rows` picks which train rows to use (default: all); `labelled` marks which of them may use their
    label (default: all) — the rest form an unlabelled transfer set that only the KD term sees.
    Teacher logits are looked up by example id, so shuffling can never misalign them.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1] (the weight on the hard-label CE term), got {lam}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer ≥ 1, got {epochs!r}")
    device = device or default_device()
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
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = (len(rows) + batch_size - 1) // batch_size
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 1.0 - step / (epochs * steps_per_epoch) if lr_decay else 1.0
    )
    history = History()
    for epoch in range(1, epochs + 1):
        student.train()
        start = time.perf_counter()
        sums = {"loss": 0.0, "ce": 0.0, "kd": 0.0}
        order = torch.randperm(len(rows), generator=generator)
        for batch_positions in tqdm(order.split(batch_size), desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False):
            batch_rows, batch_labelled = rows[batch_positions], labelled[batch_positions]
            batch = tokens.select(batch_rows).to(device)
            student_logits = student(batch.input_ids, batch.attention_mask)
            loss, ce, kd = _batch_loss(
                student_logits, cache, ids[batch_rows], labels[batch_rows].to(device), batch_labelled.to(device), temperature, lam
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            n = len(batch_rows)
            sums["loss"] += loss.item() * n
            sums["ce"] += ce * n
            sums["kd"] += kd * n
        seconds = time.perf_counter() - start
        dev = evaluate(student, cache.tokens["dev"], cache.labels["dev"], device=device)
        history.epochs.append({
            "epoch": epoch, **{k: v / len(rows) for k, v in sums.items()},
            "dev_accuracy": dev.accuracy, "seconds": seconds,
        })
        if on_epoch_end is not None:
            on_epoch_end(history)
    student.eval()
    return history


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
