"""One loss, many spellings: translate a knowledge-distillation recipe from another library into kdlab (notebook 04).

Every source below computes some form of Hinton et al.'s loss, but they name and place the weights differently,
keep or drop T², reduce the KL differently, or take a cross-entropy instead of the KL. Most of them reduce to

    source_loss = a · CE(z_s, y) + b · T² · KL(p_T ‖ p_S)      (KL summed over classes, averaged over rows)

for two weights a, b ≥ 0 read off the source's settings. kdlab's loss is λ·CE + (1 − λ)·T²·KL, so the same
training direction is λ = a / (a + b), and the source's loss is (a + b) times kdlab's: the `factor`. A source
that cannot be written that way (a Jensen–Shannon mixture, a KL on raw logits) gets an explanation instead.

The registry `SOURCES` records, for each source, the formula as published, the version or commit it was read
from, which term each weight weighs, whether T² is there, the reduction and the KL direction. The transcriptions
in `source_loss` follow those formulas; tests/test_conventions.py checks them against Keras 3 and TRL themselves
where those are installed, and against hand computations in numpy for the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .checks import check_count, check_lam, check_non_negative_number, check_temperature
from .losses import distillation_loss

KERAS_EPSILON = 1e-7  # keras.losses.KLDivergence clips both distributions to [1e-7, 1] (keras.config.epsilon())


@dataclass(frozen=True)
class Recipe:
    """A source's recipe in kdlab's terms: the (temperature, lam) that trains in the same direction, and how far apart."""

    source: str
    settings: dict
    temperature: float | None  # kdlab's T; None when no kdlab setting gives the same gradient direction
    lam: float | None  # kdlab's λ, the weight on the hard-label CE
    factor: float | None  # source_loss = factor × kdlab_loss; None when that is not a constant (see explanation)
    gradient_factor: float | None  # ∇ source_loss = gradient_factor × ∇ kdlab_loss (equals factor unless an offset)
    same_gradient_direction: bool
    explanation: str

    def kdlab_loss(self, student_logits: Tensor, teacher_logits: Tensor, labels: Tensor | None) -> Tensor:
        """kdlab.distillation_loss at this recipe's (temperature, lam): the loss to train with instead."""
        if not self.same_gradient_direction:
            raise ValueError(f"the {self.source!r} recipe has no kdlab equivalent: {self.explanation}")
        return distillation_loss(student_logits, teacher_logits, labels, self.temperature, self.lam)


@dataclass(frozen=True)
class Source:
    """One implementation of the KD loss: where it comes from, its settings and what each weighs."""

    name: str
    title: str
    version: str  # the exact version, commit or permalink the formula was read from
    formula: str  # as published, in the source's own names
    weights: str  # the weight names and which term each weighs
    t_squared: str
    reduction: str
    kl_direction: str
    implementation: str  # "library" (tested against it) or "transcribed" (our code, from the formula)
    defaults: dict = field(default_factory=dict)  # every setting the source has, with its default (None: required)
    note: str = ""


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source(
        "kdlab", "kdlab.distillation_loss", "this repository (DESIGN.md, 'The loss — contract')",
        "lam·CE + (1 − lam)·T²·KL(p_T ‖ p_S)",
        "lam → CE, 1 − lam → KL", "yes", "batchmean",
        "KL(p_T ‖ p_S)", "library", {"temperature": 4.0, "lam": 0.5}),
    Source(
        "keras", "Keras 3 keras.distillation (Distiller + LogitsDistillation)",
        "keras==3.15.1: keras/src/distillation/distiller.py (Distiller.compute_loss) and distillation_loss.py "
        "(LogitsDistillation.compute_loss)",
        "student_loss_weight·CE + (1 − student_loss_weight)·Σ_k w_k·T²·mean_rows KLDivergence(softmax(t/T), softmax(s/T))",
        "student_loss_weight → CE, 1 − it → KL (× distillation_loss_weights)",
        "only with loss=KLDivergence()",
        "batchmean (probs clipped at 1e-7)", "KL(p_T ‖ p_S)", "library",
        {"student_loss_weight": 0.5, "temperature": 3.0, "loss": "kl_divergence", "distillation_loss_weights": (1.0,)},
        "The default loss='kl_divergence' resolves to the function keras.losses.kl_divergence, not the class, so "
        "LogitsDistillation skips its softmax + T² branch and takes the KL of the raw scaled logits clipped to "
        "[1e-7, 1]: no kdlab equivalent. Pass loss='KLDivergence()' here (keras.losses.KLDivergence() in Keras). "
        "distillation_loss_weights only counts when distillation_losses is a list: a single, bare "
        "LogitsDistillation gets weight 1.0 whatever you pass."),
    Source(
        "keras-classic", "keras.io example 'Knowledge Distillation' (Kenneth Borup, created 2020/09/01)",
        "keras-team/keras-io examples/vision/knowledge_distillation.py at commit "
        "1da2fdefe1b108145dcdb0794b60195cda85c38d (the 2020/09/01 original)",
        "alpha·student_loss_fn(y, s) + (1 − alpha)·KLDivergence(softmax(t/T), softmax(s/T))",
        "alpha → CE, 1 − alpha → KL", "no", "batchmean (probs clipped at 1e-7)",
        "KL(p_T ‖ p_S)", "transcribed", {"alpha": 0.1, "temperature": 3.0},
        "A later revision (commit 501fb4cbe62e5b5c434393f512a452ef833640a1) multiplies the KL by T²; that "
        "revision is the 'nlp-with-transformers' convention (lam = alpha, factor 1). The example itself trains "
        "with alpha=0.1, temperature=10."),
    Source(
        "pytorch-tutorial", "PyTorch tutorial 'Knowledge Distillation Tutorial' (train_knowledge_distillation)",
        "pytorch/tutorials beginner_source/knowledge_distillation_tutorial.py at commit "
        "c53e7d4efc0e39e455c531d21ec7db28ba220214",
        "soft_target_loss_weight·T²·Σ p_T(log p_T − log p_S)/batch + ce_loss_weight·CE",
        "ce_loss_weight → CE, soft_target_loss_weight → KL (two weights)", "yes",
        "batchmean", "KL(p_T ‖ p_S)", "transcribed",
        {"T": 2.0, "soft_target_loss_weight": 0.25, "ce_loss_weight": 0.75},
        "The defaults are the tutorial's own call (T=2, 0.25, 0.75); the function has none. An earlier revision "
        "(commit 035c541fa706ab2b1eca57e0625b5bbdca5e04cb) used the soft cross-entropy −Σ p_T log p_S instead of "
        "the KL: same gradient, value higher by the teacher's entropy."),
    Source(
        "nlp-with-transformers", "NLP with Transformers, chapter 8: DistillationTrainer",
        "nlp-with-transformers/notebooks 08_model-compression.ipynb at commit "
        "1019f8b5662d94a58fd4b46b181d6521d9cccf95",
        "alpha·loss_ce + (1 − alpha)·T²·KLDivLoss(reduction='batchmean')(log_softmax(s/T), softmax(t/T))",
        "alpha → CE, 1 − alpha → KL", "yes", "batchmean",
        "KL(p_T ‖ p_S)", "transcribed", {"alpha": 0.5, "temperature": 2.0},
        "Defaults from DistillationTrainingArguments(alpha=0.5, temperature=2.0)."),
    Source(
        "torchdistill", "torchdistill KDLoss (mid-level loss)",
        "torchdistill==1.1.5 torchdistill/losses/mid_level.py, class KDLoss (read from the wheel; transcribed, "
        "not installed: it pulls a torchvision that upgrades torch)",
        "alpha·CE + beta·T²·KLDivLoss(reduction)(log_softmax(s/T), softmax(t/T)); only the KL, without T², "
        "when alpha is None or 0 or there are no targets",
        "alpha → CE, beta (default 1 − alpha) → KL",
        "yes if alpha > 0, no if alpha is None or 0",
        "reduction= (default batchmean)", "KL(p_T ‖ p_S)", "transcribed",
        {"temperature": None, "alpha": None, "beta": None, "reduction": "batchmean"},
        "KDLoss(alpha=None, beta=None) raises TypeError in torchdistill (1 − None)."),
    Source(
        "trl", "TRL GKDTrainer.generalized_jsd_loss",
        "trl==1.16.0 trl/experimental/gkd/gkd_trainer.py, GKDTrainer.generalized_jsd_loss (static method)",
        "beta = 0: KL(p_T ‖ p_S); beta = 1: KL(p_S ‖ p_T); else β·KL(p_T‖M) + (1 − β)·KL(p_S‖M), "
        "M = β·p_T + (1 − β)·p_S; logits divided by T, no T²",
        "no CE; beta mixes the two KL directions", "no",
        "batchmean (per kept position)", "β=0 forward, β=1 reverse, else JSD", "library",
        {"beta": 0.5, "temperature": 1.0, "reduction": "batchmean"},
        "GKDTrainer's lmbda is not a loss weight: it is the fraction of batches made of the student's own samples."),
    Source(
        "kldivloss-mean", "the classic bug: nn.KLDivLoss(reduction='mean')",
        "torch.nn.KLDivLoss documentation: reduction='mean' averages over every element, 'batchmean' over rows",
        "lam·CE + (1 − lam)·T²·KLDivLoss(reduction='mean')(log_softmax(s/T), softmax(t/T))",
        "lam → CE, 1 − lam → KL", "yes", "mean over rows × classes",
        "KL(p_T ‖ p_S)", "transcribed", {"temperature": 4.0, "lam": 0.5},
        "Needs num_classes: the soft term is divided by it."),
    Source(
        "soft-cross-entropy", "the classic slip: soft cross-entropy −Σ p_T log p_S instead of the KL",
        "Hinton et al. 2015 (https://arxiv.org/abs/1503.02531) state the loss as a cross-entropy with soft targets",
        "lam·CE + (1 − lam)·T²·mean_rows(−Σ p_T log p_S)",
        "lam → CE, 1 − lam → soft CE", "yes", "batchmean",
        "soft CE = KL(p_T ‖ p_S) + H(p_T)", "transcribed", {"temperature": 4.0, "lam": 0.5},
        "Same gradient as kdlab; the value is higher by (1 − lam)·T²·H(p_T), a constant that depends on the teacher."),
)}


def convert_recipe(source: str, *, num_classes: int | None = None, **settings) -> Recipe:
    """Translate a recipe from another library into kdlab's (temperature, lam), with the factor between the losses (notebook 04).

    `settings` are the source's own names (e.g. convert_recipe("keras-classic", alpha=0.1, temperature=10));
    a setting the source does not have is refused. `num_classes` is the problem's class count, needed only
    where a reduction divides by it (reduction='mean').
    """
    spec = _source(source)
    unknown = sorted(set(settings) - set(spec.defaults))
    if unknown:
        have = ", ".join(spec.defaults) or "none"
        raise ValueError(f"{source!r} has no setting {', '.join(map(repr, unknown))}; its settings are: {have}")
    missing = [name for name, default in spec.defaults.items() if default is None and name not in settings
               and not (source == "torchdistill" and name in ("alpha", "beta"))]
    if missing:
        raise ValueError(f"{source!r} needs {', '.join(missing)} (it has no default there)")
    values = {**spec.defaults, **settings}
    if num_classes is not None:
        num_classes = check_count(num_classes, "num_classes", minimum=2, hint="the number of classes")
    return _CONVERTERS[source](values, num_classes)


def source_loss(source: str, student_logits: Tensor, teacher_logits: Tensor, labels: Tensor | None,
                **settings) -> Tensor:
    """The source's own loss on your logits, as its formula reads (transcribed), to compare values.

    Notebook 04 shows its values through `comparison_table`.

    labels are class indices (trl has no CE term, so it ignores them). Computed in float64 like kdlab's loss.
    """
    spec = _source(source)
    convert_recipe(source, num_classes=student_logits.shape[-1], **settings)  # same refusals, same checks
    v = {**spec.defaults, **settings}
    s, t = student_logits.double(), teacher_logits.detach().double()
    C = s.shape[-1]

    def ce() -> Tensor:
        return F.cross_entropy(s, labels) if labels is not None else s.new_zeros(())

    def kl(T: float, reduction: str = "batchmean") -> Tensor:
        log_p_s, log_p_t = F.log_softmax(s / T, dim=-1), F.log_softmax(t / T, dim=-1)
        total = F.kl_div(log_p_s, log_p_t, reduction="sum", log_target=True)
        # what nn.KLDivLoss(reduction=...) returns in torch 2.13 ('mean' divides by rows × classes)
        return total / {"batchmean": s.shape[0], "mean": s.numel(), "sum": 1}[reduction]

    def keras_kl(y_true: Tensor, y_pred: Tensor) -> Tensor:  # keras.losses.kl_divergence, then mean over rows
        y_true, y_pred = y_true.clamp(KERAS_EPSILON, 1.0), y_pred.clamp(KERAS_EPSILON, 1.0)
        return (y_true * torch.log(y_true / y_pred)).sum(-1).mean()

    if source in ("kdlab", "kldivloss-mean", "soft-cross-entropy"):
        T, lam = v["temperature"], v["lam"]
        if source == "kdlab":
            return distillation_loss(s, t, labels, T, lam)
        if source == "kldivloss-mean":
            soft = kl(T, "mean")
        else:
            soft = -(F.softmax(t / T, -1) * F.log_softmax(s / T, -1)).sum(-1).mean()
        return lam * ce() + (1 - lam) * T**2 * soft
    if source == "keras":
        T, w, weight = v["temperature"], v["student_loss_weight"], float(v["distillation_loss_weights"][0])
        if v["loss"] == "KLDivergence()":
            soft = keras_kl(F.softmax(t / T, -1), F.softmax(s / T, -1)) * T**2
        else:  # the default string: keras.losses.kl_divergence on the raw scaled logits, no T²
            soft = keras_kl(t / T, s / T)
        return w * ce() + (1 - w) * weight * soft
    if source == "keras-classic":
        T, alpha = v["temperature"], v["alpha"]
        return alpha * ce() + (1 - alpha) * keras_kl(F.softmax(t / T, -1), F.softmax(s / T, -1))
    if source == "pytorch-tutorial":
        T = v["T"]
        p_t, log_p_s = F.softmax(t / T, -1), F.log_softmax(s / T, -1)
        soft = (p_t * (p_t.log() - log_p_s)).sum() / s.shape[0] * T**2
        return v["soft_target_loss_weight"] * soft + v["ce_loss_weight"] * ce()
    if source == "nlp-with-transformers":
        T, alpha = v["temperature"], v["alpha"]
        return alpha * ce() + (1 - alpha) * T**2 * kl(T)
    if source == "torchdistill":
        T, alpha, reduction = v["temperature"], v["alpha"], v["reduction"]
        soft = kl(T, reduction)
        if alpha is None or alpha == 0 or labels is None:
            return soft
        beta = 1 - alpha if v["beta"] is None else v["beta"]
        return alpha * F.cross_entropy(s, labels, reduction="mean" if reduction == "batchmean" else reduction) \
            + beta * T**2 * soft
    if source == "trl":
        T, beta, reduction = v["temperature"], v["beta"], v["reduction"]
        log_p_s, log_p_t = F.log_softmax(s / T, dim=-1), F.log_softmax(t / T, dim=-1)
        if beta == 0:
            per_class = F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True)
        elif beta == 1:
            per_class = F.kl_div(log_p_t, log_p_s, reduction="none", log_target=True)
        else:
            log_m = torch.logsumexp(torch.stack([log_p_s + math.log1p(-beta), log_p_t + math.log(beta)]), dim=0)
            per_class = (beta * F.kl_div(log_m, log_p_t, reduction="none", log_target=True)
                         + (1 - beta) * F.kl_div(log_m, log_p_s, reduction="none", log_target=True))
        return {"batchmean": per_class.sum() / s.shape[0], "sum": per_class.sum(), "mean": per_class.mean()}[reduction]
    raise AssertionError(source)  # every registered source is handled above


def comparison_table(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor | None,
                     recipes: Sequence[tuple[str, dict]] | dict[str, dict]):
    """One row per recipe: weights, T², reduction, KL direction, its value on these logits and kdlab's setting (notebook 04).

    `recipes` is a list of (source, settings) pairs, e.g. [("keras-classic", {"alpha": 0.1, "temperature": 10})],
    or a dict {source: settings}. `value ÷ kdlab` is the source's value over kdlab's at the converted setting.
    """
    import pandas as pd

    rows = []
    for source, settings in (recipes.items() if isinstance(recipes, dict) else recipes):
        spec = _source(source)
        recipe = convert_recipe(source, num_classes=student_logits.shape[-1], **settings)
        value = float(source_loss(source, student_logits, teacher_logits, labels, **settings))
        kdlab_value = float(recipe.kdlab_loss(student_logits, teacher_logits, labels)) \
            if recipe.same_gradient_direction else math.nan
        rows.append({
            "source": source,
            "settings": ", ".join(f"{k}={_short(val)}" for k, val in settings.items()),
            "weights": spec.weights,
            "T²": spec.t_squared,
            "reduction": spec.reduction,
            "KL direction": spec.kl_direction,
            "value": value,
            "kdlab setting": (f"T={recipe.temperature:g}, λ={recipe.lam:.4g}" if recipe.same_gradient_direction
                              else "none"),
            "factor": math.nan if recipe.factor is None else recipe.factor,
            "value ÷ kdlab": value / kdlab_value if kdlab_value else math.nan,
        })
    return pd.DataFrame(rows)


def copied_recipe(weight_on_labels: float, temperature: float, num_classes: int):
    """What 'weight w on the labels, temperature T' becomes in each source's own names, in kdlab's terms (notebook 04).

    Each row spells the same two numbers in one source (the PyTorch tutorial keeps its soft weight, 0.25, and TRL
    has no label weight at all) and gives the kdlab λ it really trains with and the teacher's share 1 − λ.
    """
    import pandas as pd

    w, T = check_lam(weight_on_labels, "weight_on_labels"), check_temperature(temperature)
    spellings = [
        ("kdlab", {"lam": w, "temperature": T}),
        ("nlp-with-transformers", {"alpha": w, "temperature": T}),
        ("torchdistill", {"alpha": w, "temperature": T}),
        ("keras", {"student_loss_weight": w, "temperature": T, "loss": "KLDivergence()"}),
        ("keras", {"student_loss_weight": w, "temperature": T}),
        ("keras-classic", {"alpha": w, "temperature": T}),
        ("pytorch-tutorial", {"T": T, "ce_loss_weight": w}),
        ("kldivloss-mean", {"lam": w, "temperature": T}),
        ("trl", {"beta": 0.0, "temperature": T}),
    ]
    rows = []
    for source, settings in spellings:
        recipe = convert_recipe(source, num_classes=num_classes, **settings)
        rows.append({"source": source, "settings": ", ".join(f"{k}={_short(v)}" for k, v in settings.items()),
                     "kdlab λ": recipe.lam if recipe.same_gradient_direction else math.nan,
                     "teacher's share 1 − λ": 1 - recipe.lam if recipe.same_gradient_direction else math.nan,
                     "factor": math.nan if recipe.factor is None else recipe.factor})
    return pd.DataFrame(rows)


def keras_distiller_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, **settings) -> float:
    """Keras 3's own Distiller.compute_loss on given logits (KERAS_BACKEND=torch), to check a row against it (notebook 04).

    Settings as for convert_recipe("keras", ...). Identity teacher and student models hand the logits through, so
    the number is Keras' loss on exactly these logits (computed in Keras' float32).
    """
    import os

    convert_recipe("keras", **settings)  # the same refusals before Keras is imported
    os.environ["KERAS_BACKEND"] = "torch"  # read once, when keras is first imported
    import keras

    if keras.backend.backend() != "torch":
        raise RuntimeError(f"keras was imported with the {keras.backend.backend()!r} backend; restart the kernel "
                           "and import kdlab.conventions.keras_distiller_loss before anything imports keras")
    v = {**SOURCES["keras"].defaults, **settings}
    classes = student_logits.shape[-1]
    identity = lambda name: keras.Sequential([keras.Input((classes,)), keras.layers.Identity()], name=name)
    loss = keras.losses.KLDivergence() if v["loss"] == "KLDivergence()" else v["loss"]
    distiller = keras.distillation.Distiller(
        teacher=identity("teacher"), student=identity("student"),
        # a list, so that distillation_loss_weights counts (a bare LogitsDistillation gets weight 1.0)
        distillation_losses=[keras.distillation.LogitsDistillation(temperature=v["temperature"], loss=loss)],
        distillation_loss_weights=list(v["distillation_loss_weights"]), student_loss_weight=v["student_loss_weight"])
    distiller.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with torch.no_grad():
        value = distiller.compute_loss(x=teacher_logits.float(), y=labels, y_pred=student_logits.float())
    return float(value)


def spelling_race(features: Tensor, teacher_logits: Tensor, labels: Tensor, source: str, settings: dict, *,
                  optimizer: str, lr: float, steps: int = 60, seed: int = 0):
    """Train one linear student twice, on a source's loss and on its kdlab translation, and log kdlab's loss (notebook 04).

    Both runs start from the same weights and see the same full batch; their gradients point the same way and
    differ by the recipe's factor. With SGD the factor scales every step; Adam divides it out.
    """
    import pandas as pd

    from .checks import check_positive_number

    recipe = convert_recipe(source, num_classes=teacher_logits.shape[-1], **settings)
    if not recipe.same_gradient_direction:
        raise ValueError(f"{source!r} with these settings has no kdlab equivalent to race: {recipe.explanation}")
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    lr = check_positive_number(lr, "lr", "a learning rate, e.g. 0.5 for SGD, 0.01 for Adam")
    steps = check_count(steps, "steps")
    features, teacher_logits = features.double(), teacher_logits.double()
    start = torch.nn.Linear(features.shape[1], teacher_logits.shape[1]).double()
    with torch.no_grad():
        generator = torch.Generator().manual_seed(seed)
        start.weight.normal_(0.0, 0.01, generator=generator)
        start.bias.zero_()
    rows = []
    for spelling in ("source", "kdlab"):
        model = torch.nn.Linear(features.shape[1], teacher_logits.shape[1]).double()
        model.load_state_dict(start.state_dict())
        opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(model.parameters(), lr=lr)
        for step in range(steps + 1):
            logits = model(features)
            kdlab_value = recipe.kdlab_loss(logits, teacher_logits, labels)
            rows.append({"spelling": spelling, "optimizer": optimizer, "step": step, "kdlab loss": float(kdlab_value.detach())})
            if step == steps:
                break
            loss = (source_loss(source, logits, teacher_logits, labels, **settings) if spelling == "source"
                    else kdlab_value)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return pd.DataFrame(rows)


# --- the conversions: each reads its source's settings and reduces them to (a, b) or explains why not ---


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r}; known sources: {', '.join(SOURCES)}")
    return SOURCES[name]


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value) if isinstance(value, str) else str(value)


def _blend(source: str, settings: dict, T: float, ce_weight: float, kd_weight: float, how: str) -> Recipe:
    """source_loss = ce_weight·CE + kd_weight·T²·KL  →  kdlab λ = a/(a+b), factor a+b."""
    total = ce_weight + kd_weight
    if total <= 0:
        raise ValueError(f"{source!r}: with these settings both terms have weight 0, so there is no loss to train "
                         f"({how})")
    lam, factor = ce_weight / total, total
    text = (f"{how} So source = {ce_weight:.6g}·CE + {kd_weight:.6g}·T²·KL = {factor:.6g} × kdlab loss at "
            f"temperature={T:g}, lam={lam:.6g}.")
    return Recipe(source, settings, T, lam, factor, factor, True, text)


def _no_equivalent(source: str, settings: dict, why: str) -> Recipe:
    return Recipe(source, settings, None, None, None, None, False, why)


def _kdlab(v: dict, C: int | None) -> Recipe:
    T, lam = check_temperature(v["temperature"]), check_lam(v["lam"])
    return Recipe("kdlab", v, T, lam, 1.0, 1.0, True, "kdlab's own loss: nothing to convert.")


def _keras(v: dict, C: int | None) -> Recipe:
    T = check_temperature(v["temperature"])
    w = check_lam(v["student_loss_weight"], "student_loss_weight")
    weights = v["distillation_loss_weights"]
    if not isinstance(weights, (list, tuple)) or len(weights) != 1:
        raise ValueError("distillation_loss_weights must be a list with one weight per distillation loss; "
                         f"here one LogitsDistillation, e.g. [1.0], got {weights!r}")
    weight = check_non_negative_number(weights[0], "distillation_loss_weights[0]")
    if v["loss"] == "kl_divergence":
        return _no_equivalent("keras", v, (
            "With the default loss='kl_divergence', Keras 3.15.1 resolves the string to the function "
            "keras.losses.kl_divergence, so LogitsDistillation's isinstance(loss, KLDivergence) branch (softmax "
            "+ T²) is skipped: the KL is taken of the raw scaled logits clipped to [1e-7, 1], with no T². No "
            "kdlab setting trains that. Pass loss=keras.losses.KLDivergence() (here: loss='KLDivergence()')."))
    if v["loss"] != "KLDivergence()":
        raise ValueError(f"'keras' loss must be 'kl_divergence' (the default string) or 'KLDivergence()' (an "
                         f"instance of keras.losses.KLDivergence); got {v['loss']!r}")
    return _blend("keras", v, T, w, (1 - w) * weight, (
        "Keras' Distiller weighs the student (CE) loss by student_loss_weight and the distillation loss by "
        "1 − student_loss_weight (times distillation_loss_weights); LogitsDistillation with a KLDivergence() "
        "instance multiplies the KL by T²."))


def _keras_classic(v: dict, C: int | None) -> Recipe:
    T, alpha = check_temperature(v["temperature"]), check_lam(v["alpha"], "alpha")
    return _blend("keras-classic", v, T, alpha, (1 - alpha) / T**2, (
        "The classic keras.io example weighs the CE by alpha and the KL by 1 − alpha, without T², so its soft "
        f"term is T² = {T**2:g} times weaker than kdlab's at the same weight."))


def _pytorch_tutorial(v: dict, C: int | None) -> Recipe:
    T = check_temperature(v["T"], "T")
    soft = check_non_negative_number(v["soft_target_loss_weight"], "soft_target_loss_weight")
    ce = check_non_negative_number(v["ce_loss_weight"], "ce_loss_weight")
    return _blend("pytorch-tutorial", v, T, ce, soft, (
        "The PyTorch tutorial has two separate weights, ce_loss_weight on the CE and soft_target_loss_weight on "
        "the T²-scaled KL; they need not add up to 1, so the direction matches kdlab's only up to their sum."))


def _nlp_with_transformers(v: dict, C: int | None) -> Recipe:
    T, alpha = check_temperature(v["temperature"]), check_lam(v["alpha"], "alpha")
    return _blend("nlp-with-transformers", v, T, alpha, 1 - alpha, (
        "The book's DistillationTrainer weighs the CE by alpha and the T²-scaled batchmean KL by 1 − alpha: "
        "kdlab's loss with lam = alpha."))


def _torchdistill(v: dict, C: int | None) -> Recipe:
    T = check_temperature(v["temperature"])
    alpha, beta, reduction = v["alpha"], v["beta"], v["reduction"]
    if reduction not in ("batchmean", "mean", "sum"):
        raise ValueError(f"'torchdistill' reduction must be 'batchmean', 'mean' or 'sum' for a scalar loss, "
                         f"got {reduction!r}")
    if alpha is None and beta is None:
        raise ValueError("'torchdistill': KDLoss(alpha=None, beta=None) raises TypeError in torchdistill "
                         "(beta defaults to 1 − alpha); give alpha (the CE weight) or beta (the KL weight)")
    alpha = None if alpha is None else check_non_negative_number(alpha, "alpha")
    beta = (1 - alpha) if beta is None else check_non_negative_number(beta, "beta")
    per_class = {"batchmean": 1.0, "mean": None if C is None else 1.0 / C, "sum": None}[reduction]
    if reduction == "sum":
        return Recipe("torchdistill", v, T, 0.0 if not alpha else alpha / (alpha + beta), None,
                      None, True, "reduction='sum' sums CE and KL over the batch: the same direction as kdlab at "
                      "this lam, but the factor grows with the batch size (not a constant).")
    if per_class is None:
        raise ValueError("'torchdistill' with reduction='mean' divides the KL by the number of classes: pass "
                         "num_classes=... to convert_recipe")
    if not alpha:
        recipe = _blend("torchdistill", v, T, 0.0, per_class / T**2, (
            "With alpha None or 0, torchdistill's KDLoss returns the KL alone, without T² (and so does it "
            "whenever targets is None)."))
        return recipe
    return _blend("torchdistill", v, T, alpha, beta * per_class, (
        "torchdistill's KDLoss weighs the CE by alpha and the T²-scaled KL by beta (1 − alpha by default)"
        + (f"; reduction='mean' also divides the KL by the {C} classes." if reduction == "mean" else ".")))


def _trl(v: dict, C: int | None) -> Recipe:
    T = check_temperature(v["temperature"])
    beta = check_lam(v["beta"], "beta")
    reduction = v["reduction"]
    if reduction not in ("batchmean", "mean", "sum"):
        raise ValueError(f"'trl' reduction must be 'batchmean', 'mean' or 'sum' for a scalar loss, got {reduction!r}")
    if beta == 1:
        return _no_equivalent("trl", v, (
            "beta = 1 is the reverse KL(p_S ‖ p_T) (mode-seeking): kdlab.distillation_loss only has the forward "
            "KL(p_T ‖ p_S), so no setting trains in the same direction."))
    if beta != 0:
        return _no_equivalent("trl", v, (
            f"beta = {beta:g} is a generalised Jensen–Shannon divergence between p_T and p_S (a mixture M of "
            "both): not a weighted sum of CE and forward KL, so no kdlab setting trains in the same direction."))
    per_class = {"batchmean": 1.0, "mean": None if C is None else 1.0 / C, "sum": None}[reduction]
    how = ("beta = 0 is the forward KL(p_T ‖ p_S) without T² and without a CE term (TRL's labels only mask "
           "positions): a pure-KD recipe, kdlab's lam = 0 with the KL T² times smaller.")
    if reduction == "sum":
        return Recipe("trl", v, T, 0.0, None, None, True, how + " reduction='sum' makes the factor grow with "
                      "the number of positions (not a constant).")
    if per_class is None:
        raise ValueError("'trl' with reduction='mean' divides by the vocabulary size too: pass num_classes=...")
    return _blend("trl", v, T, 0.0, per_class / T**2, how)


def _kldivloss_mean(v: dict, C: int | None) -> Recipe:
    T, lam = check_temperature(v["temperature"]), check_lam(v["lam"])
    if C is None:
        raise ValueError("'kldivloss-mean' divides the KL by the number of classes: pass num_classes=...")
    return _blend("kldivloss-mean", v, T, lam, (1 - lam) / C, (
        f"nn.KLDivLoss(reduction='mean') averages over the {C} classes as well as the rows, so the soft term is "
        f"{C}× too small; 'batchmean' is the KL."))


def _soft_cross_entropy(v: dict, C: int | None) -> Recipe:
    T, lam = check_temperature(v["temperature"]), check_lam(v["lam"])
    return Recipe("soft-cross-entropy", v, T, lam, None, 1.0, True, (
        "−Σ p_T log p_S = KL(p_T ‖ p_S) + H(p_T): the teacher's entropy H(p_T) does not depend on the student, so "
        f"the gradient is exactly kdlab's at temperature={T:g}, lam={lam:g} (gradient factor 1), but the value is "
        f"higher by (1 − lam)·T²·H(p_T), a constant offset, not a factor."))


_CONVERTERS: dict[str, Callable[[dict, int | None], Recipe]] = {
    "kdlab": _kdlab, "keras": _keras, "keras-classic": _keras_classic, "pytorch-tutorial": _pytorch_tutorial,
    "nlp-with-transformers": _nlp_with_transformers, "torchdistill": _torchdistill, "trl": _trl,
    "kldivloss-mean": _kldivloss_mean, "soft-cross-entropy": _soft_cross_entropy,
}
