"""Find the classic knowledge-distillation mistakes in your own loss function, by probing it with numbers.

How it works: the checker rebuilds every combination of the known mistakes (probabilities fed where
log-probabilities belong, reduction="mean", no T², temperature on one side only, λ on the wrong term,
...) from the same building blocks as `kdlab.losses`, and looks for the combination that reproduces
your function's values on a few small random batches. The fewest mistakes that explain every number
are reported. Gradients are probed separately: none may reach the teacher, and the student's must match.
When the mistakes found are exactly another library's convention (the keras.io example's missing T², the
PyTorch tutorial's two fixed weights, TRL's forward KL, ...), the finding also names that source and the kdlab
setting that trains the same way (kdlab.conventions.convert_recipe).

    from kdlab.checker import check_distillation_loss, format_findings
    print(format_findings(check_distillation_loss(my_loss)))

Your function runs in a helper thread with a time limit (`timeout_s`, 10 s by default, for all its calls
together), so an endless loop in it is reported as a finding instead of hanging the notebook.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from kdlab.language import tr
from kdlab.checks import check_positive_number
from kdlab.threads import threads
from kdlab.time_limit import TimedOut, run_with_time_limit
from kdlab.losses import distillation_terms

LossFn = Callable[..., Tensor]


@dataclass(frozen=True)
class Finding:
    """One problem found in a loss function: what is wrong, in plain words, and how to fix it."""

    code: str
    message: str
    fix: str


CODES = (
    "timed-out",
    "crashes",
    "not-scalar",
    "not-finite",
    "modifies-inputs",
    "weights-swapped",
    "lam-ignored",
    "ce-temperature",
    "no-temperature",
    "temperature-one-side",
    "not-log-probs",
    "kl-reversed",
    "cross-entropy-not-kl",
    "mean-not-batchmean",
    "sum-not-batchmean",
    "missing-t-squared",
    "wrong-value",
    "teacher-gradient",
    "student-detached",
    "wrong-gradient",
    "unlabeled-batch",
)
"""Every code the checker can report, in the order findings are listed."""


def format_findings(findings: list[Finding]) -> str:
    """Render findings as numbered plain text, so a notebook cell can simply print them."""
    if not findings:
        return tr("No problems found: your loss matches kdlab.distillation_loss in value and gradient.")
    lines = [tr("Found {n} problems:", n=len(findings)) if len(findings) > 1 else tr("Found 1 problem:")]
    for number, finding in enumerate(findings, start=1):
        lines.append(f"{number}. [{finding.code}] {finding.message}")
        lines.append(tr("   Fix: {fix}", fix=finding.fix))
    return "\n".join(lines)


# --- probes: small seeded float64 batches, three shapes and temperatures, so no two mistakes look alike ---


class _Probe(NamedTuple):
    student: Tensor
    teacher: Tensor
    labels: Tensor
    temperature: float


def _make_probe(seed: int, batch: int, classes: int, temperature: float) -> _Probe:
    generator = torch.Generator().manual_seed(seed)
    student = 2.0 * torch.randn(batch, classes, generator=generator, dtype=torch.float64)
    teacher = 3.0 * torch.randn(batch, classes, generator=generator, dtype=torch.float64)
    labels = torch.randint(classes, (batch,), generator=generator)
    return _Probe(student, teacher, labels, temperature)


_PROBES = (
    _make_probe(0, batch=4, classes=5, temperature=2.5),
    _make_probe(1, batch=3, classes=7, temperature=0.7),
    _make_probe(2, batch=5, classes=3, temperature=1.6),
)
_LAMS = (0.0, 1.0, 0.3)  # pure KD, pure CE, and a mix that tells the two weightings apart
_RTOL = 1e-5  # loose enough for float32 inside the learner's function, far tighter than any mistake


def _describe(probe: _Probe, lam: float | None, labels: bool = True) -> str:
    shape = tuple(probe.student.shape)
    label_text = f"labels of shape ({shape[0]},)" if labels else "labels=None"
    lam_text = "" if lam is None else f", lam={lam}"
    return f"float64 logits of shape {shape}, {label_text}, temperature={probe.temperature}{lam_text}"


class _Outcome(NamedTuple):
    loss: object
    student_leaf: Tensor
    teacher_leaf: Tensor
    modified: tuple[str, ...]


def _run(fn: LossFn, probe: _Probe, lam: float, *, labels: bool = True, teacher_grad: bool = False,
         temperature: float | None = None) -> _Outcome:
    """Call fn on fresh copies of a probe, shaped like a real training step, and note what it modified."""
    student_leaf = probe.student.clone().requires_grad_()
    teacher_leaf = probe.teacher.clone().requires_grad_(teacher_grad)
    student = student_leaf * 1.0  # a non-leaf, like a model's output, so in-place edits don't just crash
    teacher = teacher_leaf * 1.0 if teacher_grad else teacher_leaf
    label_arg = probe.labels.clone() if labels else None
    T = probe.temperature if temperature is None else temperature
    loss = fn(student, teacher, label_arg, temperature=T, lam=lam)
    inputs = (("student_logits", student, probe.student), ("teacher_logits", teacher, probe.teacher))
    modified = tuple(name for name, after, before in inputs if not torch.equal(after.detach(), before))
    if labels and not torch.equal(label_arg, probe.labels):
        modified += ("labels",)
    return _Outcome(loss, student_leaf, teacher_leaf, modified)


class _BadOutput(Exception):
    def __init__(self, finding: Finding):
        self.finding = finding


def _as_number(loss: object, probe: _Probe, lam: float) -> float:
    """Read the loss as one float, or explain why it is not a usable loss."""
    if not isinstance(loss, Tensor):
        raise _BadOutput(Finding(
            "not-scalar",
            tr("Your function returned a {type_name}, not a torch tensor ({inputs}). Without a tensor there is no "
               "autograd graph, so loss.backward() cannot train the student.",
               type_name=type(loss).__name__,
               inputs=_describe(probe, lam)),
            tr("Return the loss tensor itself; don't call .item(), float() or .numpy() on it.")))
    if loss.numel() != 1:
        raise _BadOutput(Finding(
            "not-scalar",
            tr("Your function returned a tensor of shape {shape}, not a single number ({inputs}). A loss must be "
               "one number per batch.",
               shape=tuple(loss.shape),
               inputs=_describe(probe, lam)),
            tr("Reduce it: sum the KL over classes and average over the batch (reduction='batchmean'), and average "
               "the cross-entropy over the batch.")))
    return float(loss.detach().reshape(()))


def _crash(error: Exception, where: str) -> Finding:
    return Finding(
        "crashes",
        tr("Your function raised {type_name}: {error} — when called with {where}.", type_name=type(error).__name__, error=error, where=where),
        tr("Call it yourself on the same kind of input to see the traceback; every input here is valid."))


# --- a time limit on the learner's function: an endless loop becomes a finding, not a hung kernel ---


class _TimedOut(BaseException):
    """The learner's function overran the check's time budget (a BaseException, so no `except Exception` hides it)."""

    def __init__(self, finding: Finding):
        self.finding = finding



def _describe_call(student: Tensor, labels: Tensor | None, temperature: float, lam: float) -> str:
    label_text = "labels=None" if labels is None else f"labels of shape ({student.shape[0]},)"
    return (f"a {student.shape[0]}×{student.shape[1]} batch (float64 logits of shape {tuple(student.shape)}, "
            f"{label_text}, temperature={temperature}, lam={lam})")


class _Deadline:
    """One time budget for every call into the learner's code during a check; each call waits at most what is left."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def run(self, work: Callable[[], object], where: str) -> object:
        """work() under kdlab.time_limit with what is left of the budget; _TimedOut once the budget is spent."""
        try:
            return run_with_time_limit(work, self.end - time.monotonic())
        except TimedOut:
            raise _TimedOut(Finding(
                "timed-out",
                tr("Your loss did not return within {seconds:g} s on {where} — look for an endless loop (a `while` "
                   "whose condition never becomes False, a loop variable that is never updated). A loss on a batch "
                   "this small takes milliseconds.",
                   seconds=self.seconds,
                   where=where),
                tr("Run your function once yourself on small tensors and interrupt it (■ / Ctrl-C) to see the line "
                   "it is stuck on; if it is only slow, pass a larger timeout_s."))) from None

    def wrap(self, fn: LossFn) -> LossFn:
        """fn with this deadline on every call."""

        def guarded(student, teacher, labels, temperature, lam):
            where = _describe_call(student, labels, temperature, lam)
            return self.run(lambda: fn(student, teacher, labels, temperature=temperature, lam=lam), where)

        return guarded


# --- the reference building blocks, with each known mistake as a switch ---


@dataclass(frozen=True)
class _KDVariant:
    """One way of computing the soft-target term; the defaults are the correct way."""

    scaled: str = "both"  # whose logits are divided by T: both | student | teacher | neither
    fed: str = "log-probs"  # what the KL receives on the student side: log-probs | probs | logits
    reduction: str = "batchmean"  # batchmean | mean | sum
    t_squared: bool = True
    reversed: bool = False  # KL(p_S ‖ p_T) instead of KL(p_T ‖ p_S)
    entropy_removed: bool = True  # False: soft cross-entropy −Σ p_T log p_S instead of KL

    def value(self, student: Tensor, teacher: Tensor, T: float, memo: dict | None = None) -> Tensor:
        """The soft-target term computed this way; memo lets many variants share their softmaxes."""
        memo = {} if memo is None else memo

        def side(name: str, form: str) -> Tensor:
            scaled = self.scaled in ("both", name)
            if (name, scaled, form) not in memo:
                logits = student if name == "student" else teacher.detach()
                logits = logits / T if scaled else logits
                normalise = {"log-probs": F.log_softmax, "probs": F.softmax}.get(form)
                memo[name, scaled, form] = normalise(logits, dim=-1) if normalise else logits
            return memo[name, scaled, form]

        target, other = ("student", "teacher") if self.reversed else ("teacher", "student")
        log_q = side(target, "log-probs")
        per_class = log_q.exp() * ((log_q if self.entropy_removed else 0.0) - side(other, self.fed))
        batch, classes = student.shape
        value = per_class.sum() / {"batchmean": batch, "mean": batch * classes, "sum": 1}[self.reduction]
        return value * T**2 if self.t_squared else value


_WEIGHTINGS: dict[str, Callable[[float], tuple[float, float]]] = {
    "lam * ce + (1 - lam) * kd": lambda lam: (lam, 1.0 - lam),  # the contract
    "(1 - lam) * ce + lam * kd": lambda lam: (1.0 - lam, lam),
    "ce + 0.5 * kd": lambda lam: (1.0, 0.5),
    "ce + kd": lambda lam: (1.0, 1.0),
    "0.5 * ce + 0.5 * kd": lambda lam: (0.5, 0.5),
    "0.75 * ce + 0.25 * kd": lambda lam: (0.75, 0.25),  # the PyTorch tutorial's call (ce_loss_weight, soft weight)
    "kd": lambda lam: (0.0, 1.0),  # the soft term alone (TRL's generalized_jsd_loss, torchdistill without alpha)
}
_FIXED_WEIGHTS = {"ce + 0.5 * kd": (1.0, 0.5), "ce + kd": (1.0, 1.0), "0.5 * ce + 0.5 * kd": (0.5, 0.5),
                  "0.75 * ce + 0.25 * kd": (0.75, 0.25)}


class _Hypothesis(NamedTuple):
    weighting: str
    ce_scaled: bool  # the hard-label CE computed on student_logits / T
    kd: _KDVariant

    def terms(self, student: Tensor, teacher: Tensor, labels: Tensor, T: float) -> tuple[Tensor, Tensor]:
        ce = F.cross_entropy(student / T if self.ce_scaled else student, labels)
        return ce, self.kd.value(student, teacher, T)


def _all_hypotheses() -> list[_Hypothesis]:
    options = itertools.product(
        ("both", "student", "teacher", "neither"), ("log-probs", "probs", "logits"),
        ("batchmean", "mean", "sum"), (True, False), (False, True), (True, False))
    variants = [_KDVariant(*choice) for choice in options]
    # where the CE has no weight ("kd"), whether it was computed on scaled logits cannot show: not a hypothesis
    return [_Hypothesis(w, c, v) for w in _WEIGHTINGS for c in ((False,) if w == "kd" else (False, True))
            for v in variants]


@lru_cache(maxsize=1)
def _prediction_table() -> tuple[list[_Hypothesis], np.ndarray]:
    """Every hypothesis, fewest mistakes first, with its value on each (probe, lam)."""
    hypotheses = sorted(_all_hypotheses(), key=lambda h: len(_explain(h)))  # stable: correct options first
    table = np.empty((len(hypotheses), len(_PROBES) * len(_LAMS)))
    with torch.no_grad():
        for p, probe in enumerate(_PROBES):
            student, teacher, labels, T = probe
            ce_values = {scaled: float(F.cross_entropy(student / T if scaled else student, labels))
                         for scaled in (False, True)}
            kd_values: dict[_KDVariant, float] = {}
            memo: dict = {}
            for row, h in enumerate(hypotheses):
                if h.kd not in kd_values:
                    kd_values[h.kd] = float(h.kd.value(student, teacher, T, memo))
                for j, lam in enumerate(_LAMS):
                    w_ce, w_kd = _WEIGHTINGS[h.weighting](lam)
                    table[row, p * len(_LAMS) + j] = w_ce * ce_values[h.ce_scaled] + w_kd * kd_values[h.kd]
    return hypotheses, table


def _best_explanation(observed: np.ndarray) -> _Hypothesis | None:
    """The hypothesis with the fewest mistakes that reproduces every observed value, if any."""
    hypotheses, table = _prediction_table()
    close = np.isclose(table, observed, rtol=_RTOL, atol=1e-9).all(axis=1)
    matches = np.flatnonzero(close)
    return hypotheses[matches[0]] if len(matches) else None


# --- plain-language explanations of each mistake ---


def _explain(h: _Hypothesis) -> list[Finding]:
    """The findings a hypothesis stands for; an empty list for the correct loss."""
    T, classes = _PROBES[0].temperature, _PROBES[0].student.shape[1]
    kd = h.kd
    found = []
    if h.weighting == "(1 - lam) * ce + lam * kd":
        found.append(Finding(
            "weights-swapped",
            tr("lam weights the soft-target (KD) term, and 1 − lam the hard-label CE. In kdlab, lam is the weight "
               "on the hard labels: L = lam·CE + (1 − lam)·T²·KL. Papers and libraries disagree on which term gets "
               "λ, so always check; with the swap, lam=0.9 trains almost only on the teacher, not the labels."),
            "return lam * ce + (1 - lam) * kd"))
    elif h.weighting != "lam * ce + (1 - lam) * kd":
        found.append(Finding(
            "lam-ignored",
            tr("The loss does not depend on lam: it computes {weighting} whatever lam you pass, so moving the λ "
               "slider changes nothing.",
               weighting=h.weighting),
            tr("Weight the two terms with lam: return lam * ce + (1 - lam) * kd")))
    if h.ce_scaled:
        found.append(Finding(
            "ce-temperature",
            tr("The hard-label cross-entropy is computed on the temperature-scaled student logits (student_logits "
               "/ T). The hard labels belong at T = 1, where the student is evaluated and used. This often comes "
               "from dividing the logits by T in place and reusing them."),
            tr("F.cross_entropy(student_logits, labels) on the unscaled logits; put student_logits / T in a new "
               "variable used only by the KD term.")))
    if kd.scaled == "neither":
        detail = (tr("T only appears in the T² factor") if kd.t_squared
                  else tr("the loss is the same at every temperature"))
        found.append(Finding(
            "no-temperature",
            tr("The logits are not divided by the temperature before the softmaxes ({detail}). The teacher's "
               "distribution stays as sharp as at T = 1, so its 'dark knowledge' about similar classes stays "
               "hidden.",
               detail=detail),
            tr("Use F.log_softmax(student_logits / T, dim=-1) and F.softmax(teacher_logits / T, dim=-1), and "
               "multiply the KL by T ** 2.")))
    elif kd.scaled != "both":
        only, other = (tr("student"), tr("teacher")) if kd.scaled == "student" else (tr("teacher"), tr("student"))
        found.append(Finding(
            "temperature-one-side",
            tr("Only the {only}'s logits are divided by T; the {other}'s are not. The two distributions are "
               "compared at different temperatures, so the student is pulled towards the wrong target.",
               only=only,
               other=other),
            tr("Divide both: F.softmax(teacher_logits / T, dim=-1) and F.log_softmax(student_logits / T, dim=-1).")))
    if kd.fed != "log-probs":
        what = tr("probabilities (softmax)") if kd.fed == "probs" else tr("raw logits")
        found.append(Finding(
            "not-log-probs",
            tr("The KL divergence is fed {what} where it needs log-probabilities. F.kl_div and nn.KLDivLoss expect "
               "their input (the student side) as log-probabilities and their target as probabilities; given "
               "anything else they silently return a wrong number.",
               what=what),
            tr("Pass F.log_softmax(student_logits / T, dim=-1) as the input and F.softmax(teacher_logits / T, "
               "dim=-1) as the target (or log-probabilities for both, with log_target=True).")))
    if kd.reversed:
        found.append(Finding(
            "kl-reversed",
            tr("This is the reverse KL, KL(p_S ‖ p_T), not this loss's direction KL(p_T ‖ p_S). Reverse KL is a "
               "deliberate choice elsewhere (it is mode-seeking; language-model distillation such as MiniLLM uses "
               "it), but Hinton's loss, and kdlab.distillation_loss, take the teacher's distribution as the "
               "target: it must be F.kl_div's second argument."),
            ("F.kl_div(F.log_softmax(student_logits / T, dim=-1), F.softmax(teacher_logits / T, dim=-1), "
             "reduction='batchmean')")))
    if not kd.entropy_removed:
        found.append(Finding(
            "cross-entropy-not-kl",
            tr("You computed the soft cross-entropy −Σ p_T·log p_S instead of the KL divergence. They differ by "
               "the teacher's entropy, a constant: the gradients (and so training) are the same, but the loss "
               "value is not the one kdlab reports, so numbers can't be compared."),
            tr("Subtract the teacher's entropy, or use F.kl_div(..., reduction='batchmean').")))
    if kd.reduction == "mean":
        found.append(Finding(
            "mean-not-batchmean",
            tr("The KL is averaged over the classes as well as the batch (reduction='mean', the default of "
               "nn.KLDivLoss and F.kl_div), so it is num_classes times too small ({classes}× here, 77× on "
               "Banking77).",
               classes=classes),
            tr("Use reduction='batchmean': sum over classes, average over examples.")))
    elif kd.reduction == "sum":
        found.append(Finding(
            "sum-not-batchmean",
            tr("The KL is summed over the batch instead of averaged (reduction='sum'), so it grows with the batch "
               "size and outweighs the cross-entropy, which is averaged."),
            tr("Use reduction='batchmean': sum over classes, average over examples.")))
    if not kd.t_squared and kd.scaled != "neither":
        found.append(Finding(
            "missing-t-squared",
            tr("The soft-target term is not multiplied by T² ({t_squared:g} at T={T}). Its gradients shrink like 1/T², "
               "so the higher the temperature, the less the student hears from the teacher.",
               t_squared=T**2,
               T=T),
            tr("Multiply the KL term by temperature ** 2 (Hinton et al. 2015, section 2).")))
    return found


# --- a mistake that is some library's or tutorial's convention: name the source and the kdlab setting ---

# The setting each translation is shown at: notebook 03's defaults and Banking77's class count.
_EXAMPLE_T, _EXAMPLE_LAM, _EXAMPLE_CLASSES = 4.0, 0.5, 77


def _convention(h: _Hypothesis) -> tuple[str, str] | None:
    """(the finding it belongs to, a sentence) when the hypothesis is exactly a known source's convention."""
    from dataclasses import replace

    from kdlab.conventions import SOURCES, convert_recipe

    right = _KDVariant()
    if h.ce_scaled:
        return None
    T, lam, C = _EXAMPLE_T, _EXAMPLE_LAM, _EXAMPLE_CLASSES
    if h.weighting == "lam * ce + (1 - lam) * kd" and h.kd == replace(right, t_squared=False):
        code, source, what = "missing-t-squared", "keras-classic", tr("alpha (your lam) weighs the CE, the KL has no T²")
        call, settings = "'keras-classic', alpha=lam, temperature=T", {"alpha": lam, "temperature": T}
    elif h.weighting == "lam * ce + (1 - lam) * kd" and h.kd == replace(right, reduction="mean"):
        code, source, what = "mean-not-batchmean", "kldivloss-mean", tr("the KL is divided by the class count too")
        call, settings = "'kldivloss-mean', temperature=T, lam=lam, num_classes=C", {"temperature": T, "lam": lam}
    elif h.weighting == "lam * ce + (1 - lam) * kd" and h.kd == replace(right, entropy_removed=False):
        code, source = "cross-entropy-not-kl", "soft-cross-entropy"
        what = tr("the soft cross-entropy in place of the KL (the PyTorch tutorial did this until a later revision)")
        call, settings = "'soft-cross-entropy', temperature=T, lam=lam", {"temperature": T, "lam": lam}
    elif h.weighting in _FIXED_WEIGHTS and h.kd == right:
        ce_w, kd_w = _FIXED_WEIGHTS[h.weighting]
        code, source = "lam-ignored", "pytorch-tutorial"
        what = tr("two fixed weights, ce_loss_weight={ce_w:g} and soft_target_loss_weight={kd_w:g}, in place of lam",
                  ce_w=ce_w, kd_w=kd_w)
        call = f"'pytorch-tutorial', T=T, soft_target_loss_weight={kd_w:g}, ce_loss_weight={ce_w:g}"
        settings = {"T": T, "soft_target_loss_weight": kd_w, "ce_loss_weight": ce_w}
    elif h.weighting == "kd" and h.kd == replace(right, t_squared=False):
        code, source = "lam-ignored", "trl"
        what = tr("the forward KL alone, without T² and without the CE (generalized_jsd_loss with beta=0)")
        call, settings = "'trl', beta=0, temperature=T", {"beta": 0.0, "temperature": T}
    else:
        return None
    spec, recipe = SOURCES[source], convert_recipe(source, num_classes=C, **settings)
    shown = f"T = {T:g}, lam = {lam:g}" + (tr(" and {C} classes", C=C) if source == "kldivloss-mean" else "")
    if source == "pytorch-tutorial":
        shown = f"T = {T:g}"
    factor = (tr("with the same gradient, and a value higher by a constant, (1 − lam)·T²·H(p_T)")
              if recipe.factor is None else tr("and its value is {factor:.4g} times kdlab's", factor=recipe.factor))
    return code, tr(
        " This is the convention of {title} (source and version: kdlab.conventions.SOURCES[{source!r}]): {what}. "
        "kdlab.convert_recipe({call}) translates it: at {shown} it trains in the direction of "
        "kdlab.distillation_loss(..., temperature={temperature:g}, lam={lam:.4g}), {factor}.",
        title=spec.title, source=source, what=what, call=call, shown=shown, temperature=recipe.temperature,
        lam=recipe.lam, factor=factor)


def _with_convention(h: _Hypothesis) -> list[Finding]:
    """_explain(h), with the matching source and its kdlab setting added to the finding it explains."""
    found = _explain(h)
    named = _convention(h)
    if named is None:
        return found
    code, sentence = named
    return [Finding(f.code, f.message + sentence, f.fix) if f.code == code else f for f in found]


# --- the checker ---


def check_distillation_loss(fn: LossFn, timeout_s: float = 10.0) -> list[Finding]:
    """Probe a learner's distillation loss and explain, in plain words, every mistake it shows.

    `fn` is called about a dozen times on tiny batches (a few rows, 3 to 7 classes), each call in a helper
    thread. `timeout_s` is the time all of those calls may take together (a correct loss needs milliseconds);
    when it runs out, the check stops and returns one "timed-out" finding, so an endless loop in `fn` cannot
    hang the notebook. Python cannot kill a thread: the checker asks the stuck one to stop (an exception raised
    inside it, which ends a pure-Python loop at once) and leaves it behind as a daemon thread. A loop that
    swallows that exception (a bare `except:`) keeps one CPU core busy until you restart the kernel.
    """
    timeout_s = check_positive_number(timeout_s, "timeout_s", "seconds your function may take over all probe calls")
    _prediction_table()  # the checker's own work is not charged to the learner's time budget
    deadline = _Deadline(timeout_s)
    with threads(1):  # the probes are tiny: more threads only add overhead (a lot, on a busy CPU)
        try:
            return _check(deadline.wrap(fn), deadline)
        except _TimedOut as late:
            return [late.finding]


def _check(fn: LossFn, deadline: _Deadline) -> list[Finding]:
    """Values first (which mistakes explain them?), then gradients, then the unlabeled batch."""
    observed = np.empty(len(_PROBES) * len(_LAMS))
    modified: set[str] = set()
    for p, probe in enumerate(_PROBES):
        for j, lam in enumerate(_LAMS):
            try:
                outcome = _run(fn, probe, lam)
                observed[p * len(_LAMS) + j] = _as_number(outcome.loss, probe, lam)
            except _BadOutput as bad:
                return [bad.finding]
            except Exception as error:  # the learner's code may raise anything
                return [_crash(error, _describe(probe, lam))]
            modified.update(outcome.modified)
    findings = []
    if modified:
        names = " and ".join(sorted(modified))
        findings.append(Finding(
            "modifies-inputs",
            tr("Your function changes {names} in place (e.g. logits /= T). The caller's tensors are altered, so "
               "whatever uses them next — the CE term, accuracy, the next epoch's cached teacher logits — sees "
               "scaled values.",
               names=names),
            tr("Write the scaled logits into a new variable: scaled = logits / T.")))
    if not np.isfinite(observed).all():
        return findings + [Finding(
            "not-finite",
            tr("Your function returns NaN or inf on an ordinary batch. A common cause is F.kl_div given "
               "log-probabilities as target without log_target=True (the log of a negative number), or "
               "torch.log(softmax(...)) reaching log(0)."),
            tr("Use F.log_softmax for log-probabilities; pass log_target=True if the target is log-probabilities."))]
    explanation = _best_explanation(observed)
    findings += _unexplained(fn, observed) if explanation is None else _with_convention(explanation)
    findings += _gradient_findings(fn, explanation, deadline)
    findings += _unlabeled_findings(fn, explanation)
    return sorted(findings, key=lambda f: CODES.index(f.code))


def _unexplained(fn: LossFn, observed: np.ndarray) -> list[Finding]:
    """Name what can still be named when no combination of known mistakes matches."""
    values = observed.reshape(len(_PROBES), len(_LAMS))
    found = []
    if np.isclose(values, values[:, :1], rtol=_RTOL).all():
        found.append(Finding(
            "lam-ignored",
            tr("The loss has the same value for lam=0, 0.3 and 1: lam is not used (other parts could not be "
               "checked until it is)."),
            tr("Weight the two terms with lam: return lam * ce + (1 - lam) * kd")))
    probe = _PROBES[0]
    try:
        hotter = _as_number(_run(fn, probe, 0.3, temperature=2 * probe.temperature).loss, probe, 0.3)
    except Exception:  # only a loss that ran at both temperatures can show it ignores them
        hotter = math.nan
    if math.isclose(hotter, values[0, 2], rel_tol=_RTOL):
        found.append(Finding(
            "no-temperature",
            tr("The loss has the same value at temperature={temperature} and {doubled}: the temperature argument is "
               "ignored (is T hard-coded inside?).",
               temperature=probe.temperature, doubled=2 * probe.temperature),
            tr("Use the temperature argument: divide both logits by it, multiply the KL by its square.")))
    if found:
        return found
    ce, kd = distillation_terms(probe.student, probe.teacher, probe.labels, probe.temperature)
    hint = ""
    if math.isclose(values[0, 1], float(ce), rel_tol=_RTOL):
        hint = tr(" At lam=1 it matches the hard-label CE, so look at the KD term (and how lam weights it).")
    elif math.isclose(values[0, 0], float(kd), rel_tol=_RTOL):
        hint = tr(" At lam=0 it matches the KD term, so look at the CE term (and how lam weights it).")
    return [Finding(
        "wrong-value",
        tr("On {inputs} your loss gives {at_0:.6g} at lam=0 and {at_1:.6g} at lam=1; the reference gives "
           "{kd:.6g} (the KD term alone) and {ce:.6g} (the CE alone). No combination of the common "
           "mistakes explains the difference.{hint}",
           inputs=_describe(probe, None), at_0=values[0, 0], at_1=values[0, 1], kd=float(kd), ce=float(ce), hint=hint),
        tr("Compare your terms one at a time with kdlab.distillation_terms on the same inputs."))]


def _close(a: Tensor, b: Tensor) -> bool:
    return float((a - b).norm()) <= _RTOL * float(b.norm()) + 1e-12


def _gradient_findings(fn: LossFn, explanation: _Hypothesis | None, deadline: _Deadline) -> list[Finding]:
    """Backpropagate once: the teacher must get no gradient, and the student the right one."""
    probe, lam = _PROBES[0], 0.3
    where = _describe(probe, lam) + ", teacher_logits requiring grad (a teacher run without torch.no_grad())"
    try:
        outcome = _run(fn, probe, lam, teacher_grad=True)
        if outcome.loss.requires_grad:  # backward runs the learner's code too (a custom autograd Function)
            deadline.run(outcome.loss.sum().backward, "the backward pass of " + where)
    except Exception as error:
        return [_crash(error, where)]
    found = []
    teacher_grad, student_grad = outcome.teacher_leaf.grad, outcome.student_leaf.grad
    if teacher_grad is not None and float(teacher_grad.abs().max()) > 0:
        found.append(Finding(
            "teacher-gradient",
            tr("Gradient flows back into the teacher's logits. In training this updates (or tries to update) the "
               "teacher and costs memory and time; the teacher should be a fixed target."),
            tr("Use teacher_logits.detach() inside the loss, and run the teacher in eval() mode under "
               "torch.no_grad().")))
    detached = Finding(
        "student-detached",
        tr("No gradient reaches the student's logits, so the student cannot learn from this loss. Something cuts "
           "the graph: .detach(), .item(), .data, torch.no_grad() or building a new tensor."),
        tr("Keep student_logits attached: only the teacher's logits should be detached."))
    if student_grad is None or float(student_grad.abs().max()) == 0:
        return found + [detached]
    if explanation is None:
        return found
    student = probe.student.clone().requires_grad_()
    ce, kd = explanation.terms(student, probe.teacher, probe.labels, probe.temperature)
    w_ce, w_kd = _WEIGHTINGS[explanation.weighting](lam)
    ce_grad, kd_grad = (torch.autograd.grad(term, student)[0] for term in (w_ce * ce, w_kd * kd))
    if _close(student_grad, ce_grad + kd_grad):
        return found
    for grad, cut, kept in ((ce_grad, tr("soft-target (KD)"), tr("hard-label CE")), (kd_grad, tr("hard-label CE"), "KD")):
        if _close(student_grad, grad):
            return found + [Finding(
                "student-detached",
                tr("Only the {kept} term sends gradient to the student: the {cut} term is computed from detached "
                   "student logits (.detach(), .data or torch.no_grad()), so it shows in the loss value but "
                   "teaches nothing.",
                   kept=kept,
                   cut=cut),
                detached.fix)]
    return found + [Finding(
        "wrong-gradient",
        tr("The loss value is as described, but its gradient with respect to the student's logits is not the "
           "gradient of that value: part of the computation bypasses autograd."),
        tr("Compute the loss only with differentiable torch operations on student_logits."))]


def _unlabeled_findings(fn: LossFn, explanation: _Hypothesis | None) -> list[Finding]:
    """labels=None marks an unlabeled transfer batch: the loss must be the KD term alone."""
    probe = _PROBES[0]
    fix = tr("if labels is None: return kd  (an unlabeled batch has only the teacher to learn from)")
    try:
        value = _as_number(_run(fn, probe, 0.5, labels=False).loss, probe, 0.5)
    except Exception as error:
        message = error.finding.message if isinstance(error, _BadOutput) else f"{type(error).__name__}: {error}"
        return [Finding(
            "unlabeled-batch",
            tr("With labels=None (an unlabeled transfer batch) your function fails: {message}", message=message),
            fix)]
    if explanation is None:
        return []
    with torch.no_grad():
        expected = float(explanation.kd.value(probe.student, probe.teacher, probe.temperature))
    if math.isclose(value, expected, rel_tol=_RTOL, abs_tol=1e-9):
        return []
    return [Finding(
        "unlabeled-batch",
        tr("With labels=None (an unlabeled transfer batch) your function returns {value:.6g}, but its own KD term "
           "is {expected:.6g}: without labels the loss should be the KD term alone, whatever lam is.",
           value=value,
           expected=expected),
        fix)]
