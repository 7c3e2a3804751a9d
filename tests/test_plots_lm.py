"""kdlab.plots, notebook 11's figures: checked as objects — titles, labelled axes with units, legends, and that
what is drawn is the data it was given."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_hex

from kdlab import kl_direction, plots


@pytest.fixture(scope="module")
def fits():
    return kl_direction.fit_table(betas=(0.0, 0.25, 0.5, 0.75, 1.0))


def test_arm_colours_are_distinct_and_colour_blind_safe():
    colours = [plots.arm_color(arm) for arm in ("teacher", "ce", "forward_kl", "reverse_kl", "sequence_kd", "on_policy")]
    assert len(set(colours)) == len(colours) and set(colours) <= set(plots.OKABE_ITO.values())
    assert plots.arm_color("something new") == plots.OKABE_ITO["grey"]
    assert plots.BETA_FIT_COLOR not in colours


def test_kl_fits_figure_is_labelled(fits):
    figure = plots.plot_kl_fits(fits, 0.25)
    left, middle, right = figure.axes
    for ax in (left, middle, right):
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel() and ax.get_legend() is not None
    assert left.get_ylabel() == "probability density" and "arbitrary units" in left.get_xlabel()
    assert middle.get_xlabel().startswith("β") and "nats" in right.get_ylabel()
    legend = [t.get_text() for t in left.get_legend().get_texts()]
    assert any("forward KL" in t for t in legend) and any("reverse KL" in t for t in legend)
    assert any("β = 0.25" in t for t in legend)


def test_kl_fits_draws_the_fits_as_densities(fits):
    figure = plots.plot_kl_fits(fits, 0.75)
    left = figure.axes[0]
    spacing = kl_direction.GRID[1] - kl_direction.GRID[0]
    forward, reverse, current = left.get_lines()[:3]
    np.testing.assert_allclose(forward.get_ydata(), fits[0].q / spacing)
    np.testing.assert_allclose(reverse.get_ydata(), fits[-1].q / spacing)
    np.testing.assert_allclose(current.get_ydata(), fits[3].q / spacing)
    # a density integrates to 1 over x
    assert np.trapezoid(current.get_ydata(), kl_direction.GRID) == pytest.approx(1.0, abs=1e-3)
    assert to_hex(forward.get_color()) == plots.arm_color("forward_kl").lower()
    assert to_hex(reverse.get_color()) == plots.arm_color("reverse_kl").lower()


def test_the_ends_are_drawn_apart_from_the_jsd_curve(fits):
    right = plots.plot_kl_fits(fits, 0.5).axes[2]
    curve, forward, reverse = right.get_lines()[:3]
    np.testing.assert_allclose(curve.get_xdata(), [0.25, 0.5, 0.75])  # 0 < β < 1 only
    np.testing.assert_allclose(curve.get_ydata(), [f.divergence for f in fits[1:-1]])
    assert list(forward.get_xdata()) == [0.0] and forward.get_ydata()[0] == pytest.approx(fits[0].divergence)
    assert list(reverse.get_xdata()) == [1.0] and reverse.get_ydata()[0] == pytest.approx(fits[-1].divergence)


def test_kl_fits_refuses_a_table_without_its_ends(fits):
    with pytest.raises(ValueError, match="β = 0"):
        plots.plot_kl_fits(fits[1:], 0.5)
    with pytest.raises(ValueError, match="beta"):
        plots.plot_kl_fits(fits, 2.0)


# --- the teacher's next-token distribution at every position ---

VOCAB = [" my", " card", "I", " lost", " phone", " wallet", "?", ""]
POSITIONS = ["I", " lost", " my", " card"]


def position_probs():
    logits = np.random.default_rng(0).normal(size=(len(POSITIONS), len(VOCAB))) * 2
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def test_visible_token_shows_spaces_and_empty_tokens():
    assert plots.visible_token(" card") == "␣card" and plots.visible_token("I") == "I"
    assert plots.visible_token("") == "(nothing)" and plots.visible_token("\x08") == "'\\x08'"


def test_position_targets_lists_the_top_tokens_of_every_column():
    probs = position_probs()
    ax = plots.plot_position_targets(probs, POSITIONS, VOCAB, next_tokens=[" lost", " my", " card", ""], top=3)
    assert ax.get_title() and "rank" in ax.get_ylabel() and "token" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["I", "␣lost", "␣my", "␣card"]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 3 * len(POSITIONS)
    for column in range(len(POSITIONS)):
        best = int(np.argmax(probs[column]))  # rank 1 of column c is the c-th text written in rank order
        assert texts[3 * column] == f"{plots.visible_token(VOCAB[best])}\n{probs[column, best]:.2f}"
    image = ax.images[0].get_array()
    np.testing.assert_allclose(image[0], probs.max(axis=1))  # the top row's shade is each column's largest probability
    # outlined cells: the true next token, where it is in the top 3
    in_top = sum(nxt in [VOCAB[i] for i in np.argsort(-probs[c])[:3]]
                 for c, nxt in enumerate([" lost", " my", " card", ""]))
    assert len(ax.patches) == in_top


def test_position_targets_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="positions"):
        plots.plot_position_targets(position_probs()[:2], POSITIONS, VOCAB)
    with pytest.raises(ValueError, match="top"):
        plots.plot_position_targets(position_probs(), POSITIONS, VOCAB, top=0)


def test_next_token_distributions_side_by_side():
    import pandas as pd

    frames = {name: pd.DataFrame({"token": VOCAB[:5], "probability": [0.5, 0.2, 0.1, 0.05, 0.01]})
              for name in ("teacher", "forward_kl")}
    figure = plots.plot_next_token_distributions(frames, "I lost my", 2.0)
    assert len(figure.axes) == 2
    for ax, name in zip(figure.axes, frames):
        assert "I lost my" in ax.get_title() and "T = 2.00" in ax.get_title()
        assert ax.get_xlabel() == "probability of the next token" and ax.get_xlim() == (0, 1.0)
        widths = [bar.get_width() for bar in sorted(ax.patches, key=lambda bar: -bar.get_y())]
        assert widths == [0.5, 0.2, 0.1, 0.05, 0.01]
        assert {to_hex(bar.get_facecolor()) for bar in ax.patches} == {plots.arm_color(name).lower()}
    assert "token-level forward KL" in figure.axes[1].get_title()
    with pytest.raises(ValueError, match="temperature"):
        plots.plot_next_token_distributions(frames, "I lost my", 0.0)


# --- the arms, compared ---

ARMS = ("ce", "forward_kl", "reverse_kl")


def arm_rows():
    return [{"arm": arm, "seed": seed, "test_perplexity": 15.0 + i + 0.5 * (seed - 1),
             "teacher_nll_of_samples": 2.5 - 0.1 * i, "distinct_2": 0.6}
            for i, arm in enumerate(ARMS) for seed in range(3)]


def test_lm_arms_draws_mean_std_and_every_seed():
    figure = plots.plot_lm_arms(arm_rows(), teacher={"test_perplexity": 14.0})
    perplexity, nll, distinct = figure.axes
    for ax in figure.axes:
        assert ax.get_title() and ax.get_ylabel() and "arm" in ax.get_xlabel()
    assert "perplexity" in perplexity.get_ylabel() and "nats per token" in nll.get_ylabel()
    assert [t.get_text() for t in perplexity.get_xticklabels()] == [plots.ARM_TICKS[a] for a in ARMS]
    means = [line.get_ydata()[0] for line in perplexity.lines if line.get_marker() == "o" and line.get_markersize() > 10]
    np.testing.assert_allclose(means, [15.0, 16.0, 17.0])
    seeds = [list(line.get_ydata()) for line in perplexity.lines if line.get_markersize() == 5]
    assert seeds[0] == [14.5, 15.0, 15.5]
    caps = perplexity.collections[0].get_segments()[0]  # the first arm's error bar: mean ± std (= 0.5)
    np.testing.assert_allclose(sorted(caps[:, 1]), [14.5, 15.5])
    assert [t.get_text() for t in perplexity.get_legend().get_texts()] == ["teacher: 14.00"]
    assert nll.get_legend() is None  # no teacher value given for that metric


def test_lm_arms_refuses_missing_columns():
    with pytest.raises(ValueError, match="metrics"):
        plots.plot_lm_arms([{"arm": "ce", "test_perplexity": 1.0}])
    with pytest.raises(ValueError, match="arm"):
        plots.plot_lm_arms([])
