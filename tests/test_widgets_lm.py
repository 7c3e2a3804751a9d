"""kdlab.widgets, notebook 11: move the controls of the language-model widgets and check what they show."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from kdlab import kl_direction, widgets


@pytest.fixture(scope="module")
def kl_view():
    return widgets.kl_direction_explorer(beta=0.0, draw=False)


def test_kl_explorer_starts_at_the_forward_kl_fit(kl_view):
    kl_view.beta.value = 0.0
    direct = kl_direction.fit_gaussian(0.0)
    assert (kl_view.current.mu, kl_view.current.sigma) == pytest.approx((direct.mu, direct.sigma))
    assert "forward KL" in kl_view.stats.value


def test_moving_beta_refits_and_redraws(kl_view):
    kl_view.beta.value = 1.0
    heavier = max(kl_direction.PEAKS, key=lambda peak: peak[2])[0]
    assert kl_view.current.beta == 1.0 and kl_view.current.mu == pytest.approx(heavier, abs=0.05)
    assert "reverse KL" in kl_view.stats.value
    kl_view.beta.value = 0.3
    direct = kl_direction.fit_gaussian(0.3)
    assert kl_view.current.mu == pytest.approx(direct.mu) and "β = 0.30" in kl_view.stats.value
    legend = [t.get_text() for t in kl_view.figure.axes[0].get_legend().get_texts()]
    assert any("β = 0.30" in t for t in legend)
    np.testing.assert_allclose(kl_view.figure.axes[2].lines[-1].get_xdata(), [0.3, 0.3])  # the β marker moved


def test_kl_explorer_draws_a_png_into_its_output():
    view = widgets.kl_direction_explorer(beta=0.5, draw=True)
    first = view.output.outputs[0]["data"]["image/png"]
    assert base64.b64decode(first).startswith(b"\x89PNG") and view.output in view.widget.children
    view.beta.value = 0.9
    assert len(view.output.outputs) == 1 and view.output.outputs[0]["data"]["image/png"] != first


@pytest.mark.parametrize("beta", [-0.5, 1.2])
def test_kl_explorer_refuses_a_bad_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        widgets.kl_direction_explorer(beta=beta, draw=False)
