"""train_student's remedies and extras: early stopping, token dropout, the cosine hidden loss, train accuracy,
the fused optimiser, and looking up teacher features by id — each against a computation written out here."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel

import kdlab.training as training
from kdlab import TeacherCache, Tokens, train_student
from kdlab.students import BagStudent, EncoderStudent
from kdlab.training import drop_tokens, evaluate, make_optimizer

CLASSES, VOCAB, WIDTH, FEATURES = 3, 40, 8, 16


def make_cache(seed: int = 0, rows: dict[str, int] | None = None, features: int = FEATURES) -> TeacherCache:
    """Random queries whose label is told by one of tokens 5..7, noisy teacher logits, random teacher features."""
    generator = torch.Generator().manual_seed(seed)
    out = {"logits": {}, "features": {}, "ids": {}, "labels": {}, "tokens": {}}
    for split, n in (rows or {"train": 96, "dev": 48, "test": 48}).items():
        labels = torch.randint(CLASSES, (n,), generator=generator)
        lengths = torch.randint(3, WIDTH + 1, (n,), generator=generator)
        input_ids = torch.randint(8, VOCAB, (n, WIDTH), generator=generator)
        input_ids[:, 0] = 1  # [CLS]
        input_ids[:, 1] = 5 + labels
        mask = (torch.arange(WIDTH) < lengths[:, None]).long()
        input_ids = input_ids * mask
        out["tokens"][split] = Tokens(input_ids, mask)
        out["labels"][split] = labels
        out["logits"][split] = 3.0 * F.one_hot(labels, CLASSES).float() + torch.randn(n, CLASSES, generator=generator)
        out["features"][split] = torch.randn(n, features, generator=generator)
        out["ids"][split] = torch.arange(n)
    return TeacherCache(key="synthetic", path=Path("synthetic.safetensors"),
                        label_names=[f"intent_{c}" for c in range(CLASSES)], **out)


@pytest.fixture(scope="module")
def cache() -> TeacherCache:
    return make_cache()


def bag_student(dropout: float = 0.1, seed: int = 0) -> BagStudent:
    torch.manual_seed(seed)
    return BagStudent(VOCAB, CLASSES, dim=8, hidden=16, dropout=dropout)


def encoder_student(hidden: int = FEATURES, seed: int = 0) -> EncoderStudent:
    """A one-layer BERT student with every dropout off, so a train-mode forward pass is reproducible."""
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=WIDTH,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return EncoderStudent(BertModel(config, add_pooling_layer=False), CLASSES, dropout=0.0)


def run(student, cache, **options):
    settings = dict(temperature=2.0, lam=0.5, epochs=1, batch_size=32, lr=1e-2, device="cpu", progress=False)
    return train_student(student, cache, **{**settings, **options})


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --- early stopping -------------------------------------------------------------------------------------------

def test_early_stopping_keeps_the_best_epoch_and_stops_after_patience(cache, monkeypatch):
    # Script the dev accuracies so the stopping rule is checked exactly: best at epoch 2, then three epochs
    # without a *strictly* better one (0.7 again does not count) → stop after epoch 5 and restore epoch 2.
    scripted = iter([0.5, 0.7, 0.6, 0.7, 0.65, 0.9, 0.95])
    real_evaluate = training.evaluate
    monkeypatch.setattr(training, "evaluate", lambda *a, **k: training.Evaluation(next(scripted), real_evaluate(*a, **k).logits))
    snapshots = []
    student = bag_student()
    history = run(student, cache, epochs=7, early_stopping=3, on_epoch_end=lambda h: snapshots.append(weights(student)))
    assert history.column("dev_accuracy") == [0.5, 0.7, 0.6, 0.7, 0.65]
    assert history.best_epoch == 2
    restored = weights(student)
    assert all(torch.equal(restored[k], snapshots[1][k]) for k in restored)
    assert not all(torch.equal(restored[k], snapshots[-1][k]) for k in restored)  # it did train on after epoch 2


def test_early_stopping_on_a_real_plateau(cache):
    # lr so high that dev accuracy jumps around instead of climbing: the patience runs out well before 40 epochs.
    snapshots = []
    student = bag_student()
    history = run(student, cache, epochs=40, lr=1.0, lr_decay=False, early_stopping=2,
                  on_epoch_end=lambda h: snapshots.append(weights(student)))
    accuracies = history.column("dev_accuracy")
    best = max(accuracies)
    assert len(accuracies) < 40
    assert history.best_epoch == accuracies.index(best) + 1  # the first epoch that reached the best
    assert len(accuracies) - history.best_epoch == 2  # exactly `patience` epochs without improvement, then stop
    assert evaluate(student, cache.tokens["dev"], cache.labels["dev"]).accuracy == best == history.final_dev_accuracy
    restored = weights(student)
    assert all(torch.equal(restored[k], snapshots[history.best_epoch - 1][k]) for k in restored)


def test_without_early_stopping_the_last_epoch_is_kept(cache):
    student = bag_student()
    history = run(student, cache, epochs=3)
    assert history.best_epoch is None and len(history.epochs) == 3
    assert evaluate(student, cache.tokens["dev"], cache.labels["dev"]).accuracy == history.column("dev_accuracy")[-1]
    assert history.final_dev_accuracy == history.column("dev_accuracy")[-1]


@pytest.mark.parametrize("patience", [0, -1, 1.5])
def test_early_stopping_patience_must_be_a_positive_integer(cache, patience):
    with pytest.raises(ValueError, match="early_stopping"):
        run(bag_student(), cache, early_stopping=patience)


# --- token dropout --------------------------------------------------------------------------------------------

def padded_batch(rows: int = 3000, width: int = 12, seed: int = 0) -> Tokens:
    """Rows of 1..width real tokens ([CLS] first) followed by padding."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (rows,), generator=generator)
    mask = (torch.arange(width) < lengths[:, None]).long()
    return Tokens(torch.randint(1, 100, (rows, width), generator=generator) * mask, mask)


def test_drop_tokens_keeps_cls_and_padding_and_one_real_token():
    batch = padded_batch()
    dropped = drop_tokens(batch, 0.3, torch.Generator().manual_seed(1))
    assert torch.equal(dropped.input_ids, batch.input_ids)  # only the mask changes
    assert torch.equal(dropped.attention_mask[:, 0], batch.attention_mask[:, 0])  # [CLS] always stays
    assert ((dropped.attention_mask == 0) | (batch.attention_mask == 1)).all()  # padding stays padding
    assert set(dropped.attention_mask.unique().tolist()) <= {0, 1}
    lengths, kept = batch.attention_mask.sum(1), dropped.attention_mask.sum(1)
    assert (kept[lengths >= 2] >= 2).all()  # never only [CLS] left when there was more
    assert torch.equal(kept[lengths == 1], lengths[lengths == 1])


def test_drop_tokens_hides_about_p_of_the_word_pieces():
    p = 0.3
    batch = padded_batch()
    dropped = drop_tokens(batch, p, torch.Generator().manual_seed(2))
    words = batch.attention_mask.sum(1) - 1  # real tokens after [CLS]
    hidden = float((batch.attention_mask - dropped.attention_mask).sum())
    # Each word piece is hidden with probability p, except that a row that lost all of them gets one back:
    # expected hidden per row = (L−1)·p − p^(L−1).
    expected = float((words * p - torch.where(words > 0, p ** words.double(), 0.0)).sum())
    assert hidden / float(words.sum()) == pytest.approx(expected / float(words.sum()), abs=0.015)
    assert expected / float(words.sum()) < p  # the correction matters, so this is not the same check as ≈ p


def test_drop_tokens_gives_the_first_word_piece_back_to_rows_it_emptied():
    batch = padded_batch(rows=500)
    dropped = drop_tokens(batch, 0.999, torch.Generator().manual_seed(3))
    has_words = batch.attention_mask.sum(1) >= 2
    expected = batch.attention_mask.clone()
    expected[:, 2:] = 0  # at p ≈ 1 everything but [CLS] and the restored first word piece goes
    assert (dropped.attention_mask[has_words] == expected[has_words]).float().mean() > 0.99
    # the rare row that kept another word piece by chance (p is not quite 1) is not given column 1 back
    assert (dropped.attention_mask[has_words].sum(1) >= 2).all()


def test_drop_tokens_is_deterministic_given_the_generator_and_a_no_op_at_zero():
    batch = padded_batch(rows=200)
    first = drop_tokens(batch, 0.3, torch.Generator().manual_seed(7))
    again = drop_tokens(batch, 0.3, torch.Generator().manual_seed(7))
    other = drop_tokens(batch, 0.3, torch.Generator().manual_seed(8))
    assert torch.equal(first.attention_mask, again.attention_mask)
    assert not torch.equal(first.attention_mask, other.attention_mask)
    assert torch.equal(drop_tokens(batch, 0.0, torch.Generator()).attention_mask, batch.attention_mask)


def test_token_dropout_changes_training_and_is_validated(cache):
    plain, augmented = bag_student(), bag_student()
    run(plain, cache, epochs=2)
    run(augmented, cache, epochs=2, token_dropout=0.3)
    assert not all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), augmented.state_dict().values()))
    again = bag_student()
    run(again, cache, epochs=2, token_dropout=0.3)
    assert all(torch.equal(a, b) for a, b in zip(augmented.state_dict().values(), again.state_dict().values()))
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="token_dropout"):
            run(bag_student(), cache, token_dropout=bad)


# --- hidden-state (cosine) loss --------------------------------------------------------------------------------

def reference_losses(student: EncoderStudent, cache: TeacherCache, temperature: float, lam: float):
    """Loss parts on the whole train split, written out from the formulas (one batch = all rows)."""
    tokens, labels = cache.tokens["train"], cache.labels["train"]
    hidden_states = student.encoder(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
    mask = tokens.attention_mask[..., None].float()
    pooled = (hidden_states * mask).sum(1) / mask.sum(1)
    target = cache.features["train"]
    cosine = (pooled * target).sum(1) / (pooled.norm(dim=1) * target.norm(dim=1))
    hidden = (1 - cosine).mean()
    logits = student.head(pooled)
    ce = -logits.log_softmax(1).gather(1, labels[:, None]).mean()
    p_teacher = (cache.logits["train"] / temperature).softmax(1)
    kd = temperature ** 2 * (p_teacher * (p_teacher.log() - (logits / temperature).log_softmax(1))).sum(1).mean()
    return ce, kd, hidden


def test_hidden_loss_adds_w_times_mean_one_minus_cosine(cache):
    student = encoder_student()
    reference = copy.deepcopy(student)
    history = run(student, cache, lr=1e-30, batch_size=len(cache.ids["train"]), hidden_weight=0.7, lam=0.3)
    row = history.epochs[0]
    with torch.no_grad():
        ce, kd, hidden = reference_losses(reference, cache, temperature=2.0, lam=0.3)
    assert row["hidden"] == pytest.approx(float(hidden), rel=1e-4)
    assert row["ce"] == pytest.approx(float(ce), rel=1e-4) and row["kd"] == pytest.approx(float(kd), rel=1e-4)
    assert row["loss"] == pytest.approx(float(0.3 * ce + 0.7 * kd + 0.7 * hidden), rel=1e-4)
    assert float(hidden) > 0.5  # random features: the term is far from 0, so the check has teeth


def test_hidden_loss_reaches_the_gradient(cache, monkeypatch):
    # Plain SGD at lr 1: one full-batch step moves the weights by −gradient. The move with w > 0 minus the move
    # with w = 0 must be −w·∇ mean(1 − cos), which autograd gives us from the formula above.
    monkeypatch.setattr(training, "make_optimizer", lambda model, lr, weight_decay, device: torch.optim.SGD(model.parameters(), lr=lr))
    start, w = encoder_student(), 0.5
    moved = {}
    for weight in (0.0, w):
        student = copy.deepcopy(start)
        run(student, cache, lr=1.0, batch_size=len(cache.ids["train"]), hidden_weight=weight)
        moved[weight] = {name: p.detach() - q.detach() for (name, p), q in zip(student.named_parameters(), start.parameters())}
    reference = copy.deepcopy(start)
    reference.train()
    _, _, hidden = reference_losses(reference, cache, temperature=2.0, lam=0.5)
    hidden.backward()
    checked = 0
    for name, parameter in reference.named_parameters():
        gradient = parameter.grad if parameter.grad is not None else torch.zeros_like(parameter)
        torch.testing.assert_close(moved[w][name] - moved[0.0][name], -w * gradient, atol=2e-5, rtol=1e-3)
        checked += int(gradient.abs().max() > 1e-4)
    assert checked > 5  # the encoder's weights really were pulled towards the teacher's sentence vectors


def test_hidden_loss_refuses_a_student_without_a_sentence_vector_and_a_negative_weight(cache):
    class Plain(nn.Module):  # logits only: nothing to compare with the teacher's vectors
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(1, CLASSES)

        def forward(self, input_ids, attention_mask):
            return self.linear(attention_mask.float().sum(1, keepdim=True))

    with pytest.raises(ValueError, match="feature_dim"):
        run(Plain(), cache, hidden_weight=1.0)
    with pytest.raises(ValueError, match="hidden_weight"):
        run(encoder_student(), cache, hidden_weight=-0.5)
    run(encoder_student(hidden=8), cache, hidden_weight=0.0)  # width does not matter when the loss is off


def test_a_narrower_student_gets_a_projection_and_the_step_matches_a_hand_cosine(cache):
    from kdlab.training import distillation_step, feature_projection

    student = bag_student(dropout=0.0)  # 8-d sentence vectors against the teacher's FEATURES-d
    assert feature_projection(encoder_student(), cache) is None  # same width: nothing to learn
    torch.manual_seed(3)
    projection = feature_projection(student, cache)
    assert (projection.in_features, projection.out_features) == (8, FEATURES)
    batch = cache.tokens["train"].select(torch.arange(6))
    teacher_logits, teacher_features = cache.logits["train"][:6], cache.features["train"][:6]
    labels = cache.labels["train"][:6]
    step = distillation_step(student, batch.input_ids, batch.attention_mask, teacher_logits, labels, temperature=2.0,
                             lam=0.5, hidden_weight=0.7, teacher_features=teacher_features, projection=projection)
    plain = distillation_step(student, batch.input_ids, batch.attention_mask, teacher_logits, labels, temperature=2.0, lam=0.5)
    # by hand, in numpy: mean over rows of 1 − cos(P·f, t)
    _, vectors = student(batch.input_ids, batch.attention_mask, return_features=True)
    mapped = (vectors @ projection.weight.T + projection.bias).detach().numpy()
    t = teacher_features.numpy()
    cosine = (mapped * t).sum(1) / (np.linalg.norm(mapped, axis=1) * np.linalg.norm(t, axis=1))
    assert step.hidden.item() == pytest.approx(float(np.mean(1 - cosine)), rel=1e-5)
    assert step.loss.item() == pytest.approx(plain.loss.item() + 0.7 * float(np.mean(1 - cosine)), rel=1e-5)
    with pytest.raises(ValueError, match="pass a projection"):
        distillation_step(student, batch.input_ids, batch.attention_mask, teacher_logits, labels, temperature=2.0,
                          lam=0.5, hidden_weight=0.7, teacher_features=teacher_features)


def test_training_a_bag_student_with_the_feature_loss_lowers_it(cache):
    history = run(bag_student(dropout=0.0), cache, hidden_weight=1.0, epochs=8, lr=3e-2)
    hidden = history.column("hidden")
    assert all(math.isfinite(h) for h in hidden) and hidden[-1] < hidden[0] - 0.05  # the projected vectors turned towards the teacher's


# --- train accuracy, scored like dev ------------------------------------------------------------------------

def test_train_accuracy_is_scored_in_eval_mode_after_each_epoch_on_the_labelled_rows(cache):
    # Dropout 0.5 makes a train-mode (dropout-on) accuracy differ from the eval-mode one; the history must hold
    # the eval-mode accuracy of the epoch's final weights on the labelled rows, as an independent evaluate() sees it.
    labelled = torch.arange(len(cache.labels["train"])) % 3 != 0
    student = bag_student(dropout=0.5)
    seen = []

    def score(history):
        copy_ = copy.deepcopy(student).eval()  # the epoch's final weights, dropout off
        with torch.no_grad():
            logits = copy_(cache.tokens["train"].input_ids, cache.tokens["train"].attention_mask)
        seen.append(float((logits.argmax(1) == cache.labels["train"])[labelled].float().mean()))

    history = run(student, cache, epochs=4, lr=3e-2, labelled=labelled, on_epoch_end=score)
    assert history.column("train_accuracy") == pytest.approx(seen, abs=1e-6)
    assert len(set(seen)) > 1  # the student learns, so the check compares changing numbers


def test_train_accuracy_counts_only_labelled_rows(cache):
    # lr = 1e-30 (Adam then moves float32 weights by ~1e-30: not at all): label exactly the rows the starting
    # weights get right and the train accuracy is 1; label the others and it is 0.
    student = bag_student(dropout=0.3)
    right = evaluate(student, cache.tokens["train"], cache.labels["train"]).logits.argmax(1) == cache.labels["train"]
    assert 0 < right.float().mean() < 1
    assert run(copy.deepcopy(student), cache, lr=1e-30, labelled=right).epochs[0]["train_accuracy"] == 1.0
    assert run(copy.deepcopy(student), cache, lr=1e-30, labelled=~right).epochs[0]["train_accuracy"] == 0.0
    # with no label at all (pure distillation) there is no train accuracy to report, rather than a made-up 0
    nobody = torch.zeros(len(right), dtype=torch.bool)
    assert math.isnan(run(copy.deepcopy(student), cache, lam=0.0, labelled=nobody).epochs[0]["train_accuracy"])


def test_train_score_rows_are_a_fixed_labelled_subset_whatever_the_seed():
    rows = torch.arange(5000, 8000)
    picked = training.train_score_rows(rows)
    assert len(picked) == training.TRAIN_SCORE_ROWS == 1000
    assert len(set(picked.tolist())) == 1000 and set(picked.tolist()) <= set(rows.tolist())
    torch.manual_seed(123)  # the training seed must not move the subset
    assert torch.equal(training.train_score_rows(rows), picked)
    assert picked.min() < 5300 and picked.max() > 7700  # spread over all rows, not the first thousand
    small = torch.tensor([4, 9, 2])
    assert torch.equal(training.train_score_rows(small), small)  # 1,000 or fewer: all are scored


def test_train_accuracy_rises_as_the_student_learns(cache):
    history = run(bag_student(), cache, epochs=6, lr=3e-2)
    accuracy = history.column("train_accuracy")
    assert all(0.0 <= a <= 1.0 for a in accuracy)
    assert accuracy[-1] > accuracy[0]


# --- fused optimiser ------------------------------------------------------------------------------------------

def test_fused_adamw_first_step_matches_the_adamw_formula_and_plain_adamw():
    lr, weight_decay = 1e-2, 0.1
    fused_model = bag_student()
    plain_model, start = copy.deepcopy(fused_model), copy.deepcopy(fused_model)
    fused = make_optimizer(fused_model, lr, weight_decay, torch.device("cpu"))
    plain = torch.optim.AdamW(plain_model.parameters(), lr=lr, weight_decay=weight_decay, foreach=False, fused=False)
    assert fused.param_groups[0]["fused"] is True
    generator = torch.Generator().manual_seed(0)
    gradients = [torch.randn(p.shape, generator=generator) for p in fused_model.parameters()]
    for model, optimizer in ((fused_model, fused), (plain_model, plain)):
        for parameter, gradient in zip(model.parameters(), gradients):
            parameter.grad = gradient.clone()
        optimizer.step()
    for p_fused, p_plain, p0, g in zip(fused_model.parameters(), plain_model.parameters(), start.parameters(), gradients):
        torch.testing.assert_close(p_fused, p_plain)
        # AdamW's first step, bias-corrected: m̂ = g, v̂ = g², so p ← p·(1 − lr·wd) − lr·g / (|g| + ε)
        torch.testing.assert_close(p_fused.detach(), p0.detach() * (1 - lr * weight_decay) - lr * g / (g.abs() + 1e-8))


def test_non_float32_weights_fall_back_to_the_unfused_optimiser():
    model = bag_student().double()
    assert not make_optimizer(model, 1e-3, 0.0, torch.device("cpu")).param_groups[0]["fused"]


# --- teacher features by id -----------------------------------------------------------------------------------

def test_features_for_follows_the_ids_whatever_their_order():
    cache = make_cache(rows={"train": 20, "dev": 6, "test": 6})
    generator = torch.Generator().manual_seed(4)
    stored_ids = torch.randperm(40, generator=generator)[:20]  # 20 of the ids 0..39, shuffled, with gaps
    cache.ids["train"] = stored_ids
    asked = stored_ids[torch.randperm(20, generator=generator)[:12]]
    row_of = {int(i): row for row, i in enumerate(stored_ids)}
    expected = torch.stack([cache.features["train"][row_of[int(i)]] for i in asked])
    assert torch.equal(cache.features_for("train", asked), expected)
    assert torch.equal(cache.logits_for("train", asked), torch.stack([cache.logits["train"][row_of[int(i)]] for i in asked]))
    missing = next(i for i in range(40) if i not in row_of)
    for unknown in ([missing], [int(stored_ids.max()) + 1], [-1], [int(asked[0]), missing]):
        with pytest.raises(ValueError, match="not in the teacher cache"):
            cache.features_for("train", torch.tensor(unknown))
