"""Scale-out: TRL's own distillation trainers run on the kdlab teacher and student, saved like hub models.

The same recipe runs on real hub models on GPUs (README, "Language models"); here a few CPU steps prove the kdlab
pair (tokenizer with a pad token and a chat template, GPT-2 classes) is something TRL accepts as it is.
"""

from __future__ import annotations

import math

import pytest
import torch

from lm_tiny import tiny_lm_teacher

trl = pytest.importorskip("trl")


@pytest.fixture(scope="module")
def hub_folders(tmp_path_factory):
    """The tiny teacher and a kdlab student, each saved with save_pretrained (model + tokenizer) as on the hub."""
    from kdlab.lm_distill import lm_student

    root = tmp_path_factory.mktemp("trl")
    teacher = tiny_lm_teacher(root / "lm-cache")
    teacher.model.save_pretrained(root / "teacher")
    teacher.tokenizer.save_pretrained(root / "teacher")
    student = lm_student(teacher.tokenizer, seed=0, layers=1, width=16, heads=2)
    student.save_pretrained(root / "student")
    teacher.tokenizer.save_pretrained(root / "student")
    queries = [t for t in teacher.texts["train"] if len(t.split()) >= 4][:16]
    return root, queries


def weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten().cpu() for p in model.parameters()])


def common_args(root, name):
    return dict(output_dir=str(root / name), max_steps=3, per_device_train_batch_size=2, learning_rate=1e-2,
                logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, seed=0,
                dataloader_num_workers=0)


def assert_three_steps_train(trainer, before) -> None:
    """Train: three logged losses, all finite, and the student's weights moved from `before`."""
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    assert not torch.equal(before, weights(trainer.model))


def test_gkd_trainer_runs_three_steps_on_the_kdlab_pair(hub_folders):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    root, queries = hub_folders
    tokenizer = AutoTokenizer.from_pretrained(root / "student")
    data = Dataset.from_list([{"messages": [{"role": "user", "content": " ".join(q.split()[:2])},
                                            {"role": "assistant", "content": " ".join(q.split()[2:])}]} for q in queries])
    student = AutoModelForCausalLM.from_pretrained(root / "student")
    before = weights(student)
    args = GKDConfig(**common_args(root, "gkd"), lmbda=0.5, beta=0.5, temperature=1.0, max_new_tokens=8, max_length=48)
    trainer = GKDTrainer(model=student, teacher_model=str(root / "teacher"), args=args, train_dataset=data,
                         processing_class=tokenizer)
    assert_three_steps_train(trainer, before)


@pytest.mark.skipif(not hasattr(trl, "DistillationTrainer"), reason="this TRL has no DistillationTrainer")
def test_distillation_trainer_runs_three_steps_on_the_kdlab_pair(hub_folders):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DistillationConfig, DistillationTrainer

    root, queries = hub_folders
    tokenizer = AutoTokenizer.from_pretrained(root / "student")
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": " ".join(q.split()[:2])}]} for q in queries])
    student = AutoModelForCausalLM.from_pretrained(root / "student")
    before = weights(student)
    args = DistillationConfig(**common_args(root, "distillation"), beta=1.0, temperature=1.0, max_completion_length=8)
    trainer = DistillationTrainer(model=student, teacher_model=str(root / "teacher"), args=args, train_dataset=data,
                                  processing_class=tokenizer)
    assert_three_steps_train(trainer, before)
