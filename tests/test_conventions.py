"""convert_recipe against the libraries themselves (Keras 3, TRL) and against numpy hand computations.

The claim under test: for a converted recipe, kdlab.distillation_loss at (temperature, lam) has a gradient with
respect to the student's logits parallel to the source's own loss gradient (cosine 1 within 1e-6), and the
source's value is `factor` times kdlab's — on random logits, over several seeds and recipes.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # must be set before keras is imported anywhere in this process

import numpy as np
import pytest
import torch

from kdlab.conventions import SOURCES, comparison_table, convert_recipe, source_loss

SEEDS = (0, 1, 2)


def batch(seed: int, rows: int = 6, classes: int = 7):
    generator = torch.Generator().manual_seed(seed)
    student = 2.0 * torch.randn(rows, classes, generator=generator, dtype=torch.float64)
    teacher = 3.0 * torch.randn(rows, classes, generator=generator, dtype=torch.float64)
    labels = torch.randint(classes, (rows,), generator=generator)
    return student, teacher, labels


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()))


def kdlab_grad(recipe, student, teacher, labels):
    leaf = student.clone().requires_grad_()
    value = recipe.kdlab_loss(leaf, teacher, labels)
    value.backward()
    return float(value.detach()), leaf.grad


def assert_same_direction(recipe, source_value, source_gradient, student, teacher, labels):
    kdlab_value, kdlab_gradient = kdlab_grad(recipe, student, teacher, labels)
    assert cosine(source_gradient, kdlab_gradient) == pytest.approx(1.0, abs=1e-6)
    ratio = source_gradient.norm() / kdlab_gradient.norm()
    assert float(ratio) == pytest.approx(recipe.gradient_factor, rel=1e-5)
    if recipe.factor is not None:
        assert source_value == pytest.approx(recipe.factor * kdlab_value, rel=1e-5)


# --- numpy hand computations of each published formula, written from the formula, not from kdlab ---


def np_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def np_ce(s, y):
    p = np_softmax(s)
    return float(np.mean(-np.log(p[np.arange(len(y)), y])))


def np_kl_rows(p, q):
    return (p * (np.log(p) - np.log(q))).sum(axis=-1)


def hand_value(source: str, s, t, y, **v) -> float:
    """The source's loss as its text reads, in numpy."""
    C = s.shape[1]
    if source == "pytorch-tutorial":
        T = v["T"]
        p_t, p_s = np_softmax(t / T), np_softmax(s / T)
        return v["soft_target_loss_weight"] * np.sum(p_t * (np.log(p_t) - np.log(p_s))) / len(s) * T**2 \
            + v["ce_loss_weight"] * np_ce(s, y)
    if source == "nlp-with-transformers":
        T, a = v["temperature"], v["alpha"]
        return a * np_ce(s, y) + (1 - a) * T**2 * np_kl_rows(np_softmax(t / T), np_softmax(s / T)).mean()
    if source == "keras-classic":
        T, a = v["temperature"], v["alpha"]
        p, q = (np.clip(np_softmax(x / T), 1e-7, 1) for x in (t, s))
        return a * np_ce(s, y) + (1 - a) * np_kl_rows(p, q).mean()
    if source == "torchdistill":
        T, a, b, red = v["temperature"], v.get("alpha"), v.get("beta"), v.get("reduction", "batchmean")
        rows = np_kl_rows(np_softmax(t / T), np_softmax(s / T))
        kl = {"batchmean": rows.mean(), "mean": rows.sum() / (len(s) * C)}[red]
        if not a:
            return kl
        return a * np_ce(s, y) + (1 - a if b is None else b) * T**2 * kl
    if source == "kldivloss-mean":
        T, lam = v["temperature"], v["lam"]
        return lam * np_ce(s, y) + (1 - lam) * T**2 * np_kl_rows(np_softmax(t / T), np_softmax(s / T)).sum() / (len(s) * C)
    if source == "soft-cross-entropy":
        T, lam = v["temperature"], v["lam"]
        p_t, p_s = np_softmax(t / T), np_softmax(s / T)
        return lam * np_ce(s, y) + (1 - lam) * T**2 * np.mean(-(p_t * np.log(p_s)).sum(-1))
    raise AssertionError(source)


TRANSCRIBED = [
    ("pytorch-tutorial", {"T": 2.0, "soft_target_loss_weight": 0.25, "ce_loss_weight": 0.75}),
    ("pytorch-tutorial", {"T": 5.0, "soft_target_loss_weight": 1.0, "ce_loss_weight": 0.5}),
    ("nlp-with-transformers", {"alpha": 0.5, "temperature": 2.0}),
    ("nlp-with-transformers", {"alpha": 0.12, "temperature": 7.0}),
    ("keras-classic", {"alpha": 0.1, "temperature": 10.0}),
    ("keras-classic", {"alpha": 0.6, "temperature": 1.5}),
    ("torchdistill", {"temperature": 4.0, "alpha": 0.5}),
    ("torchdistill", {"temperature": 3.0, "alpha": 0.3, "beta": 2.0}),
    ("torchdistill", {"temperature": 3.0, "alpha": 0.0}),
    ("torchdistill", {"temperature": 2.0, "alpha": 0.4, "reduction": "mean"}),
    ("kldivloss-mean", {"temperature": 4.0, "lam": 0.5}),
    ("soft-cross-entropy", {"temperature": 3.0, "lam": 0.25}),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("source, settings", TRANSCRIBED, ids=[f"{s}-{i}" for i, (s, _) in enumerate(TRANSCRIBED)])
def test_transcription_matches_the_hand_computation_and_converts(source, settings, seed):
    student, teacher, labels = batch(seed)
    expected = hand_value(source, student.numpy(), teacher.numpy(), labels.numpy(), **settings)
    leaf = student.clone().requires_grad_()
    value = source_loss(source, leaf, teacher, labels, **settings)
    assert float(value.detach()) == pytest.approx(expected, rel=1e-10)
    value.backward()
    recipe = convert_recipe(source, num_classes=student.shape[1], **settings)
    assert recipe.same_gradient_direction
    assert_same_direction(recipe, float(value.detach()), leaf.grad, student, teacher, labels)


def test_soft_cross_entropy_is_kdlab_plus_the_teacher_entropy_not_a_factor():
    student, teacher, labels = batch(4)
    T, lam = 3.0, 0.25
    recipe = convert_recipe("soft-cross-entropy", temperature=T, lam=lam)
    assert recipe.factor is None and recipe.gradient_factor == 1.0
    p_t = np_softmax(teacher.numpy() / T)
    entropy = float(np.mean(-(p_t * np.log(p_t)).sum(-1)))
    gap = float(source_loss("soft-cross-entropy", student, teacher, labels, temperature=T, lam=lam)
                - recipe.kdlab_loss(student, teacher, labels))
    assert gap == pytest.approx((1 - lam) * T**2 * entropy, rel=1e-10)
    assert "offset" in recipe.explanation and "not a factor" in recipe.explanation


def test_published_recipes_convert_to_the_hand_computed_setting():
    # keras.io (2020): alpha = 0.1, T = 10, no T²: a = 0.1, b = 0.9 / 100, lam = 0.1 / 0.109
    classic = convert_recipe("keras-classic", alpha=0.1, temperature=10)
    assert classic.lam == pytest.approx(0.1 / 0.109) and classic.factor == pytest.approx(0.109)
    # the PyTorch tutorial's call: ce 0.75, soft 0.25 → lam 0.75, factor 1; doubling both doubles the factor only
    tutorial = convert_recipe("pytorch-tutorial", T=2, soft_target_loss_weight=0.5, ce_loss_weight=1.5)
    assert (tutorial.temperature, tutorial.lam, tutorial.factor) == (2.0, pytest.approx(0.75), pytest.approx(2.0))
    # torchdistill without alpha: the KL alone, no T²
    bare = convert_recipe("torchdistill", temperature=4, beta=1.0)
    assert (bare.lam, bare.factor) == (0.0, pytest.approx(1 / 16))


# --- Keras 3 itself, on the torch backend ---


@pytest.fixture(scope="module")
def keras():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras was imported with the {keras.backend.backend()} backend; set KERAS_BACKEND=torch")
    return keras


def keras_total_loss(keras, student, teacher, labels, *, temperature, student_loss_weight, loss,
                     distillation_loss_weights=(1.0,)):
    """Keras' own Distiller.compute_loss on given logits: identity teacher and student models pass them through."""
    classes = student.shape[1]
    identity = lambda name: keras.Sequential([keras.Input((classes,)), keras.layers.Identity()], name=name)
    distiller = keras.distillation.Distiller(
        teacher=identity("teacher"), student=identity("student"),
        # a list: a single, bare LogitsDistillation makes Keras 3.15.1 ignore distillation_loss_weights (uses [1.0])
        distillation_losses=[keras.distillation.LogitsDistillation(
            temperature=temperature, loss=keras.losses.KLDivergence() if loss == "KLDivergence()" else loss)],
        distillation_loss_weights=list(distillation_loss_weights), student_loss_weight=student_loss_weight)
    distiller.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    leaf = student.clone().requires_grad_()
    value = distiller.compute_loss(x=teacher.clone(), y=labels, y_pred=leaf)
    value.backward()
    return float(value.detach()), leaf.grad  # Keras computes in float32 (its floatx): values agree to ~1e-7


KERAS_RECIPES = [
    {"temperature": 3.0, "student_loss_weight": 0.5},
    {"temperature": 1.0, "student_loss_weight": 0.1},
    {"temperature": 6.0, "student_loss_weight": 0.9},
    {"temperature": 2.5, "student_loss_weight": 0.3, "distillation_loss_weights": (0.5,)},
    {"temperature": 4.0, "student_loss_weight": 0.0},
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("settings", KERAS_RECIPES, ids=lambda s: "-".join(f"{v}" for v in s.values()))
def test_keras_distiller_with_a_kl_instance_trains_like_the_converted_kdlab_loss(keras, settings, seed):
    student, teacher, labels = batch(seed)
    settings = {**settings, "loss": "KLDivergence()"}
    value, gradient = keras_total_loss(keras, student, teacher, labels, **settings)
    assert source_loss("keras", student, teacher, labels, **settings).item() == pytest.approx(value, rel=1e-6)
    assert_same_direction(convert_recipe("keras", **settings), value, gradient, student, teacher, labels)


def test_keras_default_loss_string_has_no_kdlab_equivalent(keras):
    student, teacher, labels = batch(5)
    settings = {"temperature": 3.0, "student_loss_weight": 0.5}  # loss left at Keras' default "kl_divergence"
    value, gradient = keras_total_loss(keras, student, teacher, labels, loss="kl_divergence", **settings)
    assert source_loss("keras", student, teacher, labels, **settings).item() == pytest.approx(value, rel=1e-6)
    recipe = convert_recipe("keras", **settings)
    assert not recipe.same_gradient_direction and recipe.lam is None
    assert "kl_divergence" in recipe.explanation and "KLDivergence()" in recipe.explanation
    right = convert_recipe("keras", loss="KLDivergence()", **settings)
    assert cosine(gradient, kdlab_grad(right, student, teacher, labels)[1]) < 0.99  # not the loss it claims
    with pytest.raises(ValueError, match="no kdlab equivalent"):
        recipe.kdlab_loss(student, teacher, labels)


# --- TRL itself ---


@pytest.fixture(scope="module")
def trl_loss():
    pytest.importorskip("trl")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.gkd import GKDTrainer

    return GKDTrainer.generalized_jsd_loss


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("temperature", (1.0, 2.0, 5.0))
def test_trl_forward_kl_is_pure_kd_without_t_squared(trl_loss, temperature, seed):
    student, teacher, _ = batch(seed)
    leaf = student.clone().requires_grad_()
    value = trl_loss(leaf, teacher, beta=0.0, temperature=temperature)
    value.backward()
    recipe = convert_recipe("trl", beta=0, temperature=temperature)
    assert (recipe.lam, recipe.factor) == (0.0, pytest.approx(1 / temperature**2))
    assert source_loss("trl", student, teacher, None, beta=0, temperature=temperature).item() == \
        pytest.approx(float(value.detach()), rel=1e-9)
    # lam = 0: the labels do not matter to kdlab either, so pass the real ones
    _, _, labels = batch(seed)
    assert_same_direction(recipe, float(value.detach()), leaf.grad, student, teacher, labels)


def test_trl_masked_positions_match_kdlab_on_the_kept_rows(trl_loss):
    generator = torch.Generator().manual_seed(7)
    student = 2.0 * torch.randn(2, 5, 11, generator=generator, dtype=torch.float64)
    teacher = 3.0 * torch.randn(2, 5, 11, generator=generator, dtype=torch.float64)
    mask_labels = torch.randint(11, (2, 5), generator=generator)
    mask_labels[0, 3:] = -100
    leaf = student.clone().requires_grad_()
    value = trl_loss(leaf, teacher, labels=mask_labels, beta=0.0, temperature=2.0)
    value.backward()
    kept = mask_labels != -100
    recipe = convert_recipe("trl", beta=0.0, temperature=2.0)
    rows = leaf.grad[kept]
    assert_same_direction(recipe, float(value.detach()), rows, student[kept], teacher[kept], None)
    assert float(leaf.grad[~kept].abs().max()) == 0.0


@pytest.mark.parametrize("beta", (0.5, 0.9, 1.0))
def test_trl_other_betas_have_no_kdlab_equivalent_and_the_value_is_trls(trl_loss, beta):
    student, teacher, _ = batch(3)
    recipe = convert_recipe("trl", beta=beta, temperature=2.0)
    assert not recipe.same_gradient_direction
    assert ("reverse" if beta == 1 else "Jensen") in recipe.explanation
    assert source_loss("trl", student, teacher, None, beta=beta, temperature=2.0).item() == \
        pytest.approx(float(trl_loss(student, teacher, beta=beta, temperature=2.0)), rel=1e-9)


# --- refusals: before any work, naming what the source really has ---


def test_unknown_source_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown source 'tensorflow'.*keras-classic.*pytorch-tutorial"):
        convert_recipe("tensorflow", alpha=0.1)


@pytest.mark.parametrize("source, bad, real", [
    ("keras-classic", {"lam": 0.5}, "alpha, temperature"),
    ("pytorch-tutorial", {"temperature": 2.0}, "T, soft_target_loss_weight, ce_loss_weight"),
    ("nlp-with-transformers", {"lmbda": 0.5}, "alpha, temperature"),
    ("keras", {"alpha": 0.1}, "student_loss_weight, temperature, loss, distillation_loss_weights"),
    ("trl", {"lmbda": 0.5}, "beta, temperature, reduction"),
])
def test_a_setting_the_source_does_not_have_is_refused_with_its_real_settings(source, bad, real):
    with pytest.raises(ValueError) as error:
        convert_recipe(source, **bad)
    message = str(error.value)
    assert repr(source) in message and repr(next(iter(bad))) in message and real in message


@pytest.mark.parametrize("call, words", [
    (lambda: convert_recipe("keras-classic", alpha=1.5), "alpha"),
    (lambda: convert_recipe("pytorch-tutorial", T=0), "T must be > 0"),
    (lambda: convert_recipe("pytorch-tutorial", ce_loss_weight=-1), "ce_loss_weight must be ≥ 0"),
    (lambda: convert_recipe("pytorch-tutorial", ce_loss_weight=0, soft_target_loss_weight=0), "both terms have weight 0"),
    (lambda: convert_recipe("torchdistill", alpha=0.5), "needs temperature"),
    (lambda: convert_recipe("torchdistill", temperature=4), "alpha=None, beta=None"),
    (lambda: convert_recipe("torchdistill", temperature=4, alpha=0.5, reduction="mean"), "num_classes"),
    (lambda: convert_recipe("kldivloss-mean", temperature=4, lam=0.5), "num_classes"),
    (lambda: convert_recipe("keras", loss="mse"), "'kl_divergence'"),
    (lambda: convert_recipe("trl", beta=1.5), "beta"),
    (lambda: convert_recipe("kdlab", temperature="4"), "temperature must be a number"),
])
def test_bad_values_get_a_specific_message(call, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_comparison_table_rows_hold_each_sources_value_and_its_factor():
    student, teacher, labels = batch(8, rows=10, classes=12)
    recipes = [("kdlab", {"temperature": 4.0, "lam": 0.5}), ("keras-classic", {"alpha": 0.1, "temperature": 10.0}),
               ("trl", {"beta": 0.5}), ("trl", {"beta": 0.0, "temperature": 2.0}),
               ("kldivloss-mean", {"temperature": 4.0, "lam": 0.5}), ("soft-cross-entropy", {"temperature": 2.0, "lam": 0.3})]
    table = comparison_table(student, teacher, labels, recipes)
    assert list(table.source) == [source for source, _ in recipes]
    for (source, settings), (_, row) in zip(recipes, table.iterrows()):
        assert row["value"] == pytest.approx(float(source_loss(source, student, teacher, labels, **settings)))
        assert row["weights"] == SOURCES[source].weights and row["T²"] == SOURCES[source].t_squared
    assert table.loc[2, "kdlab setting"] == "none" and np.isnan(table.loc[2, "value ÷ kdlab"])
    assert table.loc[3, "kdlab setting"] == "T=2, λ=0"
    # the factor column is what the values say: source value ÷ kdlab value at the converted setting
    for i in (0, 1, 3, 4):
        assert table.loc[i, "value ÷ kdlab"] == pytest.approx(table.loc[i, "factor"], rel=1e-9)
    assert np.isnan(table.loc[5, "factor"])  # soft CE: an offset, not a factor
    assert table.loc[5, "value ÷ kdlab"] > 1


# --- the lesson's helpers: the copied recipe, Keras' own number, the SGD/Adam race, and their figures ---


def test_copied_recipe_rows_are_each_sources_conversion():
    from kdlab.conventions import copied_recipe

    table = copied_recipe(0.1, 10.0, num_classes=77)
    classic = table[table.source == "keras-classic"].iloc[0]
    assert classic["teacher's share 1 − λ"] == pytest.approx((0.9 / 100) / (0.1 + 0.9 / 100))  # a = 0.1, b = 0.9/T²
    mean = table[table.source == "kldivloss-mean"].iloc[0]
    assert mean["kdlab λ"] == pytest.approx(0.1 / (0.1 + 0.9 / 77))
    tutorial = table[table.source == "pytorch-tutorial"].iloc[0]  # ce 0.1, the tutorial's soft weight 0.25 kept
    assert tutorial["kdlab λ"] == pytest.approx(0.1 / 0.35) and tutorial["factor"] == pytest.approx(0.35)
    assert table[table.source == "trl"].iloc[0]["kdlab λ"] == 0.0
    keras_default = table[(table.source == "keras") & ~table.settings.str.contains("KLDivergence")].iloc[0]
    assert np.isnan(keras_default["kdlab λ"])
    with pytest.raises(ValueError, match="weight_on_labels"):
        copied_recipe(1.5, 10.0, num_classes=77)


def test_keras_distiller_loss_is_keras_own_number(keras):
    from kdlab.conventions import keras_distiller_loss

    student, teacher, labels = batch(6)
    for settings in ({"temperature": 2.0, "student_loss_weight": 0.4, "loss": "KLDivergence()"},
                     {"temperature": 2.0, "student_loss_weight": 0.4}):
        expected, _ = keras_total_loss(keras, student, teacher, labels, **{"loss": "kl_divergence", **settings})
        assert keras_distiller_loss(student, teacher, labels, **settings) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="'keras' has no setting 'alpha'"):
        keras_distiller_loss(student, teacher, labels, alpha=0.1)


def race_inputs():
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(40, 8, generator=generator, dtype=torch.float64)
    teacher = 3.0 * torch.randn(40, 5, generator=generator, dtype=torch.float64)
    return features, teacher, teacher.argmax(1)


def test_spelling_race_sgd_steps_scale_by_the_factor_and_adam_ignores_it():
    from kdlab.conventions import spelling_race

    settings = {"alpha": 0.1, "temperature": 10.0}
    factor = convert_recipe("keras-classic", **settings).factor
    sgd = spelling_race(*race_inputs(), "keras-classic", settings, optimizer="sgd", lr=1e-3, steps=1)
    drop = {s: float(g["kdlab loss"].iloc[0] - g["kdlab loss"].iloc[1]) for s, g in sgd.groupby("spelling")}
    assert drop["source"] / drop["kdlab"] == pytest.approx(factor, rel=1e-2)  # first order in the step size
    adam = spelling_race(*race_inputs(), "keras-classic", settings, optimizer="adam", lr=0.01, steps=30)
    last = adam[adam.step == 30].set_index("spelling")["kdlab loss"]
    assert last["source"] == pytest.approx(last["kdlab"], rel=1e-3)
    assert adam[adam.step == 30]["kdlab loss"].max() < adam[adam.step == 0]["kdlab loss"].min()
    with pytest.raises(ValueError, match="no kdlab equivalent"):
        spelling_race(*race_inputs(), "trl", {"beta": 0.5}, optimizer="sgd", lr=0.1)
    with pytest.raises(ValueError, match="optimizer must be 'sgd' or 'adam'"):
        spelling_race(*race_inputs(), "kdlab", {}, optimizer="rmsprop", lr=0.1)


def test_the_lessons_figures_draw_the_numbers_they_are_given():
    import pandas as pd
    from kdlab import plots
    from kdlab.conventions import copied_recipe, spelling_race

    table = copied_recipe(0.1, 10.0, num_classes=77)
    ax = plots.plot_copied_recipe(table, 0.1, 10.0)
    widths = [bar.get_width() for bar in ax.patches]
    np.testing.assert_allclose(widths, np.nan_to_num(table["teacher's share 1 − λ"].to_numpy(dtype=float)))
    assert ax.get_title() and ax.get_xlabel() and "no kdlab equivalent" in [t.get_text() for t in ax.texts]
    race = pd.concat([spelling_race(*race_inputs(), "keras-classic", {"alpha": 0.1, "temperature": 10.0},
                                    optimizer=o, lr=0.01, steps=5) for o in ("sgd", "adam")])
    figure = plots.plot_spelling_race(race)
    sgd_panel = figure.axes[0]
    source_line = sgd_panel.get_lines()[0]
    expected = race[(race.optimizer == "sgd") & (race.spelling == "source")]["kdlab loss"].to_numpy()
    np.testing.assert_allclose(source_line.get_ydata(), expected)
    assert all(a.get_title() and a.get_xlabel() for a in figure.axes) and figure.axes[0].get_ylabel()
