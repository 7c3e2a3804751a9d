"""kdlab.checker: each known KD mistake, written the way a learner would, is diagnosed by name."""

import threading
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdlab.checker import CODES, Finding, check_distillation_loss, format_findings
from kdlab.losses import distillation_loss


pytestmark = pytest.mark.filterwarnings("ignore:reduction. .mean. divides")  # the learner-style bugs use it on purpose


def codes(fn):
    # 2 s for all calls together: every function here returns in milliseconds, except the endless loop.
    return {finding.code for finding in check_distillation_loss(fn, timeout_s=2.0)}


# --- correct implementations, each written differently: all must come back clean ---


def soft_cross_entropy_minus_entropy(student_logits, teacher_logits, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    p_t = torch.softmax(teacher_logits.detach() / T, dim=-1)
    soft_ce = -(p_t * torch.log_softmax(student_logits / T, dim=-1)).sum(-1).mean()
    entropy = -(p_t * torch.log(p_t)).sum(-1).mean()
    kd = T**2 * (soft_ce - entropy)
    if labels is None:
        return kd
    return lam * F.cross_entropy(student_logits, labels) + (1 - lam) * kd


def manual_exp_log_sums(student_logits, teacher_logits, labels=None, temperature=4.0, lam=0.5):
    def log_probs(z):
        z = z - z.max(dim=1, keepdim=True).values
        return z - torch.log(torch.exp(z).sum(dim=1, keepdim=True))

    with torch.no_grad():
        log_p_t = log_probs(teacher_logits / temperature)
    log_p_s = log_probs(student_logits / temperature)
    batch = student_logits.shape[0]
    kd = temperature * temperature * torch.sum(torch.exp(log_p_t) * (log_p_t - log_p_s)) / batch
    if labels is None:
        return kd
    ce = -log_probs(student_logits)[torch.arange(batch), labels].sum() / batch
    return ce * lam + kd * (1 - lam)


def kl_div_with_log_target(student_logits, teacher_logits, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    kd = F.kl_div(F.log_softmax(student_logits / T, 1), F.log_softmax(teacher_logits.detach() / T, 1),
                  reduction="batchmean", log_target=True) * T * T
    return kd if labels is None else lam * F.cross_entropy(student_logits, labels) + (1.0 - lam) * kd


class ModuleStyleLoss(nn.Module):
    """The tutorial style: criterion objects built once, teacher probabilities under no_grad."""

    def __init__(self):
        super().__init__()
        self.kl = nn.KLDivLoss(reduction="batchmean")
        self.ce = nn.CrossEntropyLoss()

    def forward(self, student_logits, teacher_logits, labels=None, temperature=4.0, lam=0.5):
        with torch.no_grad():
            targets = F.softmax(teacher_logits / temperature, dim=-1)
        kd = self.kl(F.log_softmax(student_logits / temperature, dim=-1), targets) * temperature**2
        if labels is None:
            return kd
        return lam * self.ce(student_logits, labels) + (1 - lam) * kd


def in_float32(student_logits, teacher_logits, labels=None, temperature=4.0, lam=0.5):
    return distillation_loss(student_logits.float(), teacher_logits.float(), labels, temperature, lam)


@pytest.mark.parametrize(
    "fn",
    [distillation_loss, soft_cross_entropy_minus_entropy, manual_exp_log_sums, kl_div_with_log_target,
     ModuleStyleLoss(), in_float32],
    ids=["reference", "soft-ce-minus-entropy", "manual-exp-log", "kl-div-log-target", "module-style", "float32"],
)
def test_correct_implementations_have_no_findings(fn):
    assert check_distillation_loss(fn) == []


# --- one mistake each, written as a learner would ---


def kd_loss(student_logits, teacher_logits, labels, temperature, lam, *, kd, ce=None):
    """Assemble a loss from a (possibly buggy) KD term, the way most learners structure it."""
    if labels is None:
        return kd
    ce = F.cross_entropy(student_logits, labels) if ce is None else ce
    return lam * ce + (1 - lam) * kd


def feeds_probabilities(s, t, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    kd = F.kl_div(F.softmax(s / T, -1), F.softmax(t.detach() / T, -1), reduction="batchmean") * T**2
    return kd_loss(s, t, labels, T, lam, kd=kd)


def feeds_logits(s, t, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    kd = F.kl_div(s / T, F.softmax(t.detach() / T, -1), reduction="batchmean") * T**2
    return kd_loss(s, t, labels, T, lam, kd=kd)


def mean_reduction(s, t, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    kd = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t.detach() / T, -1), reduction="mean") * T**2
    return kd_loss(s, t, labels, T, lam, kd=kd)


def sum_reduction(s, t, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    kd = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t.detach() / T, -1), reduction="sum") * T**2
    return kd_loss(s, t, labels, T, lam, kd=kd)


def no_t_squared(s, t, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    kd = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t.detach() / T, -1), reduction="batchmean")
    return kd_loss(s, t, labels, T, lam, kd=kd)


def temperature_on_student_only(s, t, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    kd = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t.detach(), -1), reduction="batchmean") * T**2
    return kd_loss(s, t, labels, T, lam, kd=kd)


def temperature_on_teacher_only(s, t, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    kd = F.kl_div(F.log_softmax(s, -1), F.softmax(t.detach() / T, -1), reduction="batchmean") * T**2
    return kd_loss(s, t, labels, T, lam, kd=kd)


def temperature_ignored(s, t, labels=None, temperature=4.0, lam=0.5):
    kd = F.kl_div(F.log_softmax(s, -1), F.softmax(t.detach(), -1), reduction="batchmean")
    return kd_loss(s, t, labels, temperature, lam, kd=kd)


def temperature_only_in_t_squared(s, t, labels=None, temperature=4.0, lam=0.5):
    kd = F.kl_div(F.log_softmax(s, -1), F.softmax(t.detach(), -1), reduction="batchmean") * temperature**2
    return kd_loss(s, t, labels, temperature, lam, kd=kd)


def temperature_hard_coded(s, t, labels=None, temperature=4.0, lam=0.5):
    return distillation_loss(s, t, labels, temperature=4.0, lam=lam)


def teacher_not_detached(s, t, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    kd = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean") * T**2
    return kd_loss(s, t, labels, T, lam, kd=kd)


def student_detached(s, t, labels=None, temperature=4.0, lam=0.5):
    return distillation_loss(s.detach(), t, labels, temperature, lam)


def student_detached_in_kd_term(s, t, labels=None, temperature=4.0, lam=0.5):
    kd = distillation_loss(s.detach(), t, None, temperature)
    return kd_loss(s, t, labels, temperature, lam, kd=kd)


def weights_swapped(s, t, labels=None, temperature=4.0, lam=0.5):
    kd = distillation_loss(s, t, None, temperature)
    return kd if labels is None else (1 - lam) * F.cross_entropy(s, labels) + lam * kd


def lam_ignored(s, t, labels=None, temperature=4.0, lam=0.5):
    kd = distillation_loss(s, t, None, temperature)
    return kd if labels is None else 0.5 * F.cross_entropy(s, labels) + 0.5 * kd


def ce_on_scaled_logits(s, t, labels=None, temperature=4.0, lam=0.5):
    kd = distillation_loss(s, t, None, temperature)
    ce = None if labels is None else F.cross_entropy(s / temperature, labels)
    return kd_loss(s, t, labels, temperature, lam, kd=kd, ce=ce)


def kl_reversed(s, t, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    kd = F.kl_div(F.log_softmax(t.detach() / T, -1), F.softmax(s / T, -1), reduction="batchmean") * T**2
    return kd_loss(s, t, labels, T, lam, kd=kd)


def soft_cross_entropy_only(s, t, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    kd = -(F.softmax(t.detach() / T, -1) * F.log_softmax(s / T, -1)).sum(-1).mean() * T**2
    return kd_loss(s, t, labels, T, lam, kd=kd)


def divides_teacher_in_place(s, t, labels=None, temperature=4.0, lam=0.5):
    t /= temperature  # the caller's cached teacher logits are now scaled
    return distillation_loss(s, t * temperature, labels, temperature, lam)


def unlabeled_crashes(s, t, labels=None, temperature=4.0, lam=0.5):
    kd = distillation_loss(s, t, None, temperature)
    return lam * F.cross_entropy(s, labels) + (1 - lam) * kd


def unlabeled_still_weighted(s, t, labels=None, temperature=4.0, lam=0.5):
    kd = distillation_loss(s, t, None, temperature)
    ce = 0.0 if labels is None else F.cross_entropy(s, labels)
    return lam * ce + (1 - lam) * kd


def log_target_without_flag(s, t, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    kd = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t.detach() / T, -1), reduction="batchmean") * T**2
    return kd_loss(s, t, labels, T, lam, kd=kd)


def per_example_loss(s, t, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    kd = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t.detach() / T, -1), reduction="none").sum(-1) * T**2
    return kd if labels is None else lam * F.cross_entropy(s, labels, reduction="none") + (1 - lam) * kd


def returns_python_float(s, t, labels=None, temperature=4.0, lam=0.5):
    return distillation_loss(s, t, labels, temperature, lam).item()


def raises(s, t, labels=None, temperature=4.0, lam=0.5):
    raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")


def numpy_on_teacher(s, t, labels=None, temperature=4.0, lam=0.5):
    teacher = torch.from_numpy(t.numpy())  # fails once the teacher carries a graph
    return distillation_loss(s, teacher, labels, temperature, lam)


def kd_three_times_too_big(s, t, labels=None, temperature=4.0, lam=0.5):
    return kd_loss(s, t, labels, temperature, lam, kd=3 * distillation_loss(s, t, None, temperature))


def half_gradient(s, t, labels=None, temperature=4.0, lam=0.5):
    loss = distillation_loss(s, t, labels, temperature, lam)
    return loss.detach() + 0.5 * (loss - loss.detach())  # right value, half the gradient


def endless_loop(s, t, labels=None, temperature=4.0, lam=0.5):
    kd = distillation_loss(s, t, None, temperature)
    while True:  # the learner meant to stop once the loss was "good enough"
        pass
    return kd


SINGLE_BUGS = [
    (feeds_probabilities, "not-log-probs"),
    (feeds_logits, "not-log-probs"),
    (mean_reduction, "mean-not-batchmean"),
    (sum_reduction, "sum-not-batchmean"),
    (no_t_squared, "missing-t-squared"),
    (temperature_on_student_only, "temperature-one-side"),
    (temperature_on_teacher_only, "temperature-one-side"),
    (temperature_ignored, "no-temperature"),
    (temperature_only_in_t_squared, "no-temperature"),
    (temperature_hard_coded, "no-temperature"),
    (teacher_not_detached, "teacher-gradient"),
    (student_detached, "student-detached"),
    (student_detached_in_kd_term, "student-detached"),
    (weights_swapped, "weights-swapped"),
    (lam_ignored, "lam-ignored"),
    (ce_on_scaled_logits, "ce-temperature"),
    (kl_reversed, "kl-reversed"),
    (soft_cross_entropy_only, "cross-entropy-not-kl"),
    (divides_teacher_in_place, "modifies-inputs"),
    (unlabeled_crashes, "unlabeled-batch"),
    (unlabeled_still_weighted, "unlabeled-batch"),
    (log_target_without_flag, "not-finite"),
    (per_example_loss, "not-scalar"),
    (returns_python_float, "not-scalar"),
    (raises, "crashes"),
    (numpy_on_teacher, "crashes"),
    (kd_three_times_too_big, "wrong-value"),
    (half_gradient, "wrong-gradient"),
    (endless_loop, "timed-out"),
]


@pytest.mark.parametrize("fn, code", SINGLE_BUGS, ids=[fn.__name__ for fn, _ in SINGLE_BUGS])
def test_each_single_mistake_is_named_and_nothing_else(fn, code):
    assert codes(fn) == {code}


def test_every_code_is_exercised():
    # Exactly the codes the checker can report, each one named for a learner-style mistake in SINGLE_BUGS.
    exercised = {code for _, code in SINGLE_BUGS}
    assert len(CODES) == len(set(CODES))
    assert exercised == set(CODES), (set(CODES) - exercised, exercised - set(CODES))


def test_messages_say_which_side_and_which_term():
    [one_side] = check_distillation_loss(temperature_on_student_only)
    assert "Only the student's logits are divided by T" in one_side.message
    [one_side] = check_distillation_loss(temperature_on_teacher_only)
    assert "Only the teacher's logits" in one_side.message
    [detached] = check_distillation_loss(student_detached_in_kd_term)
    assert "Only the hard-label CE term sends gradient" in detached.message
    [crash] = check_distillation_loss(raises)
    assert "RuntimeError: mat1 and mat2 shapes cannot be multiplied" in crash.message
    [crash] = check_distillation_loss(numpy_on_teacher)
    assert "requires grad" in crash.message
    [hard_coded] = check_distillation_loss(temperature_hard_coded)
    assert "temperature argument is ignored" in hard_coded.message
    [wrong] = check_distillation_loss(kd_three_times_too_big)
    assert "At lam=1 it matches the hard-label CE" in wrong.message


# --- two mistakes at once: both named, nothing invented ---


def swapped_and_no_t_squared(s, t, labels=None, temperature=4.0, lam=0.5):
    kd = F.kl_div(F.log_softmax(s / temperature, -1), F.softmax(t.detach() / temperature, -1), reduction="batchmean")
    return kd if labels is None else (1 - lam) * F.cross_entropy(s, labels) + lam * kd


def probabilities_and_teacher_gradient(s, t, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    kd = F.kl_div(F.softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean") * T**2
    return kd_loss(s, t, labels, T, lam, kd=kd)


def one_side_and_mean(s, t, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    kd = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t.detach(), -1), reduction="mean") * T**2
    return kd_loss(s, t, labels, T, lam, kd=kd)


def scaled_ce_and_no_t_squared(s, t, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    kd = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t.detach() / T, -1), reduction="batchmean")
    ce = None if labels is None else F.cross_entropy(s / T, labels)
    return kd_loss(s, t, labels, T, lam, kd=kd, ce=ce)


def detaches_the_wrong_side(s, t, labels=None, temperature=4.0, lam=0.5):
    T = temperature
    kd = F.kl_div(F.log_softmax(s.detach() / T, -1), F.softmax(t / T, -1), reduction="batchmean") * T**2
    ce = None if labels is None else F.cross_entropy(s.detach(), labels)
    return kd_loss(s, t, labels, T, lam, kd=kd, ce=ce)


TWO_BUGS = [
    (swapped_and_no_t_squared, {"weights-swapped", "missing-t-squared"}),
    (probabilities_and_teacher_gradient, {"not-log-probs", "teacher-gradient"}),
    (one_side_and_mean, {"temperature-one-side", "mean-not-batchmean"}),
    (scaled_ce_and_no_t_squared, {"ce-temperature", "missing-t-squared"}),
    (detaches_the_wrong_side, {"student-detached", "teacher-gradient"}),
]


@pytest.mark.parametrize("fn, expected", TWO_BUGS, ids=[fn.__name__ for fn, _ in TWO_BUGS])
def test_two_mistakes_are_both_named(fn, expected):
    assert codes(fn) == expected


# --- the common first attempt from DESIGN.md, adapted to this signature ---


def common_first_attempt(student_logits, teacher_logits, labels, temperature=4.0, lam=0.5):
    criterion = nn.KLDivLoss()  # reduction="mean"
    student_logits = student_logits / temperature
    teacher_logits = teacher_logits / temperature
    ce = F.nll_loss(F.log_softmax(student_logits, dim=-1), labels)
    kl = criterion(student_logits, F.softmax(teacher_logits, dim=-1))
    return ce + 0.5 * kl


def test_common_first_attempt_is_taken_apart():
    findings = check_distillation_loss(common_first_attempt)
    found = {finding.code for finding in findings}
    assert findings
    assert {"not-log-probs", "mean-not-batchmean", "missing-t-squared"} <= found
    assert {"lam-ignored", "ce-temperature", "teacher-gradient", "unlabeled-batch"} <= found
    assert "wrong-value" not in found  # each part of the error is explained, not lumped together
    assert "raw logits" in next(f.message for f in findings if f.code == "not-log-probs")


# --- the checker itself ---


def test_findings_are_plain_data_in_a_stable_order():
    findings = check_distillation_loss(swapped_and_no_t_squared)
    assert all(isinstance(f, Finding) and f.message and f.fix for f in findings)
    assert [f.code for f in findings] == sorted((f.code for f in findings), key=CODES.index)
    assert check_distillation_loss(swapped_and_no_t_squared) == findings  # deterministic


def test_format_findings():
    assert format_findings([]).startswith("No problems found")
    text = format_findings(check_distillation_loss(one_side_and_mean))
    assert text.startswith("Found 2 problems:")
    assert "1. [temperature-one-side]" in text and "2. [mean-not-batchmean]" in text
    assert text.count("Fix: ") == 2


def test_no_two_mistake_combinations_look_alike_on_the_probes():
    # The diagnosis is only as good as the probes: any two combinations of mistakes that give the same
    # numbers must be the same diagnosis, or one a plain superset of the other (the checker names the smaller).
    from kdlab.checker import _explain, _prediction_table

    hypotheses, table = _prediction_table()
    code_sets = [frozenset(f.code for f in _explain(h)) for h in hypotheses]
    order = np.argsort(table[:, 2])
    table, code_sets = table[order], [code_sets[k] for k in order]
    hypotheses = [hypotheses[k] for k in order]
    for i, row in enumerate(table):  # sorted on one mixed (lam=0.3) value, so look-alikes are neighbours
        j = i + 1
        while j < len(table) and table[j, 2] - row[2] <= 1e-4 * max(abs(row[2]), abs(table[j, 2]), 1e-9):
            gap = np.abs(table[j] - row) / np.maximum(np.abs(table[j]), np.abs(row)).clip(min=1e-9)
            if gap.max() < 1e-4:
                assert code_sets[i] <= code_sets[j] or code_sets[j] <= code_sets[i], (hypotheses[i], hypotheses[j])
            j += 1


# --- a time limit: an endless loop becomes a finding instead of a hung kernel ---


def probe_threads():
    return [t for t in threading.enumerate() if t.name == "kdlab-checker-probe" and t.is_alive()]


def wait_for_probe_threads_to_stop(seconds=3.0):
    end = time.monotonic() + seconds
    while probe_threads() and time.monotonic() < end:
        time.sleep(0.01)
    return probe_threads()


def test_an_endless_loop_is_reported_within_the_time_limit():
    start = time.perf_counter()
    findings = check_distillation_loss(endless_loop, timeout_s=1.0)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0 + 2.0, elapsed
    assert [f.code for f in findings] == ["timed-out"]
    assert "did not return within 1 s on a 4×5 batch" in findings[0].message
    assert "endless loop" in findings[0].message and "timeout_s" in findings[0].fix
    # Asked to stop (an exception raised inside it): a pure-Python loop does, so no core stays busy.
    assert wait_for_probe_threads_to_stop() == []


def test_a_loss_slow_on_every_call_runs_out_of_the_total_budget():
    calls = []

    def slow(s, t, labels=None, temperature=4.0, lam=0.5):
        calls.append(None)
        time.sleep(0.4)
        return distillation_loss(s, t, labels, temperature, lam)

    start = time.perf_counter()
    [late] = check_distillation_loss(slow, timeout_s=1.0)
    elapsed = time.perf_counter() - start
    # The budget is for all calls together: each of the first calls finished, the third ran past the 1 s.
    assert late.code == "timed-out" and len(calls) == 3
    assert elapsed < 1.0 + 2.0, elapsed
    assert wait_for_probe_threads_to_stop() == []


def test_a_slow_but_finishing_loss_is_checked_in_full():
    def slow_but_correct(s, t, labels=None, temperature=4.0, lam=0.5):
        time.sleep(0.02)
        return distillation_loss(s, t, labels, temperature, lam)

    def slow_and_swapped(s, t, labels=None, temperature=4.0, lam=0.5):
        time.sleep(0.02)
        return weights_swapped(s, t, labels, temperature, lam)

    start = time.perf_counter()
    assert check_distillation_loss(slow_but_correct, timeout_s=10.0) == []
    assert elapsed_at_least(start, 11 * 0.02)  # 9 value probes, the gradient and the unlabeled batch
    assert codes(slow_and_swapped) == {"weights-swapped"}


def elapsed_at_least(start, seconds):
    return time.perf_counter() - start >= seconds


class StuckBackward(torch.autograd.Function):
    """Correct forward, endless backward: only a custom autograd Function runs learner code in backward."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        while True:
            pass


def endless_backward(s, t, labels=None, temperature=4.0, lam=0.5):
    return StuckBackward.apply(distillation_loss(s, t, labels, temperature, lam))


def test_an_endless_backward_pass_is_reported_too():
    start = time.perf_counter()
    [late] = check_distillation_loss(endless_backward, timeout_s=1.0)
    assert time.perf_counter() - start < 1.0 + 2.0
    assert late.code == "timed-out" and "the backward pass of" in late.message
    assert wait_for_probe_threads_to_stop() == []


@pytest.mark.parametrize("timeout_s, error", [(0, ValueError), (-1.0, ValueError), (float("nan"), ValueError),
                                              ("10", TypeError)])
def test_a_bad_timeout_is_refused_with_its_name(timeout_s, error):
    with pytest.raises(error, match="timeout_s"):
        check_distillation_loss(distillation_loss, timeout_s=timeout_s)


# --- a mistake that is a library's or tutorial's convention: the finding names the source and kdlab's setting ---


def keras_classic_port(s, t, labels=None, temperature=4.0, lam=0.5):
    """The keras.io example (2020) ported to torch: alpha on the CE, KLDivergence of the softmaxes, no T²."""
    kl = F.kl_div(F.log_softmax(s / temperature, -1), F.softmax(t.detach() / temperature, -1), reduction="batchmean")
    if labels is None:
        return kl
    return lam * F.cross_entropy(s, labels) + (1 - lam) * kl


def pytorch_tutorial_weights(s, t, labels=None, temperature=4.0, lam=0.5):
    """The PyTorch tutorial's loss with its call's weights written in: 0.25 on the soft term, 0.75 on the CE."""
    soft_target_loss_weight, ce_loss_weight, T = 0.25, 0.75, temperature
    soft_targets = F.softmax(t.detach() / T, dim=-1)
    soft_prob = F.log_softmax(s / T, dim=-1)
    soft_targets_loss = torch.sum(soft_targets * (soft_targets.log() - soft_prob)) / soft_prob.size()[0] * (T**2)
    if labels is None:
        return soft_targets_loss
    return soft_target_loss_weight * soft_targets_loss + ce_loss_weight * nn.CrossEntropyLoss()(s, labels)


def trl_forward_kl(s, t, labels=None, temperature=4.0, lam=0.5):
    """TRL's generalized_jsd_loss at beta=0, copied as a classification loss: the KL alone, no T², no CE."""
    student_log_probs = F.log_softmax(s / temperature, dim=-1)
    teacher_log_probs = F.log_softmax(t.detach() / temperature, dim=-1)
    jsd = F.kl_div(student_log_probs, teacher_log_probs, reduction="none", log_target=True)
    return jsd.sum() / jsd.size(0)


def kldivloss_default_reduction(s, t, labels=None, temperature=4.0, lam=0.5):
    """nn.KLDivLoss() with its default reduction='mean', otherwise right."""
    T = temperature
    kd = nn.KLDivLoss()(F.log_softmax(s / T, dim=-1), F.softmax(t.detach() / T, dim=-1)) * T**2
    return kd if labels is None else lam * F.cross_entropy(s, labels) + (1 - lam) * kd


def as_kdlab(a, b):
    """a·CE + b·T²·KL = (a + b) × kdlab's loss at lam = a / (a + b): the text the finding must show."""
    return f"lam={a / (a + b):.4g}", f"{a + b:.4g} times kdlab's"


# (function, codes, the finding carrying the convention, words it must contain); the example is T = 4, lam = 0.5
CONVENTIONS = [
    (keras_classic_port, {"missing-t-squared"}, "missing-t-squared",
     ["keras.io", "convert_recipe('keras-classic', alpha=lam, temperature=T)", *as_kdlab(0.5, 0.5 / 16)]),
    (kldivloss_default_reduction, {"mean-not-batchmean"}, "mean-not-batchmean",
     ["nn.KLDivLoss(reduction='mean')", "num_classes=C", "77 classes", *as_kdlab(0.5, 0.5 / 77)]),
    (soft_cross_entropy_only, {"cross-entropy-not-kl"}, "cross-entropy-not-kl",
     ["soft cross-entropy", "temperature=4, lam=0.5", "constant"]),
    (pytorch_tutorial_weights, {"lam-ignored"}, "lam-ignored",
     ["PyTorch tutorial", "soft_target_loss_weight=0.25, ce_loss_weight=0.75", *as_kdlab(0.75, 0.25)]),
    (lam_ignored, {"lam-ignored"}, "lam-ignored",
     ["PyTorch tutorial", "soft_target_loss_weight=0.5, ce_loss_weight=0.5", *as_kdlab(0.5, 0.5)]),
    (trl_forward_kl, {"lam-ignored", "missing-t-squared"}, "lam-ignored",
     ["TRL", "convert_recipe('trl', beta=0, temperature=T)", "lam=0", "0.0625 times kdlab's"]),
]


@pytest.mark.parametrize("fn, expected, code, words", CONVENTIONS, ids=[c[0].__name__ for c in CONVENTIONS])
def test_a_sources_convention_is_named_with_its_kdlab_setting(fn, expected, code, words):
    findings = check_distillation_loss(fn, timeout_s=2.0)
    assert {f.code for f in findings} == expected
    message = next(f.message for f in findings if f.code == code)
    for word in words:
        assert word in message, (word, message)
    others = [f.message for f in findings if f.code != code]
    assert not any("This is the convention" in m for m in others)


def test_a_mix_of_mistakes_is_no_sources_convention():
    findings = check_distillation_loss(swapped_and_no_t_squared, timeout_s=2.0)
    assert {f.code for f in findings} == {"weights-swapped", "missing-t-squared"}
    assert not any("convention of" in f.message for f in findings)
