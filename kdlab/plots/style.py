"""What every lesson's figures share: the palette, the font size, and how a plot gets its Axes.

Colours come from the Okabe-Ito palette (colour-blind safe); maps use viridis/cividis. One colour per loss
term (CE blue, soft targets orange) and one per model family (teacher black, bag blue, tiny-bert green,
truncated purple), so a colour means the same thing in every notebook.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..checks import check_temperature

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency.
OKABE_ITO = {
    "blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "vermillion": "#D55E00",
    "sky": "#56B4E9", "purple": "#CC79A7", "yellow": "#F0E442", "black": "#000000", "grey": "#999999",
}
MODEL_COLORS = [OKABE_ITO[c] for c in ("blue", "green", "purple", "sky", "yellow")]
GOLD_COLOR = OKABE_ITO["vermillion"]
FONT_SIZE = 12  # big enough to read from the back of a workshop room

# One colour per loss term, used by every loss figure so "orange = soft targets" holds across lessons.
CE_COLOR = OKABE_ITO["blue"]
KD_COLOR = OKABE_ITO["orange"]

# One colour per model family, in every figure that compares families (notebooks 06 and 08).
FAMILY_COLORS = {"teacher": OKABE_ITO["black"], "bag": OKABE_ITO["blue"], "tiny-bert": OKABE_ITO["green"],
                 "truncated": OKABE_ITO["purple"]}
# For families kdlab does not know (a student you add): the remaining Okabe-Ito colours, in this order.
OTHER_FAMILY_COLORS = [OKABE_ITO[c] for c in ("orange", "sky", "vermillion", "yellow")]


def _plain_number(value: float) -> str:
    """0.1, 1, 10, 100k, 2M: tick text a projector audience reads at a glance (no 10⁻¹ or 1e+06)."""
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e4:
        return f"{value / 1e3:g}k"
    return f"{value:g}"  # 1000 stays 1000: a temperature of 1k would read oddly


def _log_scale(ax: Axes, axis: str = "x") -> None:
    """A log axis whose major ticks read 0.1 / 1 / 10 and whose minor ticks carry no text."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(FuncFormatter(lambda value, _: _plain_number(value)))
    target.set_minor_formatter(NullFormatter())


def _family_color(family: str, others: Sequence[str] = ()) -> str:
    """The colour of a model family: FAMILY_COLORS for kdlab's own, else one per unknown family in `others` order."""
    if family in FAMILY_COLORS:
        return FAMILY_COLORS[family]
    unknown = [f for f in dict.fromkeys(others) if f not in FAMILY_COLORS]
    index = unknown.index(family) if family in unknown else 0
    return OTHER_FAMILY_COLORS[index % len(OTHER_FAMILY_COLORS)]


# --- where a plot draws: on the Axes it is given, or on a new Figure it makes ---

def _draws_on_axes(figsize: tuple[float, float]):
    """Decorator for one-panel plots: take the Axes as `ax=` (or first, as the notebooks pass it), else make one.

    The decorated function is written as `f(data..., *, ax)` and always receives an Axes; it returns it. Without an
    Axes, a new `Figure(figsize=figsize)` is made (never pyplot, so nothing global changes); show it with `ax.figure`.
    """

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, ax: Axes | None = None, **kwargs):
            if args and isinstance(args[0], Axes):
                if ax is not None:
                    raise TypeError(f"{function.__name__}: pass the Axes once, first or as ax=, not both")
                ax, args = args[0], args[1:]
            return function(*args, ax=_new_axes(ax, figsize, function.__name__), **kwargs)

        return wrapper

    return decorate


def _new_axes(ax: Axes | None, figsize: tuple[float, float], who: str = "ax") -> Axes:
    """`ax` itself, or the one Axes of a new constrained-layout Figure of `figsize` inches."""
    if ax is None:
        return Figure(figsize=figsize, layout="constrained").subplots()
    if not isinstance(ax, Axes):
        raise TypeError(f"{who}: ax must be a matplotlib Axes (e.g. from plt.subplots()) or None, got {type(ax).__name__}")
    return ax


def _new_axes_grid(axes, figure: Figure | None, shape: tuple[int, int], figsize: tuple[float, float], who: str,
                  **subplot_kw) -> tuple[Figure, np.ndarray]:
    """For multi-panel plots: the given `axes` (as many as `shape` holds), or a grid on `figure`, or on a new Figure.

    Returns (figure holding the axes, flat array of Axes).
    """
    count = shape[0] * shape[1]
    if axes is not None:
        if figure is not None:
            raise TypeError(f"{who}: pass axes= or figure=, not both")
        flat = np.asarray(axes, dtype=object).ravel()
        if len(flat) != count or not all(isinstance(a, Axes) for a in flat):
            raise ValueError(f"{who}: axes must be {count} matplotlib Axes (one per panel), got {len(flat)}")
        return flat[0].figure, flat
    figure = figure or Figure(figsize=figsize, layout="constrained")
    return figure, np.asarray(figure.subplots(*shape, squeeze=False, **subplot_kw), dtype=object).ravel()


# --- checks and conversions every module uses ---

def _as_temperatures(temperatures: Sequence[float]) -> np.ndarray:
    """A non-empty list of temperatures as float64 numpy, each checked by kdlab.checks.check_temperature."""
    values = [check_temperature(t) for t in np.asarray(list(temperatures), dtype=object).ravel()]
    if not values:
        raise ValueError("temperatures must contain at least one value")
    return np.asarray(values, dtype=np.float64)


def _as_2d(array, name: str) -> np.ndarray:
    """Accept a tensor or array of shape (examples, classes), as float64 numpy."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] < 2:
        raise ValueError(f"{name} must be 2-D (examples ≥ 1, classes ≥ 2), got shape {array.shape}")
    return array


def _as_logit_tensor(array, name: str):
    """Logits as a float64 torch tensor of shape (examples, classes), so gradients are exact enough to compare."""
    import torch

    return torch.as_tensor(_as_2d(array, name))


def _pair(student_logits, teacher_logits):
    """Student and teacher logits as float64 tensors of one shape, or a ValueError naming both shapes."""
    student = _as_logit_tensor(student_logits, "student_logits")
    teacher = _as_logit_tensor(teacher_logits, "teacher_logits")
    if student.shape != teacher.shape:
        raise ValueError(f"student_logits has shape {tuple(student.shape)} but teacher_logits has "
                         f"{tuple(teacher.shape)}; they must match")
    return student, teacher


def check_rows(rows, needed, what: str) -> list[dict]:
    """Benchmark rows as dicts, refused when empty or without the keys a figure draws (one rule for plots/)."""
    rows = [dict(r) for r in rows]
    if not rows:
        raise ValueError(f"{what}: rows must hold at least one row")
    missing = [key for key in needed if key not in rows[0]]
    if missing:
        raise ValueError(f"{what}: rows lack {missing}; each row needs {list(needed)}")
    return rows

