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


# --- the next-token explorer, on a tiny teacher and an untrained student of the real recipe ---

@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    from lm_tiny import tiny_lm_teacher

    from kdlab import lm_distill

    teacher = tiny_lm_teacher(tmp_path_factory.mktemp("lm-cache"))
    return teacher, lm_distill.lm_student(teacher.tokenizer, seed=0, layers=1, width=16)


def by_hand(model, tokenizer, prefix: str, temperature: float) -> np.ndarray:
    """softmax(logits / T) of the token after <bos> + prefix, from the model's own forward pass."""
    import torch

    ids = [tokenizer.bos_token_id] + tokenizer(prefix, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
    return torch.softmax(logits / temperature, dim=-1).numpy()


def test_next_token_explorer_shows_each_models_distribution(lm):
    teacher, student = lm
    view = widgets.next_token_explorer({"teacher": teacher.model, "forward_kl": student}, teacher.tokenizer,
                                       prefix="my card", temperature=1.0, top=5, draw=False)
    assert list(view.current) == ["teacher", "forward_kl"] and len(view.figure.axes) == 2
    for name, model in (("teacher", teacher.model), ("forward_kl", student)):
        probs = by_hand(model, teacher.tokenizer, "my card", 1.0)
        np.testing.assert_allclose(view.current[name]["probability"], np.sort(probs)[::-1][:5], atol=1e-9)
        bits = -(probs * np.log2(probs)).sum()
        assert view.current_entropy_bits[name] == pytest.approx(bits)
    widths = sorted(view.figure.axes[0].patches, key=lambda bar: -bar.get_y())
    np.testing.assert_allclose([bar.get_width() for bar in widths], view.current["teacher"]["probability"])


def test_typing_a_prefix_and_moving_temperature_redraw(lm):
    teacher, student = lm
    view = widgets.next_token_explorer({"teacher": teacher.model}, teacher.tokenizer, draw=False)
    before = view.current_entropy_bits["teacher"]
    view.temperature.value = 5.0
    assert view.current_entropy_bits["teacher"] > before  # a higher T flattens the distribution
    view.prefix.value = "how do I"
    probs = by_hand(teacher.model, teacher.tokenizer, "how do I", 5.0)
    np.testing.assert_allclose(view.current["teacher"]["probability"], np.sort(probs)[::-1][:view.top.value], atol=1e-9)
    assert "how do I" in view.figure.axes[0].get_title() and "T = 5.00" in view.figure.axes[0].get_title()
    view.prefix.value = "card " * 200  # longer than the model reads: says so, keeps the last picture
    assert "tokens long" in view.stats.value and "how do I" in view.figure.axes[0].get_title()


def test_next_token_explorer_draws_a_png(lm):
    teacher, _ = lm
    view = widgets.next_token_explorer({"teacher": teacher.model}, teacher.tokenizer, draw=True)
    assert base64.b64decode(view.output.outputs[0]["data"]["image/png"]).startswith(b"\x89PNG")


@pytest.mark.parametrize("kwargs, word", [({"temperature": 0.0}, "temperature"), ({"top": 0}, "top"),
                                          ({"prefix": 3}, "prefix")])
def test_next_token_explorer_refuses_bad_input(lm, kwargs, word):
    teacher, _ = lm
    with pytest.raises(ValueError, match=word):
        widgets.next_token_explorer({"teacher": teacher.model}, teacher.tokenizer, draw=False, **kwargs)
    with pytest.raises(ValueError, match="models"):
        widgets.next_token_explorer({}, teacher.tokenizer, draw=False)
