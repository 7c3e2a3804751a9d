"""kdlab.generalized_jsd against TRL's own GKD loss (an independent implementation) and against numpy by hand."""

import math

import numpy as np
import pytest
import torch

from kdlab.losses import generalized_jsd

GKDTrainer = pytest.importorskip("trl.experimental.gkd").GKDTrainer


def make_logits(batch=3, length=5, vocab=7, seed=0, scale=2.0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    student = scale * torch.randn(batch, length, vocab, generator=generator, dtype=dtype)
    teacher = scale * torch.randn(batch, length, vocab, generator=generator, dtype=dtype)
    labels = torch.randint(vocab, (batch, length), generator=generator)
    labels[0, -2:] = -100  # padding at the end of one row, a dropped prompt position in another
    labels[-1, 0] = -100
    return student, teacher, labels


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_trl_generalized_jsd_loss(beta, temperature, masked, dtype):
    student, teacher, labels = make_logits(seed=int(10 * beta + temperature), dtype=dtype)
    labels = labels if masked else None
    ours = generalized_jsd(student, teacher, labels, beta=beta, temperature=temperature)
    trl = GKDTrainer.generalized_jsd_loss(student, teacher, labels, beta=beta, temperature=temperature)
    assert ours.item() > 0
    np.testing.assert_allclose(ours.item(), trl.item(), rtol=1e-5)


def numpy_kl(p, q):
    return float((p * (np.log(p) - np.log(q))).sum())


def numpy_softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_ends_are_forward_and_reverse_kl_by_hand(temperature):
    student, teacher, labels = make_logits(seed=3)
    kept = [(b, i) for b in range(labels.shape[0]) for i in range(labels.shape[1]) if labels[b, i] != -100]
    forward = reverse = 0.0
    for b, i in kept:
        p_s = numpy_softmax(student[b, i].numpy() / temperature)
        p_t = numpy_softmax(teacher[b, i].numpy() / temperature)
        forward += numpy_kl(p_t, p_s)
        reverse += numpy_kl(p_s, p_t)
    assert generalized_jsd(student, teacher, labels, beta=0.0, temperature=temperature).item() == pytest.approx(forward / len(kept), rel=1e-10)
    assert generalized_jsd(student, teacher, labels, beta=1.0, temperature=temperature).item() == pytest.approx(reverse / len(kept), rel=1e-10)
    # no labels: the sum over every position divided by the batch size (TRL's "batchmean")
    every = sum(numpy_kl(numpy_softmax(teacher[b, i].numpy() / temperature), numpy_softmax(student[b, i].numpy() / temperature))
                for b in range(3) for i in range(5))
    assert generalized_jsd(student, teacher, beta=0.0, temperature=temperature).item() == pytest.approx(every / 3, rel=1e-10)


def test_middle_is_the_mixture_jsd_by_hand():
    student, teacher, _ = make_logits(batch=1, length=3, seed=4)
    student, teacher = student[:, :1], teacher[:, :1]
    beta = 0.3
    p_s, p_t = numpy_softmax(student[0, 0].numpy()), numpy_softmax(teacher[0, 0].numpy())
    m = beta * p_t + (1 - beta) * p_s
    expected = beta * numpy_kl(p_t, m) + (1 - beta) * numpy_kl(p_s, m)
    assert generalized_jsd(student, teacher, beta=beta).item() == pytest.approx(expected, rel=1e-10)
    # the JSD tends to 0 (not to a KL) as beta → 0 or 1: the ends are defined separately
    assert generalized_jsd(student, teacher, beta=1e-6).item() < 1e-4 < generalized_jsd(student, teacher, beta=0.0).item()


def test_teacher_gets_no_gradient_and_student_does():
    student, teacher, labels = make_logits(seed=5)
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    generalized_jsd(student, teacher, labels, beta=0.5).backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert (student.grad[labels == -100] == 0).all()  # dropped positions get no gradient


def test_all_positions_dropped_gives_zero_not_nan():
    student, teacher, labels = make_logits(seed=6)
    assert generalized_jsd(student, teacher, torch.full_like(labels, -100)).item() == 0.0


def test_equal_distributions_give_zero():
    student, _, labels = make_logits(seed=7)
    for beta in (0.0, 0.5, 1.0):
        assert generalized_jsd(student, student.clone(), labels, beta=beta).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("beta, words", [(-0.1, "must be in [0, 1]"), (1.5, "must be in [0, 1]"), (float("nan"), "must be in [0, 1]"), ("0.5", "must be a number")])
def test_bad_beta_is_refused(beta, words):
    student, teacher, labels = make_logits()
    with pytest.raises(ValueError, match=r"beta.*" + words.replace("[", r"\[").replace("]", r"\]")):
        generalized_jsd(student, teacher, labels, beta=beta)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("inf")])
def test_bad_temperature_is_refused(temperature):
    student, teacher, labels = make_logits()
    with pytest.raises(ValueError, match="temperature must be"):
        generalized_jsd(student, teacher, labels, temperature=temperature)


def test_bad_shapes_are_refused():
    student, teacher, labels = make_logits()
    with pytest.raises(ValueError, match=r"must be 3-D \(batch, length, vocab\)"):
        generalized_jsd(student[0], teacher[0])
    with pytest.raises(ValueError, match="same tokenizer"):
        generalized_jsd(student, teacher[..., :-1])
    with pytest.raises(ValueError, match=r"labels must be an integer tensor of shape \(3, 5\)"):
        generalized_jsd(student, teacher, labels[:, :-1])
    with pytest.raises(TypeError, match="torch.Tensor"):
        generalized_jsd(student, teacher, labels.tolist())
    with pytest.raises(TypeError, match="floating-point"):
        generalized_jsd(labels[..., None].expand(3, 5, 7), teacher)
