"""kdlab.losses against independent computations: numpy, hand algebra, finite differences, theory."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdlab.losses import KDTerms, distillation_loss, distillation_terms, soft_targets


def make_batch(batch=6, classes=5, seed=0, scale=2.0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    student = scale * torch.randn(batch, classes, generator=generator, dtype=dtype)
    teacher = scale * torch.randn(batch, classes, generator=generator, dtype=dtype)
    labels = torch.randint(classes, (batch,), generator=generator)
    return student, teacher, labels


def assert_close(actual, expected, rtol=1e-7, atol=1e-12):
    # torch.testing.assert_close costs a second of lazy imports on its first call; this keeps the suite fast.
    assert torch.allclose(actual, expected, rtol=rtol, atol=atol), f"max |diff| {(actual - expected).abs().max()}"


# --- an independent float64 numpy reference of the whole loss ---


def np_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_distillation_loss(student, teacher, labels, temperature, lam):
    log_p_s = np_log_softmax(student / temperature)
    log_p_t = np_log_softmax(teacher / temperature)
    kl_per_example = (np.exp(log_p_t) * (log_p_t - log_p_s)).sum(axis=1)
    kd = temperature**2 * kl_per_example.mean()
    if labels is None:
        return kd
    ce = -np_log_softmax(student)[np.arange(len(labels)), labels].mean()
    return lam * ce + (1 - lam) * kd


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 4.0, 20.0])
@pytest.mark.parametrize("lam", [0.0, 0.3, 0.5, 1.0])
def test_matches_numpy_reference(temperature, lam):
    student, teacher, labels = make_batch(seed=int(temperature * 10))
    expected = np_distillation_loss(student.numpy(), teacher.numpy(), labels.numpy(), temperature, lam)
    actual = distillation_loss(student, teacher, labels, temperature=temperature, lam=lam)
    assert actual.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_unlabeled_batch_matches_numpy_reference(temperature):
    student, teacher, _ = make_batch(seed=3)
    expected = np_distillation_loss(student.numpy(), teacher.numpy(), None, temperature, lam=0.5)
    assert distillation_loss(student, teacher, None, temperature=temperature).item() == pytest.approx(expected)


def test_kl_equals_soft_cross_entropy_minus_teacher_entropy_and_f_kl_div():
    student, teacher, labels = make_batch(seed=1)
    T = 3.0
    p_t = torch.softmax(teacher / T, dim=1)
    log_p_s = torch.log_softmax(student / T, dim=1)
    soft_cross_entropy = -(p_t * log_p_s).sum(1).mean()
    teacher_entropy = -(p_t * torch.log(p_t)).sum(1).mean()
    kd = distillation_terms(student, teacher, labels, temperature=T).kd
    assert kd.item() == pytest.approx(T**2 * (soft_cross_entropy - teacher_entropy).item(), rel=1e-12)
    torch_kl = F.kl_div(log_p_s, p_t, reduction="batchmean")
    assert kd.item() == pytest.approx(T**2 * torch_kl.item(), rel=1e-12)


def test_hand_computed_two_class_example():
    # Teacher odds 3:1 at T = 1; the student is undecided. At T = 2 the teacher's odds become √3 : 1.
    student = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    teacher = torch.tensor([[math.log(3.0), 0.0]], dtype=torch.float64)
    labels = torch.tensor([0])
    kl_at_1 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    terms = distillation_terms(student, teacher, labels, temperature=1.0)
    assert terms.ce.item() == pytest.approx(math.log(2.0), rel=1e-12)
    assert terms.kd.item() == pytest.approx(kl_at_1, rel=1e-12)
    high = math.sqrt(3) / (math.sqrt(3) + 1)
    kl_at_2 = high * math.log(2 * high) + (1 - high) * math.log(2 * (1 - high))
    loss = distillation_loss(student, teacher, labels, temperature=2.0, lam=0.25)
    assert loss.item() == pytest.approx(0.25 * math.log(2.0) + 0.75 * 4.0 * kl_at_2, rel=1e-12)


def test_returns_named_terms():
    student, teacher, labels = make_batch()
    terms = distillation_terms(student, teacher, labels)
    assert isinstance(terms, KDTerms)
    assert terms.ce.shape == terms.kd.shape == ()
    assert distillation_terms(student, teacher).ce is None


def test_default_temperature_is_four_and_lam_one_half():
    student, teacher, labels = make_batch(seed=5)
    expected = np_distillation_loss(student.numpy(), teacher.numpy(), labels.numpy(), 4.0, 0.5)
    assert distillation_loss(student, teacher, labels).item() == pytest.approx(expected, rel=1e-12)


# --- gradients ---


def student_gradient(loss_fn, student):
    student = student.clone().requires_grad_()
    loss_fn(student).backward()
    return student.grad


def test_gradient_matches_autograd_of_an_independent_formula():
    student, teacher, labels = make_batch(seed=2)
    T, lam = 3.0, 0.4

    def independent(s):  # soft cross-entropy form, CE from a one-hot matrix, log via torch.log(softmax)
        one_hot = F.one_hot(labels, s.shape[1]).to(s.dtype)
        ce = -(one_hot * torch.log(torch.softmax(s, 1))).sum(1).mean()
        p_t = torch.softmax(teacher / T, 1)
        soft_ce = -(p_t * torch.log(torch.softmax(s / T, 1))).sum(1).mean()
        return lam * ce + (1 - lam) * T**2 * soft_ce  # the teacher entropy is constant in s

    expected = student_gradient(independent, student)
    actual = student_gradient(lambda s: distillation_loss(s, teacher, labels, temperature=T, lam=lam), student)
    assert_close(actual, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("temperature, lam", [(1.0, 0.5), (4.0, 0.0), (0.5, 0.7), (10.0, 1.0)])
def test_gradient_matches_finite_differences(temperature, lam):
    student, teacher, labels = make_batch(batch=3, classes=4, seed=4)
    loss = lambda s: distillation_loss(s, teacher, labels, temperature=temperature, lam=lam).item()  # noqa: E731
    numeric = torch.zeros_like(student)
    eps = 1e-6
    for index in np.ndindex(*student.shape):  # central differences, one logit at a time
        bump = torch.zeros_like(student)
        bump[index] = eps
        numeric[index] = (loss(student + bump) - loss(student - bump)) / (2 * eps)
    analytic = student_gradient(lambda s: distillation_loss(s, teacher, labels, temperature, lam), student)
    assert_close(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0, 20.0])
def test_kd_gradient_is_t_times_probability_gap_over_batch(temperature):
    # d/dz_s [T² KL(p_T ‖ p_S)] = T² · (p_S − p_T) / (T · B) = T (p_S − p_T) / B
    student, teacher, _ = make_batch(seed=6)
    batch = student.shape[0]
    grad = student_gradient(lambda s: distillation_terms(s, teacher, temperature=temperature).kd, student)
    p_s, p_t = torch.softmax(student / temperature, 1), torch.softmax(teacher / temperature, 1)
    assert_close(grad, temperature * (p_s - p_t) / batch, rtol=1e-10, atol=1e-12)


def test_t_squared_keeps_the_soft_gradient_on_scale_as_temperature_grows():
    student, teacher, _ = make_batch(batch=8, classes=10, seed=7)
    # Zero-mean logits, so the large-T limit is plain logit matching: (z_s − z_t) / (N·B).
    student, teacher = student - student.mean(1, keepdim=True), teacher - teacher.mean(1, keepdim=True)
    batch, classes = student.shape
    temperatures = [2.0, 5.0, 10.0, 50.0, 100.0]
    with_t2 = [student_gradient(lambda s: distillation_terms(s, teacher, temperature=T).kd, student)
               for T in temperatures]
    without_t2 = [student_gradient(lambda s: distillation_terms(s, teacher, temperature=T).kd / T**2, student)
                  for T in temperatures]
    norms = [g.norm().item() for g in with_t2]
    assert max(norms) / min(norms) < 1.5  # roughly constant across a 50× range of T
    logit_matching = (student - teacher) / (classes * batch)
    assert (with_t2[-1] - logit_matching).norm() < 0.02 * logit_matching.norm()
    # Without T² the gradient shrinks like 1/T²: 10× the temperature, 100× smaller.
    ratio = without_t2[2].norm().item() / without_t2[4].norm().item()
    assert ratio == pytest.approx(100.0, rel=0.05)


@pytest.mark.parametrize("temperature", [0.05, 0.1, 1.0, 10.0, 100.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stable_for_extreme_temperatures_and_large_logits(temperature, dtype):
    generator = torch.Generator().manual_seed(8)
    student = (torch.rand(16, 77, generator=generator, dtype=dtype) * 100 - 50).requires_grad_()
    teacher = torch.rand(16, 77, generator=generator, dtype=dtype) * 100 - 50
    teacher[:, 0] = 50.0  # one saturated class: p_T is exactly 0 elsewhere at low T
    labels = torch.randint(77, (16,), generator=generator)
    loss = distillation_loss(student, teacher, labels, temperature=temperature, lam=0.5)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() >= 0
    assert torch.isfinite(student.grad).all()


def test_kd_is_zero_when_student_equals_teacher():
    _, teacher, _ = make_batch(seed=9)
    assert distillation_terms(teacher.clone(), teacher, temperature=4.0).kd.item() == pytest.approx(0.0, abs=1e-12)


def test_teacher_logits_get_no_gradient():
    student, teacher, labels = make_batch(seed=10)
    student.requires_grad_()
    teacher.requires_grad_()
    distillation_loss(student, teacher, labels, temperature=4.0, lam=0.3).backward()
    assert teacher.grad is None or not teacher.grad.any()
    assert student.grad is not None and student.grad.abs().sum() > 0


# --- λ and the unlabeled batch ---


def test_labels_none_gives_kd_alone_whatever_lam():
    student, teacher, labels = make_batch(seed=11)
    kd = distillation_terms(student, teacher, labels, temperature=2.0).kd
    for lam in (0.0, 0.5, 1.0):
        assert distillation_loss(student, teacher, None, temperature=2.0, lam=lam).item() == pytest.approx(kd.item())


def test_lam_one_is_plain_cross_entropy_and_lam_zero_is_kd():
    student, teacher, labels = make_batch(seed=12)
    ce_only = distillation_loss(student, teacher, labels, temperature=4.0, lam=1.0)
    assert ce_only.item() == pytest.approx(F.cross_entropy(student, labels).item(), rel=1e-12)
    kd_only = distillation_loss(student, teacher, labels, temperature=4.0, lam=0.0)
    assert kd_only.item() == pytest.approx(distillation_terms(student, teacher, temperature=4.0).kd.item(), rel=1e-12)


def test_lam_weights_the_hard_label_term():
    student, teacher, labels = make_batch(seed=13)
    ce, kd = distillation_terms(student, teacher, labels, temperature=4.0)
    loss = distillation_loss(student, teacher, labels, temperature=4.0, lam=0.9)
    assert loss.item() == pytest.approx((0.9 * ce + 0.1 * kd).item(), rel=1e-12)


def test_accepts_half_precision_teacher_cache_and_int32_labels():
    student, teacher, labels = make_batch(seed=14, dtype=torch.float32)
    loss = distillation_loss(student, teacher.half(), labels.int(), temperature=4.0)
    assert loss.dtype == torch.float32
    expected = distillation_loss(student, teacher.half().float(), labels, temperature=4.0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


# --- soft targets ---


def test_soft_targets_is_softmax_of_scaled_logits():
    _, teacher, _ = make_batch(seed=15)
    probs = soft_targets(teacher, 3.0)
    expected = np.exp(np_log_softmax(teacher.numpy() / 3.0))
    np.testing.assert_allclose(probs.numpy(), expected, rtol=1e-12)
    assert_close(probs.sum(-1), torch.ones(len(teacher), dtype=torch.float64))


def test_soft_targets_flatten_as_temperature_grows():
    logits = torch.tensor([[4.0, 1.0, 0.0]])
    assert soft_targets(logits, 0.1)[0, 0] > 0.999
    assert_close(soft_targets(logits, 1000.0), torch.full((1, 3), 1 / 3), rtol=1e-2, atol=1e-2)


# --- validation: every bad argument named, with its valid range ---

S, T_, Y = make_batch(batch=4, classes=3, seed=16)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(temperature=0.0), r"temperature must be > 0 and ≤ 1000 .*, got 0\.0"),
        (dict(temperature=-1.0), r"temperature must be > 0 and ≤ 1000 .*, got -1\.0"),
        (dict(temperature=float("nan")), r"temperature must be a finite number .*, got nan"),
        (dict(temperature=float("inf")), r"temperature must be a finite number"),
        (dict(lam=-0.1), r"lam .* must be in \[0, 1\], got -0\.1"),
        (dict(lam=1.5), r"lam .* must be in \[0, 1\], got 1\.5"),
        (dict(lam=float("nan")), r"lam .* must be in \[0, 1\], got nan"),
        (dict(student_logits=S[0]), r"student_logits must be 2-D"),
        (dict(teacher_logits=T_[None]), r"teacher_logits must be 2-D"),
        (dict(student_logits=S[:0], teacher_logits=T_[:0], labels=Y[:0]), r"student_logits must be 2-D \(batch >= 1"),
        (dict(teacher_logits=T_[:3]), r"teacher_logits has batch size 3 but student_logits has 4"),
        (dict(teacher_logits=torch.zeros(4, 7, dtype=torch.float64)), r"teacher_logits has 7 classes but .* has 3"),
        (dict(labels=Y[:3]), r"labels must be a 1-D integer tensor of length 4"),
        (dict(labels=Y[:, None]), r"labels must be a 1-D .*shape \(4, 1\)"),
        (dict(labels=Y.double()), r"labels must be a 1-D integer tensor.*float64"),
        (dict(labels=torch.tensor([0, 1, 2, 3])), r"labels must be in the range \[0, 3\) or -100 \(no label\), got values 0 to 3"),
        (dict(labels=torch.tensor([-1, 0, 1, 2])), r"labels must be in the range \[0, 3\) or -100 \(no label\)"),
        (dict(temperature=1001.0), r"temperature must be > 0 and ≤ 1000"),
        (dict(temperature=1e30), r"temperature must be > 0 and ≤ 1000"),
        (dict(teacher_logits=torch.tensor([[0.0, float("nan"), 1.0]] * 4)), r"teacher_logits contain NaN or inf; rebuild"),
        (dict(teacher_logits=torch.tensor([[0.0, float("inf"), 1.0]] * 4)), r"teacher_logits contain NaN or inf"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_the_argument(kwargs, match):
    arguments = dict(student_logits=S, teacher_logits=T_, labels=Y, temperature=4.0, lam=0.5)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        distillation_loss(**arguments)


def test_distillation_terms_and_soft_targets_validate_too():
    with pytest.raises(ValueError, match="temperature"):
        distillation_terms(S, T_, Y, temperature=-2.0)
    with pytest.raises(ValueError, match="classes"):
        distillation_terms(S, T_[:, :2])
    with pytest.raises(ValueError, match="temperature must be > 0"):
        soft_targets(T_, 0.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(temperature="4"), r"temperature must be a number .*got str '4'"),
        (dict(temperature=None), r"temperature must be a number .*got NoneType"),
        (dict(temperature=True), r"temperature must be a number .*got bool"),
        (dict(lam="0.5"), r"lam must be a number .*got str"),
        (dict(labels=[0, 1, 2, 0]), r"labels must be a torch.Tensor .*got list"),
        (dict(labels=np.array([0, 1, 2, 0])), r"labels must be a torch.Tensor .*got ndarray"),
        (dict(student_logits=S.numpy()), r"student_logits must be a torch.Tensor"),
        (dict(teacher_logits=T_.tolist()), r"teacher_logits must be a torch.Tensor"),
        (dict(student_logits=S.long()), r"student_logits must hold floating-point logits"),
    ],
)
def test_wrong_types_raise_type_error_naming_the_argument(kwargs, match):
    arguments = dict(student_logits=S, teacher_logits=T_, labels=Y, temperature=4.0, lam=0.5)
    arguments.update(kwargs)
    with pytest.raises(TypeError, match=match):
        distillation_loss(**arguments)


@pytest.mark.parametrize("temperature, logits", [("4", T_), (None, T_), (4.0, T_.numpy()), (4.0, [[1.0, 2.0]])])
def test_soft_targets_refuses_strings_none_and_numpy(temperature, logits):
    with pytest.raises(TypeError, match="temperature|logits"):
        soft_targets(logits, temperature)


# --- partly labelled batches: -100 marks a row without a label, every row weighs 1 ---


def np_partly_labelled_loss(student, teacher, labels, temperature, lam):
    """The contract row by row: lam·CE_i + (1 − lam)·KD_i for a labelled row, KD_i otherwise; mean over rows."""
    log_p_s = np_log_softmax(student / temperature)
    log_p_t = np_log_softmax(teacher / temperature)
    kd_rows = temperature**2 * (np.exp(log_p_t) * (log_p_t - log_p_s)).sum(axis=1)
    log_p = np_log_softmax(student)
    rows = []
    for i, label in enumerate(labels):
        rows.append(kd_rows[i] if label == -100 else lam * -log_p[i, label] + (1 - lam) * kd_rows[i])
    return float(np.mean(rows))


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_partly_labelled_batch_follows_the_row_rule(lam, temperature):
    student, teacher, labels = make_batch(batch=8, seed=21)
    labels[[1, 4, 5]] = -100
    expected = np_partly_labelled_loss(student.numpy(), teacher.numpy(), labels.numpy(), temperature, lam)
    actual = distillation_loss(student, teacher, labels, temperature=temperature, lam=lam)
    assert actual.item() == pytest.approx(expected, rel=1e-12)


def test_hand_computed_partly_labelled_example():
    # two rows, classes 2: row 0 labelled 0, row 1 unlabelled; teacher = student, so KD_i = 0 for both.
    student = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    loss = distillation_loss(student, student.clone(), torch.tensor([0, -100]), temperature=2.0, lam=0.5)
    # (0.5·ln 2 + 0) / 2 rows — an unlabelled row still counts in the mean
    assert loss.item() == pytest.approx(0.5 * math.log(2.0) / 2, rel=1e-12)


def test_all_unlabelled_is_labels_none_and_none_unlabelled_is_the_plain_loss():
    student, teacher, labels = make_batch(batch=6, seed=22)
    none = torch.full_like(labels, -100)
    assert distillation_loss(student, teacher, none, 3.0, 0.7).item() == pytest.approx(
        distillation_loss(student, teacher, None, 3.0, 0.7).item(), rel=1e-12)
    assert distillation_terms(student, teacher, none, 3.0).ce is None
    plain = np_distillation_loss(student.numpy(), teacher.numpy(), labels.numpy(), 3.0, 0.7)
    assert distillation_loss(student, teacher, labels, 3.0, 0.7).item() == pytest.approx(plain, rel=1e-12)


def test_partly_labelled_gradient_matches_autograd_of_an_independent_formula():
    student, teacher, labels = make_batch(batch=7, seed=23)
    labels[[0, 3]] = -100
    T, lam = 2.5, 0.4
    keep = labels != -100

    def independent(s):  # sum of the labelled rows' CE, KD over every row, divided by all rows
        p_t = torch.softmax(teacher / T, 1)
        kd = T**2 * (p_t * (torch.log(p_t) - torch.log(torch.softmax(s / T, 1)))).sum(1)
        ce = -torch.log(torch.softmax(s[keep], 1))[torch.arange(int(keep.sum())), labels[keep]]
        return (lam * ce.sum() + (1 - lam) * kd[keep].sum() + kd[~keep].sum()) / len(s)

    expected = student_gradient(independent, student)
    actual = student_gradient(lambda s: distillation_loss(s, teacher, labels, T, lam), student)
    assert_close(actual, expected, rtol=1e-10)


def test_ce_term_averages_over_labelled_rows_only():
    student, teacher, labels = make_batch(batch=6, seed=24)
    labels[[2, 3]] = -100
    keep = labels != -100
    ce = distillation_terms(student, teacher, labels, 4.0).ce
    assert ce.item() == pytest.approx(F.cross_entropy(student[keep], labels[keep]).item(), rel=1e-12)


# --- high temperatures: exact against 60-digit arithmetic, refused beyond the stated maximum ---


def mp_kd(student, teacher, temperature):
    """T²·KL(p_T ‖ p_S) averaged over rows, in 60-digit arithmetic (mpmath): the independent reference."""
    import mpmath

    mpmath.mp.dps = 60
    total = mpmath.mpf(0)
    for s_row, t_row in zip(student.tolist(), teacher.tolist()):
        zs = [mpmath.mpf(x) / temperature for x in s_row]
        zt = [mpmath.mpf(x) / temperature for x in t_row]
        log_zs = mpmath.log(mpmath.fsum(mpmath.e**z for z in zs))
        log_zt = mpmath.log(mpmath.fsum(mpmath.e**z for z in zt))
        total += mpmath.fsum(mpmath.e**(b - log_zt) * ((b - log_zt) - (a - log_zs)) for a, b in zip(zs, zt))
    return float(total / len(student) * temperature**2)


@pytest.mark.parametrize("temperature", [0.05, 1.0, 100.0, 1000.0])
def test_float32_logits_stay_exact_up_to_the_maximum_temperature(temperature):
    student, teacher, _ = make_batch(batch=3, classes=77, seed=25, scale=3.0, dtype=torch.float32)
    kd = distillation_terms(student, teacher, None, temperature).kd
    assert kd.dtype == torch.float32
    assert kd.item() == pytest.approx(mp_kd(student.double(), teacher.double(), temperature), rel=1e-5)


def test_beyond_the_maximum_temperature_the_loss_refuses_instead_of_returning_nan():
    from kdlab.checks import MAX_TEMPERATURE

    student, teacher, labels = make_batch(seed=26, dtype=torch.float32)
    with pytest.raises(ValueError, match=f"≤ {MAX_TEMPERATURE:g}"):
        distillation_loss(student, teacher, labels, temperature=1e4)
