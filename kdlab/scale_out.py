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
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from .cache import TeacherCache, cache_root
from .checks import check_count, check_lam, check_non_negative_number, check_positive_number, check_temperature
from .losses import IGNORE_INDEX
from .tokens import Tokens
from .training import EarlyStopping, History, distillation_step

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
OPTIONAL_FIELDS = ("teacher_features",)  # only when the cosine loss on sentence vectors is on


class DistillationDataset(Dataset):
    """Rows of one teacher-cache split as dicts: token ids, mask, label (-100 if unlabelled) and the teacher's logits.

    `labelled` (one flag per row) marks which rows may use their label, as in kdlab.train_student; the others
    carry -100 and only the teacher's soft targets teach them. `features=True` adds the teacher's sentence vectors.
    """

    def __init__(self, cache: TeacherCache, split: str = "train", rows: Tensor | list[int] | None = None,
                 labelled: Tensor | list[bool] | None = None, features: bool = False):
        if split not in cache.ids:
            raise ValueError(f"split must be one of {', '.join(cache.ids)}, got {split!r}")
        total = len(cache.ids[split])
        rows = torch.arange(total) if rows is None else torch.as_tensor(rows, dtype=torch.long)
        if rows.ndim != 1 or len(rows) == 0 or int(rows.min()) < 0 or int(rows.max()) >= total:
            raise ValueError(f"rows must be a non-empty list of row numbers in [0, {total}) of the {split} split")
        tokens = cache.tokens[split]
        self.input_ids = tokens.input_ids[rows]
        self.attention_mask = tokens.attention_mask[rows]
        self.labels = cache.labels[split][rows].clone()
        if labelled is not None:
            labelled = torch.as_tensor(labelled, dtype=torch.bool)
            if labelled.shape != rows.shape:
                raise ValueError(f"labelled must have one flag per row: {len(labelled)} flags for {len(rows)} rows")
            self.labels[~labelled] = IGNORE_INDEX
        # Looked up by example id, not by position, so a subset or reordering can never misalign them.
        self.teacher_logits = cache.logits_for(split, cache.ids[split][rows]).float()
        self.teacher_features = cache.features_for(split, cache.ids[split][rows]).float() if features else None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        row = {
            "input_ids": self.input_ids[index], "attention_mask": self.attention_mask[index],
            "labels": self.labels[index], "teacher_logits": self.teacher_logits[index],
        }
        if self.teacher_features is not None:
            row["teacher_features"] = self.teacher_features[index]
        return row


def collate_distillation_batch(rows: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Stack rows into a batch and drop padding columns no row needs, as the plain training loop does."""
    missing = [name for name in BATCH_FIELDS if name not in rows[0]]
    if missing:
        raise ValueError(f"batch rows lack {', '.join(missing)}; build the dataset with kdlab.scale_out.DistillationDataset")
    tokens = Tokens(torch.stack([r["input_ids"] for r in rows]), torch.stack([r["attention_mask"] for r in rows]))
    tokens = tokens.select(torch.arange(len(rows)))
    batch = {
        "input_ids": tokens.input_ids, "attention_mask": tokens.attention_mask,
        "labels": torch.stack([r["labels"] for r in rows]), "teacher_logits": torch.stack([r["teacher_logits"] for r in rows]),
    }
    for name in OPTIONAL_FIELDS:
        if name in rows[0]:
            batch[name] = torch.stack([r[name] for r in rows])
    return batch


class DistillationTrainer(Trainer):
    """A `Trainer` whose loss is kdlab's distillation step, with teacher logits read from each batch (notebook 10).

    The step is `kdlab.training.distillation_step`, the same function `kdlab.train_student` calls: one rule for
    partly labelled batches (labels of -100), the same cosine loss, the same NaN check.
    """

    # compute_loss returns a per-batch mean, so the Trainer must divide it by the gradient-accumulation steps
    # (transformers 5.24's training_step reads this attribute; tests/test_scale_out.py checks the gradient).
    loss_is_scaled_for_ga = False

    def __init__(self, *args, temperature: float = 4.0, lam: float = 0.5, hidden_weight: float = 0.0, **kwargs):
        self.temperature = check_temperature(temperature)
        self.lam = check_lam(lam)
        self.hidden_weight = check_non_negative_number(hidden_weight, "hidden_weight", "0 switches the cosine loss off")
        kwargs.setdefault("data_collator", collate_distillation_batch)
        super().__init__(*args, **kwargs)
        # kdlab students name no label argument in forward(), so the Trainer cannot find one by itself;
        # without it, evaluation would skip compute_loss and hand `labels` to the student.
        self.label_names = ["labels"]
        self._term_sums = {"ce": 0.0, "kd": 0.0, "steps": 0}

    def _set_signature_columns_if_needed(self) -> None:
        # The Trainer keeps only columns named in model.forward (input_ids, attention_mask) when
        # remove_unused_columns=True; declaring the batch fields keeps labels and teacher_logits too.
        if self._signature_columns is None:
            self._signature_columns = list(BATCH_FIELDS + OPTIONAL_FIELDS)

    def compute_loss(self, model: nn.Module, inputs: dict, return_outputs: bool = False, num_items_in_batch=None):
        """λ·CE + (1−λ)·T²·KL for one batch; `num_items_in_batch` is unused since the loss is a batch mean."""
        if "teacher_logits" not in inputs or "labels" not in inputs:
            raise ValueError(
                "the batch has no teacher_logits or labels; build the dataset with "
                "kdlab.scale_out.DistillationDataset(cache, split) so each row carries them"
            )
        hidden_weight = self.hidden_weight if model.training else 0.0
        if hidden_weight > 0 and "teacher_features" not in inputs:
            raise ValueError("hidden_weight > 0 needs the teacher's sentence vectors: DistillationDataset(..., features=True)")
        step = distillation_step(
            model, inputs["input_ids"], inputs["attention_mask"], inputs["teacher_logits"], inputs["labels"],
            temperature=self.temperature, lam=self.lam, hidden_weight=hidden_weight,
            teacher_features=inputs.get("teacher_features"),
        )
        if model.training:  # the two parts, for the same per-epoch columns train_student records
            # Summed as tensors: calling .item() here would make a GPU wait for the CPU every step.
            self._term_sums["ce"] = self._term_sums["ce"] + (step.ce.float() if step.ce is not None else 0.0)
            self._term_sums["kd"] = self._term_sums["kd"] + step.kd.float()
            self._term_sums["steps"] += 1
        return (step.loss, {"logits": step.logits}) if return_outputs else step.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean CE and KD terms since the last log (averaged over processes) to each training log."""
        if "loss" in logs:  # every process gets here together; the reduce below must not be skipped by one
            if not math.isfinite(logs["loss"]):
                raise FloatingPointError(
                    f"the training loss became {logs['loss']}: the learning rate {self.args.learning_rate:g} is too "
                    f"high for this student; try {self.args.learning_rate / 10:g}"
                )
            sums = torch.stack([torch.as_tensor(self._term_sums[part], device=self.args.device) for part in ("ce", "kd")])
            sums = self.accelerator.reduce(sums / max(self._term_sums["steps"], 1), reduction="mean")
            logs["ce"], logs["kd"] = sums.tolist()
            self._term_sums = {"ce": 0.0, "kd": 0.0, "steps": 0}
        super().log(logs, start_time)


class EarlyStoppingCallback(TrainerCallback):
    """kdlab's early stopping (patience on dev accuracy, best weights restored) for the Trainer path."""

    def __init__(self, patience: int):
        self.stopper = EarlyStopping(patience)

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if metrics and "eval_accuracy" in metrics and self.stopper.should_stop(model, metrics["eval_accuracy"], round(state.epoch)):
            control.should_training_stop = True

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.best_epoch = self.stopper.restore_best(model)


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
    check_count(epochs, "epochs")
    check_count(batch_size, "batch_size", hint="rows per process per step")
    check_positive_number(lr, "lr", "e.g. 3e-3 for a bag student, 1e-3 for tiny-bert")
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

    history: History  # epoch, loss, ce, kd, dev_loss, dev_accuracy: the columns kdlab.plots draws; best_epoch too
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
    labelled: Tensor | list[bool] | None = None,
    early_stopping: int | None = None,
    hidden_weight: float = 0.0,
    output_dir: str | Path | None = None,
    save: bool = False,
    progress: bool = False,
    args: TrainingArguments | None = None,
) -> TrainerRun:
    """Train a student on the cache's train split with DistillationTrainer; report dev accuracy each epoch.

    The options mean what they mean in kdlab.train_student: `rows` picks a subset of the train split (default:
    all of it), `labelled` marks which of them may use their label (the rest are an unlabelled transfer set),
    `early_stopping=k` stops after k epochs without a better dev accuracy and restores the best weights,
    `hidden_weight` adds the cosine loss on sentence vectors. Pass `args` to use your own TrainingArguments
    instead of `training_arguments(...)` built from the other settings.
    """
    check_temperature(temperature)
    check_lam(lam)
    stopper = EarlyStoppingCallback(early_stopping) if early_stopping is not None else None
    if args is None:
        args = training_arguments(output_dir, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, save=save, progress=progress)
    train_rows = DistillationDataset(cache, "train", rows, labelled=labelled, features=hidden_weight > 0)
    trainer = DistillationTrainer(
        model=student, args=args, train_dataset=train_rows, eval_dataset=DistillationDataset(cache, "dev"),
        compute_metrics=accuracy_metric, temperature=temperature, lam=lam, hidden_weight=hidden_weight,
        callbacks=[stopper] if stopper is not None else None,
    )
    if not progress:  # with progress bars off, the Trainer would print every log dict instead
        trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    history = history_from_log(trainer.state.log_history)
    history.best_epoch = stopper.best_epoch if stopper is not None else None
    labelled_rows = DistillationDataset(cache, "train", rows) if labelled is None else _labelled_only(cache, rows, labelled)
    train_accuracy = trainer.evaluate(labelled_rows, metric_key_prefix="train")["train_accuracy"]
    dev_accuracy = trainer.evaluate()["eval_accuracy"]
    student.eval()
    return TrainerRun(history, train_accuracy, dev_accuracy, seconds, args.world_size, trainer)


def _labelled_only(cache: TeacherCache, rows, labelled) -> DistillationDataset:
    """The labelled rows of a partly labelled subset: train accuracy is only defined where there is a label."""
    rows = torch.arange(len(cache.ids["train"])) if rows is None else torch.as_tensor(rows, dtype=torch.long)
    return DistillationDataset(cache, "train", rows[torch.as_tensor(labelled, dtype=torch.bool)])


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
