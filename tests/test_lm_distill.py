"""kdlab.lm_distill: the five arms' losses against hand-written ones, training, sampling and the metrics by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lm_tiny import tiny_lm_teacher

SMALL = dict(layers=1, width=16, heads=2)  # a student small enough for a test step in milliseconds


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return tiny_lm_teacher(tmp_path_factory.mktemp("lm-cache"))


def first_batch(teacher, seed, batch_size=8):
    from kdlab.lm_teacher import lm_batches

    return next(iter(lm_batches(teacher.tokenizer, teacher.texts["train"], batch_size, 1, seed)))


def padded_seed(teacher, batch_size=8):
    """A seed whose first batch has padding (batches group queries of similar length, so many have none)."""
    return next(seed for seed in range(100) if (first_batch(teacher, seed, batch_size)[1] == 0).any())


def hand_masked_kl(student_logits, teacher_logits, mask, reverse=False):
    """KL at every real next-token position, looped by hand, averaged over those positions."""
    total, count = 0.0, 0
    for b in range(mask.shape[0]):
        for i in range(mask.shape[1] - 1):
            if mask[b, i + 1]:  # position i predicts token i + 1; a padded target is skipped
                log_p_t = torch.log_softmax(teacher_logits[b, i].double(), -1)
                log_p_s = torch.log_softmax(student_logits[b, i].double(), -1)
                p, log_p, log_q = (log_p_s.exp(), log_p_s, log_p_t) if reverse else (log_p_t.exp(), log_p_t, log_p_s)
                total += float((p * (log_p - log_q)).sum())
                count += 1
    return total / count


@pytest.mark.parametrize("arm, reverse", [("forward_kl", False), ("reverse_kl", True)])
def test_a_token_arms_first_loss_is_the_hand_written_masked_kl(teacher, arm, reverse):
    from kdlab.lm_distill import lm_student, train_lm_arm

    seed = padded_seed(teacher)
    input_ids, mask = first_batch(teacher, seed)
    assert (mask == 0).any()  # the batch really has padding to mask
    fresh = lm_student(teacher.tokenizer, seed=seed, **SMALL)
    with torch.no_grad():
        expected = hand_masked_kl(fresh(input_ids=input_ids, attention_mask=mask).logits,
                                  teacher.model(input_ids=input_ids, attention_mask=mask).logits, mask, reverse)
    run = train_lm_arm(arm, teacher, steps=1, seed=seed, batch_size=8, **SMALL)
    assert run.history[0]["loss"] == pytest.approx(expected, rel=1e-4)


def test_temperature_divides_both_sides_of_the_token_loss(teacher):
    from kdlab.lm_distill import lm_student, token_loss

    input_ids, mask = first_batch(teacher, padded_seed(teacher))
    student = lm_student(teacher.tokenizer, seed=1, **SMALL)
    with torch.no_grad():
        expected = hand_masked_kl(student(input_ids=input_ids, attention_mask=mask).logits / 2,
                                  teacher.model(input_ids=input_ids, attention_mask=mask).logits / 2, mask)
        assert token_loss(student, teacher.model, input_ids, mask, beta=0.0, temperature=2.0).item() == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("arm", ["ce", "forward_kl", "reverse_kl"])
def test_one_training_step_lowers_the_loss_on_its_batch(teacher, arm):
    from kdlab.lm_distill import ce_loss, lm_student, token_loss, train_lm_arm

    input_ids, mask = first_batch(teacher, seed=2)
    loss = (lambda m: ce_loss(m, input_ids, mask)) if arm == "ce" else \
        (lambda m: token_loss(m, teacher.model, input_ids, mask, beta=1.0 if arm == "reverse_kl" else 0.0, temperature=1.0))
    with torch.no_grad():  # train_lm_arm turns gradients back on for itself
        before = loss(lm_student(teacher.tokenizer, seed=2, **SMALL)).item()
        run = train_lm_arm(arm, teacher, steps=1, seed=2, batch_size=8, lr=1e-2, **SMALL)
        after = loss(run.model).item()
    assert run.history[0]["loss"] == pytest.approx(before, rel=1e-4)
    assert after < before


def test_samples_are_the_same_for_a_seed_and_leave_the_callers_random_state_alone(teacher):
    from kdlab.lm_distill import sample_queries

    state = torch.random.get_rng_state()
    first = sample_queries(teacher.model, teacher.tokenizer, n=12, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    assert sample_queries(teacher.model, teacher.tokenizer, n=12, seed=3) == first
    assert sample_queries(teacher.model, teacher.tokenizer, n=12, seed=4) != first
    assert len(first) == 12 and all(isinstance(t, str) for t in first)
    assert all("<eos>" not in t and "<pad>" not in t for t in first)


def test_test_perplexity_is_exp_of_the_mean_nll_by_cross_entropy(teacher):
    from kdlab.lm_distill import lm_student, test_perplexity

    student = lm_student(teacher.tokenizer, seed=0, **SMALL)
    texts = [t for t in teacher.texts["test"] if len(t) < 100][:30]
    total, count = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([teacher.tokenizer(text)["input_ids"]])
            total += F.cross_entropy(student(input_ids=ids).logits[0, :-1], ids[0, 1:], reduction="sum").item()
            count += ids.shape[1] - 1
    assert test_perplexity(student, teacher.tokenizer, texts) == pytest.approx(math.exp(total / count), rel=1e-5)
    assert test_perplexity(student, teacher) == pytest.approx(test_perplexity(student, teacher.tokenizer, teacher.texts["test"]))
    with pytest.raises(ValueError, match="texts is needed"):
        test_perplexity(student, teacher.tokenizer)


def test_teacher_nll_of_samples_is_the_mean_token_nll_by_hand(teacher):
    from kdlab.lm_distill import teacher_nll_of_samples

    samples = ["I lost my card", "how do I top up", "exchange rate please?"]
    total, count = 0.0, 0
    with torch.no_grad():
        for text in samples:
            ids = torch.tensor([teacher.tokenizer(text)["input_ids"]])
            total += F.cross_entropy(teacher.model(input_ids=ids).logits[0, :-1], ids[0, 1:], reduction="sum").item()
            count += ids.shape[1] - 1
    assert teacher_nll_of_samples(teacher, samples) == pytest.approx(total / count, rel=1e-5)
    with pytest.raises(ValueError, match="non-empty list"):
        teacher_nll_of_samples(teacher, "I lost my card")


def test_distinct_n_by_hand():
    from kdlab.lm_distill import distinct_n

    assert distinct_n(["a b c", "a b d"], n=2) == pytest.approx(3 / 4)  # (a b) twice, (b c), (b d)
    assert distinct_n(["a b c", "a b d"], n=1) == pytest.approx(4 / 6)
    assert distinct_n(["same words", "same words"]) == pytest.approx(1 / 2)
    assert distinct_n(["one"], n=2) == 0.0


def test_next_token_distribution_is_the_softmax_of_the_last_position(teacher):
    from kdlab.lm_distill import next_token_distribution

    table = next_token_distribution(teacher.model, teacher.tokenizer, "I lost my", temperature=2.0, top=5)
    ids = [teacher.tokenizer.bos_token_id] + teacher.tokenizer("I lost my", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        probabilities = torch.softmax(teacher.model(input_ids=torch.tensor([ids])).logits[0, -1].double() / 2.0, -1)
    values, indices = probabilities.sort(descending=True)
    assert list(table.columns) == ["token", "probability"] and len(table) == 5
    assert table["probability"].tolist() == pytest.approx(values[:5].tolist())
    assert table["token"].tolist() == [teacher.tokenizer.decode([int(i)]) for i in indices[:5]]
    cooler = next_token_distribution(teacher.model, teacher.tokenizer, "I lost my", temperature=0.5, top=5)
    assert cooler["probability"].iloc[0] > table["probability"].iloc[0]  # a lower T sharpens the distribution


def test_the_on_policy_arm_warms_up_on_forward_kl_then_samples_with_probability_lmbda(teacher):
    from kdlab.lm_distill import train_lm_arm

    run = train_lm_arm("on_policy", teacher, steps=4, seed=0, batch_size=4, warmup_fraction=0.5, **SMALL)
    assert [h["on_policy"] for h in run.history] == [False, False, True, True]
    off = train_lm_arm("on_policy", teacher, steps=3, seed=0, batch_size=4, lmbda=0.0, **SMALL)
    assert not any(h["on_policy"] for h in off.history)
    assert all(math.isfinite(h["loss"]) for h in run.history + off.history)
    assert run.settings["beta"] == 1.0 and run.settings["lmbda"] == 1.0


def test_sequence_kd_trains_on_the_teachers_own_samples(teacher):
    from kdlab.lm_distill import teacher_samples, train_lm_arm

    run = train_lm_arm("sequence_kd", teacher, steps=2, seed=7, batch_size=4, **SMALL)
    samples = teacher_samples(teacher, 8, seed=7)
    assert samples == teacher_samples(teacher, 8, seed=7) and len(samples) == 8
    assert not set(samples) & set(teacher.texts["train"][:0])  # they are generated text, not the data rows
    assert len(run.history) == 2 and run.params > 0


def test_the_default_student_has_at_most_a_tenth_of_the_default_teachers_parameters(teacher):
    from kdlab.lm_distill import lm_student
    from kdlab.lm_teacher import LMSettings, lm_config, new_gpt2

    class Vocabulary1500:  # the default tokenizer's shape, without building it
        bos_token_id, eos_token_id, pad_token_id, model_max_length = 1, 2, 0, LMSettings().max_length

        def __len__(self):
            return LMSettings().vocab_size

    s = LMSettings()
    big = new_gpt2(lm_config(Vocabulary1500(), s.layers, s.width, s.heads, s.max_length))
    small = lm_student(Vocabulary1500())
    ratio = sum(p.numel() for p in small.parameters()) / sum(p.numel() for p in big.parameters())
    assert 0.05 < ratio <= 0.1, ratio


@pytest.mark.parametrize("kwargs, words", [
    (dict(arm="kd"), "unknown arm 'kd'; choose one of ce, forward_kl"),
    (dict(steps=0), "steps must be an integer ≥ 1"),
    (dict(beta=1.5), r"beta .* must be in \[0, 1\]"),
    (dict(arm="ce", beta=0.5), "arm 'ce' has no such loss"),
    (dict(arm="forward_kl", lmbda=0.5), "only applies to the 'on_policy' arm"),
    (dict(arm="on_policy", lmbda=2.0), r"lmbda must be a probability in \[0, 1\]"),
    (dict(temperature=0.0), "temperature must be > 0"),
    (dict(lr=0.0), "lr must be > 0"),
])
def test_bad_input_is_refused_before_training(teacher, kwargs, words, monkeypatch):
    import kdlab.lm_distill as lm_distill

    monkeypatch.setattr(lm_distill, "lm_student", lambda *a, **k: pytest.fail("training started"))
    settings = dict(arm="forward_kl", steps=3) | kwargs
    with pytest.raises(ValueError, match=words):
        lm_distill.train_lm_arm(settings.pop("arm"), teacher, **settings)
