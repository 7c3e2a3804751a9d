"""DistillationTrainer: the same loss as the hand-written formula, teacher logits that reach it, and DDP under torchrun.

The teacher cache is built once for the module from the toy intents and the tiny random BERT, as a
learner's would be from Banking77 and MiniLM; training runs use the bag student, seconds on a CPU.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import PrinterCallback, TrainingArguments

from kdlab import build_student, evaluate, load_encoder, load_teacher_cache
from kdlab.cache import TeacherSettings
from kdlab.plots import CURVE_COLUMNS
from kdlab.scale_out import (
    BATCH_FIELDS,
    DistillationDataset,
    DistillationTrainer,
    collate_distillation_batch,
    distill_with_trainer,
    training_arguments,
)
from toy import write_toy_split

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "distill_trainer.py"
CHANCE = 1 / 3  # three toy intents


def hand_kd_loss(student_logits, teacher_logits, labels, temperature, lam):
    """The loss written out from Hinton et al. (2015) by another route than kdlab.losses: torch's own kl_div on
    probabilities from softmax, CE from a one-hot matrix — so a shared mistake in log_softmax algebra cannot hide."""
    one_hot = F.one_hot(labels, student_logits.shape[1]).to(student_logits.dtype)
    ce = -(one_hot * torch.log(torch.softmax(student_logits, dim=1))).sum(dim=1).mean()
    p_teacher = torch.softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(torch.log(torch.softmax(student_logits / temperature, dim=1)), p_teacher, reduction="batchmean")
    return lam * ce + (1 - lam) * temperature**2 * kl


@pytest.fixture(scope="module")
def toy_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("toy")
    for split, rows, seed in (("train", 90, 0), ("dev", 30, 1), ("test", 30, 2)):
        write_toy_split(folder / f"{split}.tsv", rows, seed)
    return folder


@pytest.fixture(scope="module")
def cache(toy_folder, tiny_bert, tmp_path_factory):
    return load_teacher_cache(toy_folder, str(tiny_bert), TeacherSettings(), root=tmp_path_factory.mktemp("cache"), progress=False)


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return load_encoder(str(tiny_bert))[1]


def make_trainer(student, tmp_path, temperature=4.0, lam=0.5, **kwargs):
    return DistillationTrainer(model=student, args=training_arguments(tmp_path, epochs=1, batch_size=8, eval_strategy="no"), temperature=temperature, lam=lam, **kwargs)


def fixed_batch(cache, rows=range(12)):
    return collate_distillation_batch([DistillationDataset(cache, "train", list(rows))[i] for i in range(len(rows))])


@pytest.mark.parametrize("kind", ["bag", "tiny-bert"])
@pytest.mark.parametrize("temperature, lam", [(1.0, 0.5), (4.0, 0.3), (2.0, 0.0), (8.0, 1.0)])
def test_compute_loss_equals_the_hand_formula(cache, tokenizer, tmp_path, kind, temperature, lam):
    student = build_student(kind, tokenizer, 3, seed=0).eval()  # eval: dropout off, so both forwards agree
    trainer = make_trainer(student, tmp_path, temperature, lam)
    batch = fixed_batch(cache)
    loss, outputs = trainer.compute_loss(student, batch, return_outputs=True)
    logits = student(batch["input_ids"], batch["attention_mask"])
    expected = hand_kd_loss(logits, batch["teacher_logits"], batch["labels"], temperature, lam)
    assert torch.allclose(outputs["logits"], logits)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)
    assert set(batch) == set(BATCH_FIELDS)  # compute_loss left the caller's batch as it was


@pytest.mark.parametrize("temperature, lam", [(2.0, 0.5), (5.0, 0.1)])
def test_gradients_equal_the_hand_formula_and_skip_the_teacher(cache, tokenizer, tmp_path, temperature, lam):
    student = build_student("bag", tokenizer, 3, seed=0).eval()
    trainer = make_trainer(student, tmp_path, temperature, lam)
    batch = fixed_batch(cache)
    batch["teacher_logits"] = batch["teacher_logits"].clone().requires_grad_(True)

    student.zero_grad()
    trainer.compute_loss(student, batch).backward()
    from_trainer = {name: p.grad.clone() for name, p in student.named_parameters()}
    assert batch["teacher_logits"].grad is None  # the teacher is a fixed target

    student.zero_grad()
    logits = student(batch["input_ids"], batch["attention_mask"])
    hand_kd_loss(logits, batch["teacher_logits"].detach(), batch["labels"], temperature, lam).backward()
    for name, p in student.named_parameters():
        assert torch.allclose(from_trainer[name], p.grad, rtol=1e-5, atol=1e-7), name
    assert any(g.abs().sum() > 0 for g in from_trainer.values())


def test_teacher_logits_and_labels_survive_the_trainers_column_filter(cache, tokenizer, tmp_path):
    # Plain TrainingArguments: remove_unused_columns=True and no label_names, the hard case.
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, per_device_eval_batch_size=7)
    assert args.remove_unused_columns and args.label_names is None
    student = build_student("bag", tokenizer, 3, seed=0)
    trainer = DistillationTrainer(model=student, args=args, temperature=2.0, lam=0.5)
    batch = next(iter(trainer.get_eval_dataloader(DistillationDataset(cache, "dev"))))  # in row order
    assert set(batch) == set(BATCH_FIELDS)
    assert torch.equal(batch["teacher_logits"], cache.logits["dev"][:7])
    assert torch.equal(batch["labels"], cache.labels["dev"][:7])
    assert batch["attention_mask"][:, -1].any()  # padding columns no row needs were trimmed
    metrics = trainer.evaluate(DistillationDataset(cache, "dev"))  # evaluation goes through compute_loss
    assert math.isfinite(metrics["eval_loss"])


def test_a_short_run_lowers_the_loss_and_learns_the_toy_intents(cache, tokenizer, tmp_path):
    student = build_student("bag", tokenizer, 3, seed=0)
    before = evaluate(student, cache.tokens["dev"], cache.labels["dev"]).accuracy
    run = distill_with_trainer(student, cache, temperature=2.0, lam=0.5, epochs=8, batch_size=16, lr=1e-2, output_dir=tmp_path)
    losses = run.history.column("loss")
    assert len(run.history.epochs) == 8 and set(CURVE_COLUMNS) <= set(run.history.epochs[0])
    assert losses[-1] < 0.8 * losses[0]
    for row in run.history.epochs:  # the logged parts add up to the logged loss
        assert row["loss"] == pytest.approx(0.5 * row["ce"] + 0.5 * row["kd"], rel=1e-4)
    assert run.train_accuracy > 0.8 and run.dev_accuracy > 0.7 and run.dev_accuracy > before
    assert run.dev_accuracy == pytest.approx(evaluate(student, cache.tokens["dev"], cache.labels["dev"]).accuracy)
    assert run.world_size == 1 and not list(tmp_path.iterdir())  # nothing saved unless asked


def test_a_subset_of_rows_keeps_its_own_teacher_logits(cache):
    rows = [5, 0, 42]
    subset = DistillationDataset(cache, "train", rows)
    assert len(subset) == 3
    for i, row in enumerate(rows):
        assert torch.equal(subset[i]["teacher_logits"], cache.logits["train"][row])
        assert subset[i]["labels"] == cache.labels["train"][row]


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan"), float("inf"), "4", True])
def test_bad_temperature_is_refused_with_a_clear_message(cache, tokenizer, tmp_path, temperature):
    student = build_student("bag", tokenizer, 3)
    with pytest.raises(ValueError, match=r"temperature must be (a number|a finite number|> 0 and ≤ 1000) .*typical"):
        make_trainer(student, tmp_path, temperature=temperature)
    with pytest.raises(ValueError, match="temperature must be"):
        distill_with_trainer(student, cache, temperature=temperature, output_dir=tmp_path)


@pytest.mark.parametrize("lam", [-0.1, 1.5, float("nan"), None])
def test_bad_lam_is_refused_with_a_clear_message(cache, tokenizer, tmp_path, lam):
    student = build_student("bag", tokenizer, 3)
    with pytest.raises(ValueError, match=r"lam (\(the weight on the hard-label CE term.*\) must be in \[0, 1\]|must be a number)"):
        make_trainer(student, tmp_path, lam=lam)
    with pytest.raises(ValueError, match="lam"):
        distill_with_trainer(student, cache, lam=lam, output_dir=tmp_path)


def test_other_mistakes_get_messages_that_say_what_to_do(cache, tokenizer, tmp_path):
    trainer = make_trainer(build_student("bag", tokenizer, 3), tmp_path)
    batch = fixed_batch(cache)
    del batch["teacher_logits"]
    with pytest.raises(ValueError, match="DistillationDataset"):
        trainer.compute_loss(trainer.model, batch)
    with pytest.raises(ValueError, match="rows must be"):
        DistillationDataset(cache, "train", [0, 90])
    with pytest.raises(ValueError, match="split must be one of"):
        DistillationDataset(cache, "validation")
    with pytest.raises(ValueError, match="epochs must be an integer"):
        training_arguments(tmp_path, epochs=0)


def test_torchrun_two_processes_on_cpu_train_one_ddp_student(toy_folder, tiny_bert, tmp_path):
    """The launch path: `torchrun --nproc_per_node 2` (gloo on CPU) runs the script as one DDP job.

    `python -m torch.distributed.run` is what the `torchrun` command runs; --standalone picks a free
    port, so parallel test runs do not collide on 29500.
    """
    out = tmp_path / "run"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
        "KDLAB_CACHE": str(tmp_path / "cache"), "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    }
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(SCRIPT),
        "--data", str(toy_folder), "--teacher", str(tiny_bert), "--student", "bag", "--epochs", "3",
        "--batch-size", "16", "--lr", "0.02", "--max-train-rows", "64", "--output-dir", str(out),
        "--seed", "0", "--save-student", "--quiet",
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    results = json.loads((out / "results.json").read_text())
    assert results["world_size"] == 2
    # 64 rows, 16 per process, 2 processes: 2 optimizer steps per epoch, not the 4 one process would take.
    assert results["optimizer_steps"] == 3 * 2
    assert results["settings"]["train_rows"] == 64 and len(results["history"]) == 3
    assert results["train_accuracy"] > CHANCE and results["dev_accuracy"] > CHANCE
    assert log.count("building it") == 1  # the main process built the teacher cache; the other waited, then read it
    assert log.count("results written to") == 1  # only the main process writes
    saved = load_file(str(out / "student" / "model.safetensors"))
    _, tokenizer = load_encoder(str(tiny_bert))
    assert set(saved) == set(build_student("bag", tokenizer, 3).state_dict())


def test_the_documented_launch_commands_parse_with_the_installed_launchers():
    from accelerate.commands.launch import launch_command_parser
    from torch.distributed.run import get_args_parser

    from kdlab import scale_out

    for command in (scale_out.ACCELERATE_LAUNCH, scale_out.ACCELERATE_LAUNCH_MULTI_MACHINE):
        words = command.replace("MACHINE_RANK", "1").split()
        assert words[:2] == ["accelerate", "launch"]
        parsed = launch_command_parser().parse_args(words[2:])
        assert parsed.multi_gpu and parsed.training_script == scale_out.SCRIPT
    assert parsed.num_processes == 16 and parsed.num_machines == 2 and parsed.machine_rank == 1
    assert parsed.main_process_ip == "10.0.0.1"
    for command in (scale_out.TORCHRUN_LAUNCH, scale_out.TORCHRUN_LAUNCH_MULTI_MACHINE):
        words = command.replace("MACHINE_RANK", "1").split()
        parsed = get_args_parser().parse_args(words[1:])
        assert parsed.nproc_per_node == "8" and parsed.training_script == scale_out.SCRIPT
    assert parsed.nnodes == "2" and parsed.node_rank == 1 and parsed.master_addr == "10.0.0.1"
    assert (REPO / scale_out.SCRIPT).exists()


# --- the same rules as kdlab.train_student: partly labelled rows, gradient accumulation, early stopping ---


def hand_partly_labelled_loss(student_logits, teacher_logits, labels, temperature, lam):
    """Every row weighs 1: λ·CE_i + (1−λ)·KD_i for a labelled row, KD_i for a row labelled -100; mean over rows."""
    p_teacher = torch.softmax(teacher_logits / temperature, dim=1)
    kd = temperature**2 * F.kl_div(torch.log(torch.softmax(student_logits / temperature, dim=1)), p_teacher,
                                   reduction="none").sum(dim=1)
    keep = labels != -100
    ce = torch.zeros_like(kd)
    ce[keep] = F.nll_loss(torch.log(torch.softmax(student_logits[keep], dim=1)), labels[keep], reduction="none")
    return torch.where(keep, lam * ce + (1 - lam) * kd, kd).mean()


def test_unlabelled_rows_carry_minus_100_and_follow_the_row_rule(cache, tokenizer, tmp_path):
    labelled = torch.tensor([i % 3 == 0 for i in range(12)])
    rows = DistillationDataset(cache, "train", list(range(12)), labelled=labelled)
    batch = collate_distillation_batch([rows[i] for i in range(12)])
    assert torch.equal(batch["labels"] == -100, ~labelled)
    assert torch.equal(batch["labels"][labelled], cache.labels["train"][:12][labelled])
    student = build_student("bag", tokenizer, 3, seed=0).eval()
    trainer = make_trainer(student, tmp_path, temperature=3.0, lam=0.6)
    loss = trainer.compute_loss(student, batch)
    logits = student(batch["input_ids"], batch["attention_mask"])
    expected = hand_partly_labelled_loss(logits, batch["teacher_logits"], batch["labels"], 3.0, 0.6)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="one flag per row"):
        DistillationDataset(cache, "train", [0, 1, 2], labelled=[True, False])


def one_sgd_step(cache, tokenizer, tmp_path, batch_size, accumulation):
    """Weights after exactly one optimiser step of plain SGD, dropout off, with the given batch/accumulation."""
    student = build_student("bag", tokenizer, 3, seed=0, dropout=0.0)
    args = training_arguments(tmp_path, epochs=1, batch_size=batch_size, lr=0.5, eval_strategy="no", max_steps=1,
                              gradient_accumulation_steps=accumulation, optim="sgd", lr_scheduler_type="constant",
                              dataloader_drop_last=True)
    trainer = DistillationTrainer(model=student, args=args, train_dataset=DistillationDataset(cache, "train"),
                                  temperature=2.0, lam=0.5)
    trainer.remove_callback(PrinterCallback)  # no log lines in the test output
    start = {k: v.clone() for k, v in build_student("bag", tokenizer, 3, seed=0, dropout=0.0).state_dict().items()}
    trainer.train()
    return {k: v.detach() for k, v in student.state_dict().items()}, start


def test_gradient_accumulation_gives_the_step_of_the_whole_batch(cache, tokenizer, tmp_path):
    # 2 micro-batches of 8 accumulated must take the same SGD step as one batch of 16 of the same rows
    # (the sampler draws the same permutation for the same seed). Without the 1/2 scaling the step is twice as long.
    whole, start = one_sgd_step(cache, tokenizer, tmp_path / "a", batch_size=16, accumulation=1)
    accumulated, _ = one_sgd_step(cache, tokenizer, tmp_path / "b", batch_size=8, accumulation=2)
    moved = 0.0
    for name in whole:
        assert torch.allclose(whole[name], accumulated[name], rtol=1e-4, atol=1e-6), name
        moved += float((whole[name] - start[name]).abs().sum())
    assert moved > 1e-3  # the step was taken, so the comparison has teeth


def test_trainer_early_stopping_restores_the_best_epoch(cache, tokenizer, tmp_path):
    student = build_student("bag", tokenizer, 3, seed=0)
    run = distill_with_trainer(student, cache, temperature=2.0, lam=0.5, epochs=30, batch_size=16, lr=5e-2,
                               early_stopping=2, output_dir=tmp_path)
    dev = run.history.column("dev_accuracy")
    assert len(dev) < 30  # it stopped: the toy task saturates long before 30 epochs
    best = run.history.best_epoch
    assert dev[best - 1] == max(dev) and all(d <= max(dev) for d in dev[best:])
    assert run.dev_accuracy == pytest.approx(max(dev))  # the kept weights are the best epoch's


def test_trainer_and_train_student_share_one_step(cache, tokenizer):
    from kdlab import training
    from kdlab.scale_out import DistillationTrainer as Trainer_

    assert Trainer_.compute_loss.__code__.co_names.count("distillation_step") == 1
    assert "distillation_step" in training._train.__code__.co_names
