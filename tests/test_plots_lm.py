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
