"""Scaling out: kdlab's distillation loss inside a Hugging Face `Trainer`, so one script runs on 1 CPU or 8 GPUs.

The loss is the same one every lesson uses (`kdlab.losses.distillation_loss`):

    L = lam * CE(z_s, y) + (1 - lam) * T² * KL(softmax(z_t / T) ‖ softmax(z_s / T))

What changes is who runs the loop. `transformers.Trainer` handles devices, mixed precision, gradient
accumulation and DistributedDataParallel (https://huggingface.co/docs/transformers/main_classes/trainer);
`DistillationTrainer` only overrides `compute_loss`. The teacher never runs here: its logits come from
kdlab's teacher cache and ride along in every batch as a `teacher_logits` field, so the GPUs hold only
the student.

Launching on one machine with 8 GPUs (either launcher; the Trainer sees the same environment):

    accelerate launch --multi_gpu --num_processes 8 scripts/distill_trainer.py --student tiny-bert
    torchrun --nproc_per_node 8 scripts/distill_trainer.py --student tiny-bert

On 2 machines with 8 GPUs each, run once per machine with MACHINE_RANK = 0 and 1 (accelerate's
--num_processes counts processes on all machines together; torchrun's --nproc_per_node counts one machine's):

    accelerate launch --multi_gpu --num_processes 16 --num_machines 2 --machine_rank MACHINE_RANK \\
        --main_process_ip 10.0.0.1 --main_process_port 29500 scripts/distill_trainer.py --student tiny-bert
    torchrun --nnodes 2 --nproc_per_node 8 --node_rank MACHINE_RANK \\
        --master_addr 10.0.0.1 --master_port 29500 scripts/distill_trainer.py --student tiny-bert

Build the teacher cache before a multi-machine launch (`python scripts/distill_trainer.py --build-cache-only`
with the same --data, --teacher and --seed; once if the cache folder is shared, else on every machine).
On one machine the script builds it itself: the main process builds, the others wait, then read it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from transformers import PrinterCallback, Trainer, TrainingArguments

from .cache import TeacherCache, cache_root
from .losses import distillation_loss, distillation_terms
from .tokens import Tokens
from .training import History

SCRIPT = "scripts/distill_trainer.py"
# The launch lines the docstring above explains, as strings a notebook can print.
ACCELERATE_LAUNCH = f"accelerate launch --multi_gpu --num_processes 8 {SCRIPT}"
TORCHRUN_LAUNCH = f"torchrun --nproc_per_node 8 {SCRIPT}"
ACCELERATE_LAUNCH_MULTI_MACHINE = (
    "accelerate launch --multi_gpu --num_processes 16 --num_machines 2 --machine_rank MACHINE_RANK "
    f"--main_process_ip 10.0.0.1 --main_process_port 29500 {SCRIPT}"
)
TORCHRUN_LAUNCH_MULTI_MACHINE = (
    "torchrun --nnodes 2 --nproc_per_node 8 --node_rank MACHINE_RANK "
    f"--master_addr 10.0.0.1 --master_port 29500 {SCRIPT}"
)

BATCH_FIELDS = ("input_ids", "attention_mask", "labels", "teacher_logits")


class DistillationDataset(Dataset):
    """Rows of one teacher-cache split as dicts: token ids, mask, label and the teacher's logits."""

    def __init__(self, cache: TeacherCache, split: str = "train", rows: Tensor | list[int] | None = None):
        if split not in cache.ids:
            raise ValueError(f"split must be one of {', '.join(cache.ids)}, got {split!r}")
        total = len(cache.ids[split])
        rows = torch.arange(total) if rows is None else torch.as_tensor(rows, dtype=torch.long)
        if rows.ndim != 1 or len(rows) == 0 or int(rows.min()) < 0 or int(rows.max()) >= total:
            raise ValueError(f"rows must be a non-empty list of row numbers in [0, {total}) of the {split} split")
        tokens = cache.tokens[split]
        self.input_ids = tokens.input_ids[rows]
        self.attention_mask = tokens.attention_mask[rows]
        self.labels = cache.labels[split][rows]
        # Looked up by example id, not by position, so a subset or reordering can never misalign them.
        self.teacher_logits = cache.logits_for(split, cache.ids[split][rows]).float()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {
            "input_ids": self.input_ids[index], "attention_mask": self.attention_mask[index],
            "labels": self.labels[index], "teacher_logits": self.teacher_logits[index],
        }


def collate_distillation_batch(rows: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Stack rows into a batch and drop padding columns no row needs, as the plain training loop does."""
    missing = [name for name in BATCH_FIELDS if name not in rows[0]]
    if missing:
        raise ValueError(f"batch rows lack {', '.join(missing)}; build the dataset with kdlab.scale_out.DistillationDataset")
    tokens = Tokens(torch.stack([r["input_ids"] for r in rows]), torch.stack([r["attention_mask"] for r in rows]))
    tokens = tokens.select(torch.arange(len(rows)))
    return {
        "input_ids": tokens.input_ids, "attention_mask": tokens.attention_mask,
        "labels": torch.stack([r["labels"] for r in rows]), "teacher_logits": torch.stack([r["teacher_logits"] for r in rows]),
    }


class DistillationTrainer(Trainer):
    """A `Trainer` whose loss is kdlab's distillation loss, with teacher logits read from each batch."""

    # compute_loss returns a per-batch mean, so the Trainer divides it by the gradient-accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, temperature: float = 4.0, lam: float = 0.5, **kwargs):
        check_temperature(temperature)
        check_lam(lam)
        kwargs.setdefault("data_collator", collate_distillation_batch)
        super().__init__(*args, **kwargs)
        self.temperature = float(temperature)
        self.lam = float(lam)
        # kdlab students name no label argument in forward(), so the Trainer cannot find one by itself;
        # without it, evaluation would skip compute_loss and hand `labels` to the student.
        self.label_names = ["labels"]
        self._term_sums = {"ce": 0.0, "kd": 0.0, "steps": 0}

    def _set_signature_columns_if_needed(self) -> None:
        # The Trainer keeps only columns named in model.forward (input_ids, attention_mask) when
        # remove_unused_columns=True; declaring the batch fields keeps labels and teacher_logits too.
        if self._signature_columns is None:
            self._signature_columns = list(BATCH_FIELDS)

    def compute_loss(self, model: nn.Module, inputs: dict, return_outputs: bool = False, num_items_in_batch=None):
        """λ·CE + (1−λ)·T²·KL for one batch; `num_items_in_batch` is unused since the loss is a batch mean."""
        if "teacher_logits" not in inputs or "labels" not in inputs:
            raise ValueError(
                "the batch has no teacher_logits or labels; build the dataset with "
                "kdlab.scale_out.DistillationDataset(cache, split) so each row carries them"
            )
        inputs = dict(inputs)  # the caller's dict stays intact
        labels, teacher_logits = inputs.pop("labels"), inputs.pop("teacher_logits")
        student_logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        loss = distillation_loss(student_logits, teacher_logits, labels, self.temperature, self.lam)
        if model.training:  # the two parts, for the same per-epoch columns train_student records
            with torch.no_grad():
                ce, kd = distillation_terms(student_logits.detach(), teacher_logits, labels, self.temperature)
            # Summed as tensors: calling .item() here would make a GPU wait for the CPU every step.
            self._term_sums["ce"] = self._term_sums["ce"] + ce.float()
            self._term_sums["kd"] = self._term_sums["kd"] + kd.float()
            self._term_sums["steps"] += 1
        return (loss, {"logits": student_logits}) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean CE and KD terms since the last log (averaged over processes) to each training log."""
        if "loss" in logs:  # every process gets here together; the reduce below must not be skipped by one
            sums = torch.stack([torch.as_tensor(self._term_sums[part], device=self.args.device) for part in ("ce", "kd")])
            sums = self.accelerator.reduce(sums / max(self._term_sums["steps"], 1), reduction="mean")
            logs["ce"], logs["kd"] = sums.tolist()
            self._term_sums = {"ce": 0.0, "kd": 0.0, "steps": 0}
        super().log(logs, start_time)


def accuracy_metric(prediction) -> dict[str, float]:
    """`compute_metrics` for the Trainer: the share of rows whose top logit is the label."""
    logits, labels = prediction.predictions, prediction.label_ids
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}


def training_arguments(
    output_dir: str | Path | None = None,
    *,
    epochs: int = 12,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    lr_decay: bool = True,
    seed: int = 0,
    save: bool = False,
    progress: bool = False,
    **overrides,
) -> TrainingArguments:
    """TrainingArguments matching kdlab.train_student: AdamW, linear decay, one log and one dev check per epoch.

    Nothing is reported to wandb & co. and no checkpoint is written unless `save=True`. `batch_size` is per
    process: under 8 processes the optimizer sees 8 × batch_size rows per step. Extra keyword arguments go
    straight to TrainingArguments (e.g. bf16=True on a GPU).
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer ≥ 1, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer ≥ 1 (rows per process per step), got {batch_size!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, e.g. 3e-3 for a bag student, 1e-3 for tiny-bert; got {lr!r}")
    on_cpu = not torch.cuda.is_available()
    settings = dict(
        output_dir=str(output_dir if output_dir is not None else cache_root() / "trainer-runs"),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=256,
        learning_rate=lr,
        weight_decay=weight_decay,
        lr_scheduler_type="linear" if lr_decay else "constant",
        warmup_steps=0,
        seed=seed,
        logging_strategy="epoch",
        eval_strategy="epoch",
        save_strategy="epoch" if save else "no",
        save_only_model=True,
        report_to="none",
        disable_tqdm=not progress,
        label_names=["labels"],
        # Like kdlab.training.default_device: a GPU when there is one, else the CPU. Saying so matters under
        # torchrun on CPUs: without use_cpu the processes would not join one process group, and each would
        # train alone on the whole data set. Those CPU processes talk over gloo, the backend torchrun can
        # start (accelerate would pick MPI where torch has it); a single process needs no backend at all.
        use_cpu=on_cpu,
        ddp_backend="gloo" if on_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        dataloader_pin_memory=torch.cuda.is_available(),
        # Every kdlab student uses all its weights each step; searching for unused ones costs a graph walk.
        ddp_find_unused_parameters=False,
    )
    settings.update(overrides)
    return TrainingArguments(**settings)


@dataclass
class TrainerRun:
    """What a Trainer run leaves for the notebook: per-epoch history, final accuracies, and the trainer."""

    history: History  # epoch, loss, ce, kd, dev_loss, dev_accuracy: the columns kdlab.plots draws
    train_accuracy: float
    dev_accuracy: float
    seconds: float
    world_size: int
    trainer: DistillationTrainer


def distill_with_trainer(
    student: nn.Module,
    cache: TeacherCache,
    *,
    temperature: float = 4.0,
    lam: float = 0.5,
    epochs: int = 12,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    rows: Tensor | list[int] | None = None,
    output_dir: str | Path | None = None,
    save: bool = False,
    progress: bool = False,
    args: TrainingArguments | None = None,
) -> TrainerRun:
    """Train a student on the cache's train split with DistillationTrainer; report dev accuracy each epoch.

    `rows` picks a subset of the train split (default: all of it). Pass `args` to use your own
    TrainingArguments instead of `training_arguments(...)` built from the other settings.
    """
    check_temperature(temperature)
    check_lam(lam)
    if args is None:
        args = training_arguments(output_dir, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, save=save, progress=progress)
    train_rows = DistillationDataset(cache, "train", rows)
    trainer = DistillationTrainer(
        model=student, args=args, train_dataset=train_rows, eval_dataset=DistillationDataset(cache, "dev"),
        compute_metrics=accuracy_metric, temperature=temperature, lam=lam,
    )
    if not progress:  # with progress bars off, the Trainer would print every log dict instead
        trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    train_accuracy = trainer.evaluate(train_rows, metric_key_prefix="train")["train_accuracy"]
    dev_accuracy = trainer.evaluate()["eval_accuracy"]
    student.eval()
    return TrainerRun(history_from_log(trainer.state.log_history), train_accuracy, dev_accuracy, seconds, args.world_size, trainer)


def history_from_log(log_history: list[dict]) -> History:
    """Turn the Trainer's log (one train and one eval entry per epoch) into a kdlab History."""
    by_epoch: dict[float, dict] = {}
    for entry in log_history:
        if "epoch" not in entry:
            continue
        row = by_epoch.setdefault(round(entry["epoch"], 6), {"epoch": round(entry["epoch"])})
        if "loss" in entry:
            row.update(loss=entry["loss"], ce=entry.get("ce"), kd=entry.get("kd"))
        if "eval_accuracy" in entry:
            row.update(dev_loss=entry["eval_loss"], dev_accuracy=entry["eval_accuracy"])
    history = History()
    history.epochs = [row for _, row in sorted(by_epoch.items()) if "loss" in row and "dev_accuracy" in row]
    return history


def check_temperature(temperature: float) -> None:
    """Refuse temperatures that would divide by zero or flip the softmax, before any training starts."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0 (1 = plain softmax; 2 to 8 is typical for KD), got {temperature!r}")


def check_lam(lam: float) -> None:
    """Refuse weights outside [0, 1], where one of the two loss terms would be rewarded for getting worse."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not 0.0 <= lam <= 1.0:
        raise ValueError(
            f"lam is the weight on the hard-label CE term and must be in [0, 1] "
            f"(1 = labels only, 0 = teacher only, 0.5 = an even blend), got {lam!r}"
        )
