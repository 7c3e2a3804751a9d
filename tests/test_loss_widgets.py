"""The loss explorer, training dashboard and loss plots, checked against independent computations.

Reference values come from closed-form gradients (∂CE/∂z = softmax(z) − onehot; ∂(T²·KL)/∂z_s =
T·(p_S − p_T)), from the loss written out in numpy, and from autograd on a hand-written loss.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdlab import History, distillation_loss
from kdlab import plots, widgets

BATCH, CLASSES = 6, 5
NAMES = [f"intent_{i}" for i in range(CLASSES)]


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    student = 2.0 * torch.randn(BATCH, CLASSES, generator=generator, dtype=torch.float64)
    teacher = 3.0 * torch.randn(BATCH, CLASSES, generator=generator, dtype=torch.float64)
    labels = torch.randint(CLASSES, (BATCH,), generator=generator)
    return student, teacher, labels


def closed_form_gradients(student, teacher, labels, lam, temperature, row):
    """Per-example gradients of λ·CE and (1−λ)·T²·KL on one row's logits, written out by hand."""
    one_hot = F.one_hot(labels[row], CLASSES).double()
    grad_ce = lam * (torch.softmax(student[row], 0) - one_hot)
    p_s = torch.softmax(student[row] / temperature, 0)
    p_t = torch.softmax(teacher[row] / temperature, 0)
    grad_kd = (1 - lam) * temperature * (p_s - p_t)
    return grad_ce.numpy(), grad_kd.numpy()


# --- loss explorer ---

def numpy_log_softmax(z: np.ndarray) -> np.ndarray:
    """log softmax along the last axis, written out in numpy (no torch, no kdlab)."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def hand_loss(student, teacher, labels, lam, temperature):
    """CE, T²·KL(p_T ‖ p_S) (batch mean) and λ·CE + (1−λ)·T²·KL, from the formulas in numpy."""
    z_s, z_t, y = student.numpy(), teacher.numpy(), labels.numpy()
    ce = -numpy_log_softmax(z_s)[np.arange(len(y)), y].mean()
    log_p_s, log_p_t = numpy_log_softmax(z_s / temperature), numpy_log_softmax(z_t / temperature)
    kd = temperature**2 * (np.exp(log_p_t) * (log_p_t - log_p_s)).sum(axis=1).mean()
    return ce, kd, lam * ce + (1 - lam) * kd


def test_loss_explorer_values_match_the_formula_by_hand_as_sliders_move(batch):
    student, teacher, labels = batch
    explorer = widgets.loss_explorer(student, teacher, labels, NAMES, draw=False)
    for lam, temperature in ((0.5, 4.0), (0.0, 1.0), (1.0, 8.0), (0.3, 0.5), (0.8, 20.0)):
        explorer.lam.value = lam
        explorer.temperature.value = temperature
        current = explorer.current
        t = explorer.temperature.value  # the log slider rounds to its step
        assert t == pytest.approx(temperature, rel=0.025)
        ce, kd, total = hand_loss(student, teacher, labels, lam, t)
        assert current["lam"] == pytest.approx(lam) and current["temperature"] == pytest.approx(t)
        assert current["ce"] == pytest.approx(ce, rel=1e-10)
        assert current["kd"] == pytest.approx(kd, rel=1e-10)
        assert current["total"] == pytest.approx(total, rel=1e-10)
        # What the learner reads: the readout's three numbers and the three bars of the left panel.
        shown = dict(re.findall(r"(CE|T²·KL|total) = (?:<b>)?([0-9.]+)", explorer.stats.value))
        assert {k: float(v) for k, v in shown.items()} == pytest.approx({"CE": ce, "T²·KL": kd, "total": total}, abs=5e-4)
        loss_ax = explorer.figure.axes[0]
        heights = [patch.get_height() for patch in loss_ax.patches]
        np.testing.assert_allclose(heights, [ce, kd, lam * ce, (1 - lam) * kd], rtol=1e-10)


def test_loss_explorer_gradients_match_closed_form_and_autograd(batch):
    student, teacher, labels = batch
    explorer = widgets.loss_explorer(student, teacher, labels, NAMES, lam=0.3, temperature=2.0, example=2, draw=False)
    for example in (2, 4):
        explorer.example.value = example
        t = explorer.temperature.value
        grad_ce, grad_kd = closed_form_gradients(student, teacher, labels, 0.3, t, example)
        np.testing.assert_allclose(explorer.current["grad_ce"], grad_ce, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(explorer.current["grad_kd"], grad_kd, rtol=1e-10, atol=1e-12)
        z = student.clone().requires_grad_()
        distillation_loss(z, teacher, labels, t, 0.3).backward()
        np.testing.assert_allclose(explorer.current["grad_total"], (BATCH * z.grad[example]).numpy(), rtol=1e-10, atol=1e-12)


def test_loss_explorer_extreme_lams_silence_one_term(batch):
    student, teacher, labels = batch
    explorer = widgets.loss_explorer(student, teacher, labels, NAMES, lam=1.0, draw=False)
    assert np.all(explorer.current["grad_kd"] == 0) and np.abs(explorer.current["grad_ce"]).sum() > 0
    explorer.lam.value = 0.0
    assert np.all(explorer.current["grad_ce"] == 0) and np.abs(explorer.current["grad_kd"]).sum() > 0
    assert explorer.current["total"] == pytest.approx(explorer.current["kd"])


def test_loss_explorer_figure_shows_the_current_numbers(batch):
    student, teacher, labels = batch
    explorer = widgets.loss_explorer(student, teacher, labels, NAMES, lam=0.25, temperature=3.0, draw=False)
    loss_ax, grad_ax = explorer.figure.axes[:2]
    heights = [patch.get_height() for patch in loss_ax.patches]
    c = explorer.current
    # CE bar, KD bar, then the total's two stacked parts λ·CE and (1−λ)·KD
    np.testing.assert_allclose(heights, [c["ce"], c["kd"], 0.25 * c["ce"], 0.75 * c["kd"]], rtol=1e-12)
    assert math.isclose(sum(heights[2:]), c["total"], rel_tol=1e-12)
    # The gold intent is always among the classes shown, marked with a star.
    gold = NAMES[int(labels[c["example"]])]
    assert f"★ {gold}" in [tick.get_text() for tick in grad_ax.get_yticklabels()]
    assert int(labels[c["example"]]) in c["classes"]


@pytest.mark.parametrize("change, argument", [
    ({"lam": 1.5}, "lam"), ({"lam": -0.1}, "lam"), ({"temperature": 0.0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"), ({"example": BATCH}, "example"), ({"top_k": 0}, "top_k"),
    ({"label_names": NAMES[:-1]}, "label_names"), ({"texts": ["a"]}, "texts"),
])
def test_loss_explorer_bad_input_names_the_argument(batch, change, argument):
    student, teacher, labels = batch
    kwargs = {"label_names": NAMES, "draw": False, **change}
    with pytest.raises(ValueError, match=argument):
        widgets.loss_explorer(student, teacher, labels, **kwargs)


def test_loss_explorer_rejects_mismatched_logits_and_labels(batch):
    student, teacher, labels = batch
    with pytest.raises(ValueError, match="teacher_logits"):
        widgets.loss_explorer(student, teacher[:, :-1], labels, NAMES, draw=False)
    with pytest.raises(ValueError, match="labels"):
        widgets.loss_explorer(student, teacher, labels[:-1], NAMES, draw=False)
    with pytest.raises(ValueError, match="labels"):
        widgets.loss_explorer(student, teacher, torch.full((BATCH,), CLASSES), NAMES, draw=False)


# --- gradient size and the high-temperature limit ---

def test_kd_gradient_norms_match_closed_form(batch):
    student, teacher, _ = batch
    temperatures = [0.5, 1.0, 4.0, 30.0]
    norms = plots.kd_gradient_norms(student, teacher, temperatures)
    for k, t in enumerate(temperatures):
        p_s, p_t = torch.softmax(student / t, 1), torch.softmax(teacher / t, 1)
        expected = float((t * (p_s - p_t)).norm(dim=1).mean())
        assert norms["with_t_squared"][k] == pytest.approx(expected, rel=1e-10)
        assert norms["without_t_squared"][k] == pytest.approx(expected / t**2, rel=1e-10)


def test_t_squared_keeps_the_gradient_on_scale_at_high_temperature(batch):
    student, teacher, _ = batch
    norms = plots.kd_gradient_norms(student, teacher, [10.0, 100.0, 1000.0])
    # With T², the size settles at ‖z̃_s − z̃_t‖/N (zero-mean logits); without it, it falls like 1/T².
    centred = (student - student.mean(1, keepdim=True)) - (teacher - teacher.mean(1, keepdim=True))
    plateau = float((centred / CLASSES).norm(dim=1).mean())
    assert norms["with_t_squared"][-1] == pytest.approx(plateau, rel=1e-3)
    ratios = norms["without_t_squared"][:-1] / norms["without_t_squared"][1:]
    np.testing.assert_allclose(ratios, 100.0, rtol=0.05)


def test_logit_matching_gap_shrinks_like_one_over_t(batch):
    student, teacher, _ = batch
    # 1000 is the highest T kdlab.checks allows (above it float rounding, not the physics, drives the gap).
    gap = plots.logit_matching_gap(student, teacher, [100.0, 1000.0])
    errors = gap["relative_error"]
    assert errors[-1] < 3e-3
    assert errors[0] / errors[1] == pytest.approx(10.0, rel=0.05)
    # Hand-check one temperature: autograd of a hand-written T²·KL against (z_s − z_t)/(N·B).
    t = 100.0
    z = student.clone().requires_grad_()
    log_p_s, p_t = torch.log_softmax(z / t, 1), torch.softmax(teacher / t, 1)
    (t**2 * (p_t * (p_t.log() - log_p_s)).sum() / BATCH).backward()
    centred = (student - student.mean(1, keepdim=True)) - (teacher - teacher.mean(1, keepdim=True))
    limit = centred / (CLASSES * BATCH)
    assert errors[0] == pytest.approx(float((z.grad - limit).norm() / limit.norm()), rel=1e-8)


def test_gradient_plot_draws_the_computed_curves(batch):
    from matplotlib.figure import Figure

    student, teacher, labels = batch
    ax = Figure().subplots()
    plots.plot_gradient_vs_temperature(ax, student, teacher, [1.0, 2.0, 4.0], labels=labels)
    norms = plots.kd_gradient_norms(student, teacher, [1.0, 2.0, 4.0])
    lines = ax.get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), norms["with_t_squared"])
    np.testing.assert_allclose(lines[1].get_ydata(), norms["without_t_squared"])
    hard = torch.softmax(student, 1) - F.one_hot(labels, CLASSES)
    assert lines[2].get_ydata()[0] == pytest.approx(float(hard.norm(dim=1).mean()))
    assert ax.get_xscale() == "log" and ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


def test_gradient_helpers_reject_bad_input(batch):
    student, teacher, _ = batch
    with pytest.raises(ValueError, match="teacher_logits"):
        plots.kd_gradient_norms(student, teacher[:3], [1.0])
    with pytest.raises(ValueError, match="temperature"):
        plots.kd_gradient_norms(student, teacher, [1.0, -2.0])
    with pytest.raises(ValueError, match="temperatures"):
        plots.logit_matching_gap(student, teacher, [])


# --- learning curves and the training dashboard ---

def make_history(epochs: int, offset: float = 0.0) -> History:
    history = History()
    for e in range(1, epochs + 1):
        history.epochs.append({"epoch": e, "loss": 2.0 / e + offset, "ce": 1.5 / e + offset, "kd": 3.0 / e,
                               "dev_accuracy": 0.5 + 0.1 * e - offset, "seconds": 0.1})
    return history


def test_dashboard_series_equal_the_history_columns():
    dashboard = widgets.training_dashboard(epochs=4, teacher_accuracy=0.9, draw=False)
    ce_run, kd_run = History(), History()
    full_ce, full_kd = make_history(4), make_history(4, offset=0.05)
    for e in range(4):  # as train_student calls on_epoch_end: the same History object, one more row each time
        ce_run.epochs.append(full_ce.epochs[e])
        dashboard.callback("CE only")(ce_run)
        kd_run.epochs.append(full_kd.epochs[e])
        dashboard.update(kd_run, "KD")
    for name, history in (("CE only", ce_run), ("KD", kd_run)):
        for column in ("epoch", "loss", "ce", "kd", "dev_accuracy"):
            assert dashboard.series[name][column] == history.column(column)
    # The figure draws exactly those series: ce, kd, accuracy in % (plus the teacher line).
    ce_ax, kd_ax, acc_ax = dashboard.figure.axes[:3]
    np.testing.assert_allclose(ce_ax.get_lines()[1].get_ydata(), kd_run.column("ce"))
    np.testing.assert_allclose(kd_ax.get_lines()[0].get_ydata(), ce_run.column("kd"))
    np.testing.assert_allclose(acc_ax.get_lines()[0].get_ydata(), 100 * np.array(ce_run.column("dev_accuracy")))
    assert acc_ax.get_lines()[-1].get_ydata()[0] == pytest.approx(90.0)
    assert "epoch 4/4" in dashboard.status.value
    assert {name: (bar.value, bar.max) for name, bar in dashboard.bars.items()} == {"CE only": (4, 4), "KD": (4, 4)}


def test_dashboard_redraws_at_most_every_few_seconds_but_always_at_the_end(monkeypatch):
    dashboard = widgets.training_dashboard(epochs=4, draw=True)
    drawn = []
    monkeypatch.setattr(widgets, "show_figure", lambda figure, output: drawn.append(dashboard.series["KD"]["epoch"][-1]))
    run, full = History(), make_history(4)
    for e in range(4):  # four fast epochs: the first is drawn, the middle ones are skipped, the last is drawn
        run.epochs.append(full.epochs[e])
        dashboard.update(run, "KD")
    assert drawn == [1, 4]
    assert "epoch 4/4" in dashboard.status.value  # the text readout still follows every epoch


def test_dashboard_bad_input():
    with pytest.raises(ValueError, match="epochs"):
        widgets.training_dashboard(epochs=0, draw=False)
    with pytest.raises(ValueError, match="teacher_accuracy"):
        widgets.training_dashboard(teacher_accuracy=92.5, draw=False)
    dashboard = widgets.training_dashboard(draw=False)
    with pytest.raises(ValueError, match="name"):
        dashboard.update(make_history(2), "")
    with pytest.raises(ValueError, match="history"):
        dashboard.update({"loss": [1.0]}, "run")
    with pytest.raises(ValueError, match="history"):
        dashboard.update(History(), "run")


def test_learning_curves_accept_histories_and_epoch_lists():
    history = make_history(3)
    figure = plots.plot_learning_curves({"a": history, "b": history.epochs}, epochs=3)
    ce_ax = figure.axes[0]
    for line in ce_ax.get_lines():
        np.testing.assert_allclose(line.get_ydata(), history.column("ce"))
    assert all(ax.get_xlabel() == "epoch" and ax.get_ylabel() and ax.get_title() for ax in figure.axes[:3])
    with pytest.raises(ValueError, match="histories"):
        plots.plot_learning_curves({})


# --- per-intent accuracy and the other loss figures ---

def test_per_class_accuracy_by_hand():
    predictions = np.array([0, 0, 1, 2, 2, 2])
    labels = np.array([0, 1, 1, 2, 2, 0])
    accuracy = plots.per_class_accuracy(predictions, labels, 4)
    np.testing.assert_allclose(accuracy[:3], [0.5, 0.5, 1.0])
    assert np.isnan(accuracy[3])  # no gold examples of class 3


def test_per_class_change_shows_biggest_gains_and_losses_by_name():
    from matplotlib.figure import Figure

    before = np.array([0.5, 0.9, 0.7, 0.8, 0.6])
    after = np.array([0.8, 0.7, 0.7, 0.85, 0.6])
    ax = Figure().subplots()
    plots.plot_per_class_change(ax, before, after, NAMES, count=4)
    ticks = sorted(zip(ax.get_yticks(), ax.get_yticklabels()), key=lambda pair: -pair[0])
    shown = [label.get_text() for _, label in ticks]  # top row first
    assert shown == ["intent_0", "intent_3", "intent_1"]  # unchanged intents are left out
    widths = sorted(patch.get_width() for patch in ax.patches)
    np.testing.assert_allclose(widths, [-20.0, 5.0, 30.0])
    with pytest.raises(ValueError, match="label_names"):
        plots.plot_per_class_change(ax, before, after, NAMES[:2])


def test_loss_parts_and_two_targets_figures(batch):
    from matplotlib.figure import Figure

    student, teacher, labels = batch
    ax = Figure().subplots()
    plots.plot_loss_parts(ax, 1.0, 2.0, 0.25)
    assert [p.get_height() for p in ax.patches] == [1.0, 2.0, 0.25, 1.5]
    with pytest.raises(ValueError, match="lam"):
        plots.plot_loss_parts(ax, 1.0, 2.0, 2.0)
    figure = plots.plot_two_targets(student[0], teacher[0], int(labels[0]), NAMES, temperature=2.0, top_k=3)
    left, right = figure.axes[:2]
    # Right panel: teacher bars are softmax(teacher / T) for the classes shown.
    p_t = torch.softmax(teacher[0] / 2.0, 0).numpy()
    teacher_widths = [p.get_width() for p in right.patches[:3]]
    assert all(any(math.isclose(w, v, rel_tol=1e-9) for v in p_t) for w in teacher_widths)
    assert 1.0 in [p.get_width() for p in left.patches]  # the one-hot label
    with pytest.raises(ValueError, match="gold"):
        plots.plot_two_targets(student[0], teacher[0], CLASSES, NAMES)


def test_widgets_draw_a_png_into_their_output(batch):
    student, teacher, labels = batch
    explorer = widgets.loss_explorer(student, teacher, labels, NAMES, draw=True)
    dashboard = widgets.training_dashboard(draw=True)
    dashboard.update(make_history(2), "run")
    for widget in (explorer, dashboard):
        assert [set(out["data"]) >= {"image/png"} for out in widget.output.outputs] == [True]
