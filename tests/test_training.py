"""The training loop on a small synthetic teacher cache: learning, what λ = 1 ignores, alignment, masks, seeds.

The cache is built here: a few hundred rows of random token ids in which the label is decided by which
"signal" tokens appear, and "teacher" logits that are a noisy function of the label. Small enough that
every test trains in about a second on a CPU.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from kdlab import History, TeacherCache, Tokens, train_student
from kdlab.students import BagStudent

CLASSES, VOCAB, WIDTH = 4, 60, 10
SIGNAL = {c: list(range(10 + 5 * c, 15 + 5 * c)) for c in range(CLASSES)}  # tokens 10..29 name the class
FILLER = list(range(30, VOCAB))  # tokens that say nothing about the class


def make_split(rows: int, generator: torch.Generator, noise: float = 1.0):
    """Token ids, mask, labels and noisy teacher logits for `rows` synthetic queries."""
    labels = torch.randint(CLASSES, (rows,), generator=generator)
    input_ids = torch.zeros(rows, WIDTH, dtype=torch.long)
    mask = torch.zeros(rows, WIDTH, dtype=torch.long)
    for r in range(rows):
        length = int(torch.randint(4, WIDTH + 1, (1,), generator=generator))
        signal = torch.tensor(SIGNAL[int(labels[r])])[torch.randperm(5, generator=generator)[:2]]
        filler = torch.tensor(FILLER)[torch.randint(len(FILLER), (length - 2,), generator=generator)]
        tokens = torch.cat([signal, filler])[torch.randperm(length, generator=generator)]
        input_ids[r, :length], mask[r, :length] = tokens, 1
    teacher = 4.0 * torch.nn.functional.one_hot(labels, CLASSES).float() + noise * torch.randn(rows, CLASSES, generator=generator)
    return Tokens(input_ids, mask), labels, teacher


def make_cache(seed: int = 0, rows: dict[str, int] | None = None) -> TeacherCache:
    """A TeacherCache with train/dev/test splits, ids 0..n-1 in row order, like a freshly built one."""
    generator = torch.Generator().manual_seed(seed)
    rows = rows or {"train": 320, "dev": 120, "test": 120}
    out = {"logits": {}, "features": {}, "ids": {}, "labels": {}, "tokens": {}}
    for split, n in rows.items():
        tokens, labels, teacher = make_split(n, generator)
        out["tokens"][split], out["labels"][split], out["logits"][split] = tokens, labels, teacher
        out["ids"][split] = torch.arange(n)
        out["features"][split] = torch.zeros(n, 1)
    return TeacherCache(key="synthetic", path=Path("synthetic.safetensors"),
                        label_names=[f"intent_{c}" for c in range(CLASSES)], **out)


def make_student(seed: int = 0) -> BagStudent:
    torch.manual_seed(seed)
    return BagStudent(VOCAB, CLASSES, dim=16, hidden=32, pad_id=0)


def train(cache: TeacherCache, **options) -> tuple[BagStudent, History]:
    settings = dict(temperature=2.0, lam=0.5, epochs=6, batch_size=32, lr=1e-2, seed=0, device="cpu", progress=False)
    settings.update(options)
    student = make_student()
    history = train_student(student, cache, **settings)
    return student, history


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def without_seconds(history: History) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history.epochs]


@pytest.fixture(scope="module")
def cache() -> TeacherCache:
    return make_cache()


def test_kd_student_learns_well_above_chance(cache):
    _, history = train(cache, lam=0.5, epochs=8)
    assert history.column("epoch") == list(range(1, 9))
    assert history.column("dev_accuracy")[-1] > 0.85  # chance is 1/4
    assert history.column("kd")[-1] < history.column("kd")[0]  # it moved towards the teacher
    for row in history.epochs:  # the logged loss is the λ-weighted sum of the logged parts
        assert row["loss"] == pytest.approx(0.5 * row["ce"] + 0.5 * row["kd"], rel=1e-5)


def test_pure_distillation_learns_without_any_label(cache):
    _, history = train(cache, lam=0.0, labelled=torch.zeros(len(cache.ids["train"]), dtype=torch.bool), epochs=8)
    assert history.column("dev_accuracy")[-1] > 0.85


def test_ce_only_never_learns_from_teacher_logits(cache):
    garbage = dataclasses.replace(cache, logits={
        split: 50.0 * torch.randn(values.shape, generator=torch.Generator().manual_seed(1)) for split, values in cache.logits.items()
    })
    student, history = train(cache, lam=1.0)
    student_garbage, history_garbage = train(garbage, lam=1.0)
    assert same_weights(student, student_garbage)
    assert history.column("ce") == history_garbage.column("ce")
    assert history.column("dev_accuracy") == history_garbage.column("dev_accuracy")
    # ...while with λ < 1 the same garbage changes the result: the test can tell the difference.
    assert not same_weights(train(cache, lam=0.5)[0], train(garbage, lam=0.5)[0])


def test_shuffled_cache_rows_cannot_misalign_teacher_logits(cache):
    permutation = torch.randperm(len(cache.ids["train"]), generator=torch.Generator().manual_seed(3))
    train_rows = lambda values: {**values, "train": values["train"][permutation]}
    shuffled = dataclasses.replace(
        cache, logits=train_rows(cache.logits), ids=train_rows(cache.ids), labels=train_rows(cache.labels),
        features=train_rows(cache.features),
        tokens={**cache.tokens, "train": Tokens(cache.tokens["train"].input_ids[permutation],
                                                cache.tokens["train"].attention_mask[permutation])},
    )
    # Row k of the original is row inverse[k] of the shuffled cache: feed the same examples in the same order.
    inverse = torch.argsort(permutation)
    student, history = train(cache)
    student_shuffled, history_shuffled = train(shuffled, rows=inverse)
    assert same_weights(student, student_shuffled)
    assert without_seconds(history) == without_seconds(history_shuffled)
    # Control: logits shuffled *without* their ids are misaligned, and that does change training.
    misaligned = dataclasses.replace(cache, logits=train_rows(cache.logits))
    assert not same_weights(student, train(misaligned)[0])


def test_unlabelled_rows_get_no_cross_entropy(cache):
    n = len(cache.ids["train"])
    labelled = torch.arange(n) % 3 == 0
    wrong = (cache.labels["train"] + 1) % CLASSES
    corrupted = dataclasses.replace(cache, labels={**cache.labels, "train": torch.where(labelled, cache.labels["train"], wrong)})
    student, history = train(cache, labelled=labelled)
    student_corrupted, history_corrupted = train(corrupted, labelled=labelled)
    assert same_weights(student, student_corrupted)  # labels of unlabelled rows are never read
    assert without_seconds(history) == without_seconds(history_corrupted)
    # Using those same corrupted labels as if they were labelled does change the result.
    assert not same_weights(student, train(corrupted)[0])


def test_ce_only_trains_on_the_labelled_rows_alone(cache):
    n = len(cache.ids["train"])
    labelled = torch.arange(n) % 2 == 0
    student_masked, _ = train(cache, lam=1.0, labelled=labelled)
    student_subset, _ = train(cache, lam=1.0, rows=torch.nonzero(labelled).flatten())
    assert same_weights(student_masked, student_subset)


def test_same_seed_same_history_and_weights(cache):
    student_a, history_a = train(cache, epochs=3)
    student_b, history_b = train(cache, epochs=3)
    assert without_seconds(history_a) == without_seconds(history_b)
    assert same_weights(student_a, student_b)
    _, history_c = train(cache, epochs=3, seed=1)
    assert without_seconds(history_c) != without_seconds(history_a)


def test_on_epoch_end_sees_the_growing_history(cache):
    seen = []
    train(cache, epochs=3, on_epoch_end=lambda history: seen.append(len(history.epochs)))
    assert seen == [1, 2, 3]


@pytest.mark.parametrize("options, argument", [
    ({"lam": -0.1}, "lam"), ({"lam": 1.5}, "lam"), ({"lam": float("nan")}, "lam"),
    ({"epochs": 0}, "epochs"), ({"epochs": 2.5}, "epochs"),
    ({"labelled": torch.ones(5, dtype=torch.bool)}, "labelled"),
])
def test_bad_input_raises_value_error_naming_the_argument(cache, options, argument):
    with pytest.raises(ValueError, match=argument):
        train(cache, **options)


def test_no_labelled_rows_needs_pure_distillation(cache):
    nothing = torch.zeros(len(cache.ids["train"]), dtype=torch.bool)
    with pytest.raises(ValueError, match="labelled"):
        train(cache, lam=0.5, labelled=nothing)


def test_a_retrain_is_bit_identical_whatever_ran_before_and_leaves_the_callers_random_stream_alone(cache):
    settings = dict(temperature=2.0, lam=0.5, epochs=2, batch_size=32, lr=1e-2, seed=0, device="cpu", progress=False)
    student_a, student_b = make_student(), make_student()
    history_a = train_student(student_a, cache, **settings)
    torch.manual_seed(1234)
    torch.rand(1000)  # a cell that drew random numbers in between must not change the retrain
    before = torch.random.get_rng_state()
    history_b = train_student(student_b, cache, **settings)
    assert torch.equal(torch.random.get_rng_state(), before)  # training did not consume the caller's stream
    assert same_weights(student_a, student_b) and without_seconds(history_a) == without_seconds(history_b)


def test_one_sgd_step_of_the_loop_is_minus_lr_times_the_gradient_of_the_partly_labelled_loss(cache, monkeypatch):
    # The loop must train on exactly the contract's loss: one full-batch SGD step at lr 1 moves every weight by
    # −∇L, where L is the row rule (λ·CE_i + (1−λ)·KD_i labelled, KD_i unlabelled, mean over rows) written by hand.
    from kdlab import training

    monkeypatch.setattr(training, "make_optimizer", lambda model, lr, weight_decay, device: torch.optim.SGD(model.parameters(), lr=lr))
    n = len(cache.ids["train"])
    labelled = torch.arange(n) % 4 == 0
    start = make_student()
    start.eval()  # no dropout in the reference; the loop's dropout is switched off below
    for module in start.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    student = __import__("copy").deepcopy(start)
    train_student(student, cache, temperature=2.0, lam=0.3, epochs=1, batch_size=n, lr=1.0, lr_decay=False,
                  labelled=labelled, device="cpu", progress=False)
    tokens = cache.tokens["train"].select(torch.arange(n))
    logits = start(tokens.input_ids, tokens.attention_mask)
    teacher = cache.logits_for("train", cache.ids["train"])
    log_p_t, log_p_s = torch.log_softmax(teacher / 2.0, 1), torch.log_softmax(logits / 2.0, 1)
    kd = 4.0 * (log_p_t.exp() * (log_p_t - log_p_s)).sum(1)
    ce = torch.nn.functional.cross_entropy(logits, cache.labels["train"], reduction="none")
    loss = torch.where(labelled, 0.3 * ce + 0.7 * kd, kd).mean()
    loss.backward()
    for (name, after), before in zip(student.named_parameters(), start.parameters()):
        torch.testing.assert_close(after.detach() - before.detach(), -before.grad, rtol=1e-3, atol=1e-6, msg=name)
