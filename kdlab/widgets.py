"""Interactive pieces of the lessons: the temperature explorer, the loss explorer and the training dashboard.

Widgets redraw a plain matplotlib Figure into an ipywidgets.Output (no ipympl needed), and keep
the numbers behind the current picture as attributes, so tests can move a control and check them.
"""

from __future__ import annotations

import time
from typing import Mapping, Sequence

import numpy as np

from . import plots
from .checks import check_lam, check_temperature
from .language import tr
from .plots.style import _as_2d, _pair


def show_figure(figure, output, dpi: int = 90) -> None:
    """Replace what an ipywidgets.Output shows with a figure, as a PNG (works without `%matplotlib inline`).

    Introduced in notebook 02 (02-Soft-Targets-and-Temperature), used by `TemperatureExplorer` (and every widget here).
    """
    import base64
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    # One state update that swaps the old picture for the new one: no flicker, and it needs no front end
    # to route display messages, so tests and headless runs see the same outputs as JupyterLab.
    output.outputs = ({
        "output_type": "display_data", "metadata": {},
        "data": {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"), "text/plain": repr(figure)},
    },)


# --- the T slider both explorers share: it clamps, and says so ---

def _temperature_slider(temperature: float, low: float, high: float, **options):
    """A log slider for T in [low, high] that remembers the T it was last asked for (`.asked_for`).

    A slider clamps what lies outside its range: ipywidgets' Python side when code sets `.value` (or the explorer is
    built with such a T), the browser when a learner types into the readout. `_clamp_note` turns that into words,
    so a T of 80 shows as "T = 50 (the most this slider allows; you asked for 80)" instead of passing unnoticed.
    """
    import ipywidgets as w
    from traitlets import validate

    class TemperatureSlider(w.FloatLogSlider):
        @validate("value")
        def _validate_value(self, proposal):
            self.asked_for = float(proposal["value"])
            return super()._validate_value(proposal)

    temperature = check_temperature(temperature)
    # Built at the clamped value (ipywidgets may check a value before it has set min and max), then told what was asked.
    slider = TemperatureSlider(value=min(max(temperature, low), high), base=10, min=np.log10(low), max=np.log10(high),
                               step=0.01, **options)
    slider.asked_for = temperature
    return slider


def _clamp_note(slider) -> str:
    """'' inside the slider's range; at either end, which end it is and, if a T beyond it was asked for, that T."""
    value, low, high = float(slider.value), slider.base ** slider.min, slider.base ** slider.max
    asked = getattr(slider, "asked_for", value)
    if value >= high * (1 - 1e-9):
        most = True
    elif value <= low * (1 + 1e-9):
        most = False
    else:
        return ""
    if abs(asked - value) > 1e-9 * max(1.0, abs(value)):
        if most:
            return tr(" (the most this slider allows; you asked for {asked:g})", asked=asked)
        return tr(" (the least this slider allows; you asked for {asked:g})", asked=asked)
    return tr(" (the most this slider allows)") if most else tr(" (the least this slider allows)")


# --- temperature explorer (notebook 02, reused with a student in notebook 05) ---

class TemperatureExplorer:
    """Pick a query, move T, and watch the teacher's (and optionally students') soft targets change.

    Controls: `.search` (text filter), `.example` (dropdown of queries), `.temperature` (log slider),
    `.top_k` (how many bars). The numbers behind the current figure: `.current_index`,
    `.current_probs` (name → probabilities over all classes), `.current_entropy_bits`,
    `.current_effective_classes` (2^H), and `.figure` (the last matplotlib Figure drawn).

    The figure is `figsize` = (width, height) inches (default: 11 wide for one model, 7.5 per model for
    more; a height of None follows top-k) drawn at `dpi` pixels per inch, so its PNG is figsize × dpi pixels. The default dpi=90
    keeps redraws quick on a 1-CPU Binder; for a projector, raise dpi (e.g. 140) for a larger, crisp picture.

    A T outside the slider's range (0.1 to 50) is clamped to its nearer end, and the readout says so.

    Introduced in notebook 02 (02-Soft-Targets-and-Temperature), made by `temperature_explorer`; notebook 05 reuses it with a student.
    """

    MAX_OPTIONS = 300  # a dropdown with thousands of entries is slow in the browser; the search box narrows it

    def __init__(
        self,
        logits: Mapping[str, np.ndarray],
        labels: np.ndarray,
        label_names: Sequence[str],
        texts: Sequence[str] | None = None,
        temperature: float = 1.0,
        top_k: int = 8,
        index: int = 0,
        draw: bool = True,
        dpi: float = 90,
        figsize: tuple[float, float | None] | None = None,
    ):
        import ipywidgets as w

        if not logits:
            raise ValueError("logits must hold at least one model's logits, e.g. {'teacher': cache.logits['test']}")
        self.logits = {name: _as_2d(values, f"logits['{name}']") for name, values in logits.items()}
        shapes = {values.shape for values in self.logits.values()}
        if len(shapes) != 1:
            raise ValueError(f"every model's logits must have the same shape (examples, classes), got {sorted(shapes)}")
        num_examples, num_classes = shapes.pop()
        self.labels = np.asarray(labels).astype(int).ravel()
        if self.labels.shape[0] != num_examples:
            raise ValueError(f"labels has {self.labels.shape[0]} entries but logits have {num_examples} rows")
        if len(label_names) != num_classes:
            raise ValueError(f"label_names has {len(label_names)} names but logits have {num_classes} classes")
        self.label_names = list(label_names)
        self.texts = [f"example {i}" for i in range(num_examples)] if texts is None else [str(t) for t in texts]
        if len(self.texts) != num_examples:
            raise ValueError(f"texts has {len(self.texts)} entries but logits have {num_examples} rows")
        check_temperature(temperature)
        if not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k must be an integer ≥ 1, got {top_k!r}")
        if not 0 <= index < num_examples:
            raise ValueError(f"index must be in [0, {num_examples}), got {index}")
        if isinstance(dpi, bool) or not isinstance(dpi, (int, float, np.integer, np.floating)) or not 30 <= dpi <= 400:
            raise ValueError(f"dpi must be a number of pixels per inch between 30 and 400, got {dpi!r}")
        if figsize is not None:
            try:
                width, height = figsize
                width, height = float(width), (None if height is None else float(height))
            except (TypeError, ValueError):
                raise ValueError(f"figsize must be (width, height) in inches (height may be None), got {figsize!r}") from None
            if not (0 < width <= 40 and (height is None or 0 < height <= 40)):
                raise ValueError(f"figsize must be (width, height) in inches, each in (0, 40], got {figsize!r}")
            figsize = (width, height)
        self.dpi, self.figsize = float(dpi), figsize
        self.draw = draw
        self.figure = None

        self.search = w.Text(value="", placeholder=tr("type words to filter queries, e.g. 'card'"), description=tr("Search:"),
                             continuous_update=False, layout=w.Layout(width="60%"))
        self.example = w.Dropdown(options=self._options(""), value=index, description=tr("Query:"),
                                  layout=w.Layout(width="calc(100% - 4px)"))  # 100% less its 2 px margins
        if index not in [value for _, value in self.example.options]:
            self.example.options = [(self._option_label(index), index)] + list(self.example.options)
            self.example.value = index
        self.temperature = _temperature_slider(temperature, 0.1, 50.0, description="T:", readout_format=".2f",
                                               continuous_update=False, layout=w.Layout(width="62%"))
        self.top_k = w.IntSlider(value=min(int(top_k), num_classes), min=1, max=min(20, num_classes),
                                 description=tr("top-k bars:"), continuous_update=False, layout=w.Layout(width="38%"))
        self.stats = w.HTML()
        self.output = w.Output()
        # The controls span exactly the figure's width (and shrink with it in a narrow window), so the
        # boxes above line up with the picture instead of stretching past it.
        self.widget = w.VBox([self.search, self.example, w.HBox([self.temperature, self.top_k]), self.stats, self.output],
                             layout=w.Layout(width=f"{round(self._figure_size(len(self.logits), int(top_k))[0] * self.dpi)}px",
                                             max_width="100%"))

        self.search.observe(self._on_search, names="value")
        for control in (self.example, self.temperature, self.top_k):
            control.observe(lambda change: self.update(), names="value")
        self.update()

    # -- behaviour --

    def _option_label(self, i: int) -> str:
        return f"#{i}  {self.texts[i]}   [{self.label_names[self.labels[i]]}]"

    def _options(self, query: str) -> list[tuple[str, int]]:
        words = query.lower().split()
        matches = [i for i, text in enumerate(self.texts) if all(word in text.lower() for word in words)]
        return [(self._option_label(i), i) for i in matches[: self.MAX_OPTIONS]]

    def _on_search(self, change) -> None:
        options = self._options(change["new"])
        if not options:
            self.stats.value = tr("<b>No query contains '{word}'.</b> Try another word.", word=change["new"])
            return
        current = self.example.value
        self.example.options = options
        if current not in [value for _, value in options]:
            self.example.value = options[0][1]  # triggers update()
        # else: same example still selected, nothing to redraw

    def update(self) -> None:
        """Recompute the soft targets for the current query and T, then redraw."""
        i, t = int(self.example.value), float(self.temperature.value)
        self.current_index = i
        self.current_probs = {name: plots.softmax(values[i], t) for name, values in self.logits.items()}
        self.current_entropy_bits = {name: float(plots.entropy_bits(p)) for name, p in self.current_probs.items()}
        self.current_effective_classes = {name: float(2 ** h) for name, h in self.current_entropy_bits.items()}
        gold = int(self.labels[i])
        parts = [
            tr("<b>{name}</b>: entropy <b>{bits:.2f} bits</b> ≈ <b>{classes:.1f}</b> effective classes (2<sup>H</sup>), "
               "p(gold) = {p_gold:.3f}", name=tr(name), bits=self.current_entropy_bits[name],
               classes=self.current_effective_classes[name], p_gold=self.current_probs[name][gold])
            for name in self.current_probs
        ]
        num_classes = len(self.label_names)
        parts.append("<span style='color:#555'>" + tr("flat (uniform): {bits:.2f} bits = {n} effective classes, every bar "
                                                      "at 1/{n} (dashed line)", bits=np.log2(num_classes), n=num_classes)
                     + "</span>")
        self.stats.value = ("<div style='font-size:1.1em'>"
                            + tr("Query: <i>“{query}”</i> — gold intent <b style='color:{color}'>{gold}</b> at T = {t:.2f}",
                                 query=self.texts[i], color=plots.GOLD_COLOR, gold=self.label_names[gold], t=t)
                            + _clamp_note(self.temperature) + "<br>" + "<br>".join(parts) + "</div>")
        self.figure = self._make_figure(i, t, gold)
        if self.draw:
            show_figure(self.figure, self.output, dpi=self.dpi)

    def _figure_size(self, count: int, k: int) -> tuple[float, float]:
        """(width, height) in inches: figsize where given, else wide enough for long intent names and tall enough for k bars."""
        width, height = self.figsize or (None, None)
        return (max(11.0, 7.5 * count) if width is None else width,
                0.45 * (k + 1) + 1.6 if height is None else height)

    def _make_figure(self, i: int, t: float, gold: int):
        from matplotlib.figure import Figure

        count = len(self.current_probs)
        k = int(self.top_k.value)
        figure = Figure(figsize=self._figure_size(count, k), dpi=self.dpi, layout="constrained")
        axes = figure.subplots(1, count, squeeze=False)[0]
        for n, (ax, (name, probs)) in enumerate(zip(axes, self.current_probs.items())):
            plots.plot_distribution(ax, probs, self.label_names, gold=gold, top_k=k,
                                    color=plots.MODEL_COLORS[n % len(plots.MODEL_COLORS)],
                                    title=tr("{name}: top {k} intents at T = {t:.2f}", name=tr(name), k=k, t=t), show_uniform=True)
        return figure

    def bar_heights(self, model: str | None = None) -> np.ndarray:
        """Heights of the bars drawn for one model (default: the first), top row first."""
        names = list(self.current_probs)
        model = names[0] if model is None else model
        if model not in names:
            raise ValueError(f"model must be one of {names}, got {model!r}")
        ax = self.figure.axes[names.index(model)]
        bars = sorted(ax.patches, key=lambda bar: -bar.get_y())
        return np.array([bar.get_width() for bar in bars])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def temperature_explorer(
    cache,
    split: str = "test",
    texts: Sequence[str] | None = None,
    extra_logits: Mapping[str, np.ndarray] | None = None,
    temperature: float = 1.0,
    top_k: int = 8,
    index: int = 0,
    draw: bool = True,
    dpi: float = 90,
    figsize: tuple[float, float | None] | None = None,
) -> TemperatureExplorer:
    """The temperature explorer on a TeacherCache split; pass extra_logits={'student': ...} to compare models.

    dpi and figsize set the picture's size (figsize × dpi pixels): keep the quick default in notebooks,
    use e.g. dpi=140 for a projector. See TemperatureExplorer.

    Introduced in notebook 02 (02-Soft-Targets-and-Temperature); notebook 05 reuses it with a student's logits.
    """
    if split not in cache.logits:
        raise ValueError(f"split must be one of {sorted(cache.logits)}, got {split!r}")
    if texts is None:
        texts = _split_texts(cache, split)
    logits = {"teacher": cache.logits[split]}
    for name, values in (extra_logits or {}).items():
        if name in logits:
            raise ValueError(f"extra_logits may not use the name {name!r}: it is the cache's own model")
        logits[name] = values
    return TemperatureExplorer(logits, cache.labels[split], cache.label_names, texts=texts, temperature=temperature,
                               top_k=top_k, index=index, draw=draw, dpi=dpi, figsize=figsize)


def _split_texts(cache, split: str) -> list[str] | None:
    """The query texts of a cached split, aligned by example id (None if the data folder is gone)."""
    from .data import load_splits

    data = cache.meta.get("data") if isinstance(cache.meta, dict) else None
    part = None
    # The folder the cache was built from; if the repository moved since, the default data folder.
    for source in ([data] if data else []) + [None]:
        try:
            part = (load_splits(source) if source else load_splits())[split]
            break
        except (FileNotFoundError, ValueError):
            continue
    if part is None or len(part) != len(cache.ids[split]):
        return None
    text_by_id = dict(zip(list(part["id"]), list(part["text"])))
    return [text_by_id.get(int(i), f"example {int(i)}") for i in cache.ids[split]]


# --- loss explorer (notebook 03) ---

class LossExplorer:
    """Move λ and T on a real batch and watch both loss terms, their total, and where each pushes one query.

    Controls: `.lam` (weight on the hard-label CE), `.temperature` (log slider), `.example` (which query's
    gradient to show). `.current` holds the numbers behind the picture: lam, temperature, example, ce,
    kd (= T²·KL), total (= λ·CE + (1−λ)·T²·KL), and grad_ce / grad_kd / grad_total: the gradient of
    λ·CE, of (1−λ)·T²·KL and of the total with respect to that query's logits, per example (×batch size).
    A T outside the slider's range (0.25 to 50) is clamped to its nearer end, and the readout says so.

    Introduced in notebook 03 (03-The-Distillation-Loss), made by `loss_explorer`.
    """

    def __init__(
        self,
        student_logits,
        teacher_logits,
        labels,
        label_names: Sequence[str],
        texts: Sequence[str] | None = None,
        lam: float = 0.5,
        temperature: float = 4.0,
        example: int = 0,
        top_k: int = 6,
        draw: bool = True,
    ):
        import ipywidgets as w
        import torch

        self.student_logits, self.teacher_logits = _pair(student_logits, teacher_logits)
        batch, num_classes = self.student_logits.shape
        self.labels = torch.as_tensor(np.asarray(labels)).long().ravel()
        if self.labels.shape != (batch,):
            raise ValueError(f"labels must have one entry per row of the logits ({batch}), got {self.labels.shape[0]}")
        if int(self.labels.min()) < 0 or int(self.labels.max()) >= num_classes:
            raise ValueError(f"labels must be class indices in [0, {num_classes})")
        if len(label_names) != num_classes:
            raise ValueError(f"label_names has {len(label_names)} names but the logits have {num_classes} classes")
        self.label_names = list(label_names)
        self.texts = [f"example {i}" for i in range(batch)] if texts is None else [str(t) for t in texts]
        if len(self.texts) != batch:
            raise ValueError(f"texts has {len(self.texts)} entries but the logits have {batch} rows")
        lam = check_lam(lam)
        check_temperature(temperature)
        if not 0 <= example < batch:
            raise ValueError(f"example must be in [0, {batch}), got {example}")
        if not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k must be an integer ≥ 1, got {top_k!r}")
        self.top_k = min(int(top_k), num_classes)
        self.draw = draw
        self.figure = None
        self.current: dict = {}

        self.lam = w.FloatSlider(value=lam, min=0.0, max=1.0, step=0.05, description=tr("λ (on CE):"),
                                 continuous_update=False, readout_format=".2f", style={"description_width": "initial"})
        self.temperature = _temperature_slider(temperature, 0.25, 50.0, description="T:", readout_format=".2f",
                                               continuous_update=False)
        self.example = w.Dropdown(options=[(f"#{i}  {self.texts[i]}", i) for i in range(batch)], value=example,
                                  description=tr("Query:"), layout=w.Layout(width="95%"))
        self.stats = w.HTML()
        self.output = w.Output()
        self.widget = w.VBox([w.HBox([self.lam, self.temperature]), self.example, self.stats, self.output])
        for control in (self.lam, self.temperature, self.example):
            control.observe(lambda change: self.update(), names="value")
        self.update()

    def classes_for(self, i: int) -> list[int]:
        """Which intents to show for query i: the gold one, the teacher's top picks and the student's top pick."""
        gold = int(self.labels[i])
        teacher_top = [int(c) for c in self.teacher_logits[i].argsort(descending=True)[: self.top_k]]
        student_top = int(self.student_logits[i].argmax())
        chosen = [gold] + [c for c in teacher_top if c != gold]
        if student_top not in chosen:
            chosen.append(student_top)
        return chosen[: max(self.top_k, 2) + 1]

    def update(self) -> None:
        """Recompute both terms and their gradients for the current λ, T and query, then redraw."""
        import torch

        from .losses import distillation_terms

        lam, t, i = float(self.lam.value), float(self.temperature.value), int(self.example.value)
        z = self.student_logits.clone().requires_grad_()
        ce, kd = distillation_terms(z, self.teacher_logits, self.labels, t)
        ce_value, kd_value = float(ce.detach()), float(kd.detach())
        batch = len(z)
        # Each weighted term's gradient separately, so the picture shows who pulls where.
        grad_ce = torch.autograd.grad(lam * ce, z, retain_graph=True)[0][i] * batch
        grad_kd = torch.autograd.grad((1 - lam) * kd, z)[0][i] * batch
        self.current = {
            "lam": lam, "temperature": t, "example": i,
            "ce": ce_value, "kd": kd_value, "total": lam * ce_value + (1 - lam) * kd_value,
            "grad_ce": grad_ce.numpy(), "grad_kd": grad_kd.numpy(), "grad_total": (grad_ce + grad_kd).numpy(),
            "classes": self.classes_for(i),
        }
        c = self.current
        pull = np.abs(c["grad_kd"]).sum() / max(np.abs(c["grad_ce"]).sum() + np.abs(c["grad_kd"]).sum(), 1e-12)
        self.stats.value = "<div style='font-size:1.1em'>" + tr(
            "λ = <b>{lam:.2f}</b> on the hard-label CE, 1 − λ = <b>{rest:.2f}</b> on T²·KL, at T = <b>{t:.2f}</b>{clamp}: "
            "CE = {ce:.3f}, T²·KL = {kd:.3f}, total = <b>{total:.3f}</b> (mean over {batch} queries).<br>For the query "
            "below, the soft term supplies <b>{pull:.0f}%</b> of the gradient's size (sum of |∂/∂z| over all {classes} "
            "intents).", lam=lam, rest=1 - lam, t=t, clamp=_clamp_note(self.temperature), ce=c["ce"], kd=c["kd"],
            total=c["total"], batch=batch, pull=100 * pull, classes=len(c["grad_ce"])) + "</div>"
        self.figure = self._make_figure()
        if self.draw:
            show_figure(self.figure, self.output)

    def _make_figure(self):
        from matplotlib.figure import Figure

        c = self.current
        figure = Figure(figsize=(14, 4.6), layout="constrained")
        left, right = figure.subplots(1, 2, width_ratios=[1, 1.4])
        plots.plot_loss_parts(left, c["ce"], c["kd"], c["lam"])
        plots.plot_logit_gradients(right, c["grad_ce"], c["grad_kd"], self.label_names, c["classes"],
                                   gold=int(self.labels[c["example"]]))
        return figure

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def loss_explorer(
    student_logits,
    teacher_logits,
    labels,
    label_names: Sequence[str],
    texts: Sequence[str] | None = None,
    lam: float = 0.5,
    temperature: float = 4.0,
    example: int = 0,
    top_k: int = 6,
    draw: bool = True,
) -> LossExplorer:
    """λ and T sliders on a real batch: both loss terms, their total, and the gradient each sends to one query.

    Introduced in notebook 03 (03-The-Distillation-Loss).
    """
    return LossExplorer(student_logits, teacher_logits, labels, label_names, texts=texts, lam=lam,
                        temperature=temperature, example=example, top_k=top_k, draw=draw)


# --- training dashboard (notebook 05) ---

class TrainingDashboard:
    """Learning curves redrawn after every epoch, so you watch several students train side by side.

    Pass `dashboard.callback(name)` (or `lambda h: dashboard.update(h, name)`) as train_student's
    on_epoch_end. `.series[name]` holds the plotted columns (epoch, loss, ce, kd, dev_accuracy),
    `.bars[name]` the run's epoch progress bar and `.figure` the last figure drawn. One bar step per
    epoch (not per batch) keeps the kernel's message stream small, so headless runs (nbval) keep up.

    Introduced in notebook 05 (05-Training-the-Student), made by `training_dashboard`.
    """

    REDRAW_SECONDS = 2.0

    def __init__(self, epochs: int | None = None, teacher_accuracy: float | None = None, draw: bool = True):
        import ipywidgets as w

        if teacher_accuracy is not None and not 0.0 <= teacher_accuracy <= 1.0:
            raise ValueError(f"teacher_accuracy must be a fraction in [0, 1], got {teacher_accuracy!r}")
        self.teacher_accuracy = teacher_accuracy
        if epochs is not None and (not isinstance(epochs, (int, np.integer)) or epochs < 1):
            raise ValueError(f"epochs must be None or an integer ≥ 1 (fixes the x axis), got {epochs!r}")
        self.epochs = epochs
        self.draw = draw
        self._drawn_at = float("-inf")
        self.series: dict[str, dict[str, list[float]]] = {}
        self.figure = None
        self.status = w.HTML(tr("<i>Waiting for the first epoch…</i>"))
        self.bars: dict = {}
        self.bar_box = w.VBox([])
        self.output = w.Output()
        self.widget = w.VBox([self.status, self.bar_box, self.output])

    def _bar(self, name: str):
        """The run's progress bar (epochs done), created the first time the run is named."""
        import ipywidgets as w

        if name not in self.bars:
            self.bars[name] = w.IntProgress(value=0, min=0, max=self.epochs or 1, description=tr(name) + ":",
                                            style={"description_width": "initial"}, layout=w.Layout(width="70%"))
            self.bar_box.children = tuple(self.bars.values())
        return self.bars[name]

    def update(self, history, name: str) -> None:
        """Store the run's columns under `name` and redraw every run's curves."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string naming the run, got {name!r}")
        series = plots.curve_series(history)
        if not series["epoch"]:
            raise ValueError("history has no epochs yet; call update from on_epoch_end, after an epoch")
        self.series[name] = series
        bar = self._bar(name)
        bar.max = max(bar.max, int(series["epoch"][-1]))
        bar.value = int(series["epoch"][-1])
        seconds = history.column("seconds")[-1] if hasattr(history, "column") else None
        of = f"/{self.epochs}" if self.epochs else ""
        timing = tr(", {seconds:.1f} s for this epoch", seconds=seconds) if seconds is not None else ""
        self.status.value = tr("<b>{name}</b>: epoch {epoch}{of} — dev accuracy <b>{accuracy:.1f}%</b>{timing}",
                               name=tr(name), epoch=series["epoch"][-1], of=of,
                               accuracy=100 * series["dev_accuracy"][-1], timing=timing)
        # Drawing costs ~0.5 s, longer than a bag epoch: redraw at most every REDRAW_SECONDS, and at each run's end.
        run_done = self.epochs is not None and series["epoch"][-1] >= self.epochs
        if not self.draw or run_done or time.monotonic() - self._drawn_at >= self.REDRAW_SECONDS:
            self.figure = plots.plot_learning_curves(self.series, epochs=self.epochs, teacher_accuracy=self.teacher_accuracy)
            if self.draw:
                show_figure(self.figure, self.output)
                self._drawn_at = time.monotonic()

    def callback(self, name: str):
        """An on_epoch_end function that files each epoch under `name`."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string naming the run, got {name!r}")
        self._bar(name)  # show the run's (empty) bar as soon as training starts
        return lambda history: self.update(history, name)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def training_dashboard(epochs: int | None = None, teacher_accuracy: float | None = None, draw: bool = True) -> TrainingDashboard:
    """A live learning-curve panel; hand `.callback(name)` to train_student(on_epoch_end=...).

    Introduced in notebook 05 (05-Training-the-Student).
    """
    return TrainingDashboard(epochs=epochs, teacher_accuracy=teacher_accuracy, draw=draw)


# --- language models (notebook 11): forward vs reverse KL, and the next-token explorer ---

class KLDirectionExplorer:
    """A β slider over the 1-D picture: one Gaussian q fitted to a two-peaked p, from forward KL to reverse KL.

    The fits for every β of the slider are computed once (kdlab.kl_direction.fit_table, about 1 s), so moving the
    slider only redraws. `.beta` is the slider (steps of 0.05), `.fits` the table, `.current` the GaussianFit drawn
    and `.figure` the last matplotlib Figure (plots.plot_kl_fits).

    Introduced in notebook 11 (11-Distilling-Language-Models), made by `kl_direction_explorer`.
    """

    def __init__(self, beta: float = 0.5, draw: bool = True, dpi: float = 80):
        import ipywidgets as w

        from . import kl_direction
        from .checks import check_beta

        beta = check_beta(beta)
        self.fits = kl_direction.fit_table()
        self.betas = np.array([fit.beta for fit in self.fits])
        self.draw, self.dpi = draw, float(dpi)
        self.figure = None
        self.beta = w.FloatSlider(value=float(self.betas[np.argmin(np.abs(self.betas - beta))]), min=0.0, max=1.0,
                                  step=0.05, description="β:", readout_format=".2f", continuous_update=False,
                                  layout=w.Layout(width="60%"))
        self.stats = w.HTML()
        self.output = w.Output()
        self.widget = w.VBox([self.beta, self.stats, self.output])
        self.beta.observe(lambda change: self.update(), names="value")
        self.update()

    def update(self) -> None:
        """Pick the table's fit nearest the slider's β and redraw."""
        self.current = self.fits[int(np.argmin(np.abs(self.betas - float(self.beta.value))))]
        c = self.current
        kind = (tr("forward KL(p‖q)") if c.beta == 0 else tr("reverse KL(q‖p)") if c.beta == 1
                else tr("generalised JSD with β = {beta:.2f}", beta=c.beta))
        self.stats.value = ("<div style='font-size:1.1em'>"
                            + tr("Fitted by {kind}: μ = <b>{mu:.2f}</b>, σ = <b>{sigma:.2f}</b>; divergence left at the "
                                 "fit {divergence:.3f} nats", kind=kind, mu=c.mu, sigma=c.sigma, divergence=c.divergence)
                            + "</div>")
        self.figure = plots.plot_kl_fits(self.fits, c.beta)
        if self.draw:
            show_figure(self.figure, self.output, dpi=self.dpi)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def kl_direction_explorer(beta: float = 0.5, draw: bool = True, dpi: float = 80) -> KLDirectionExplorer:
    """Move β from 0 (forward KL, mode-covering) to 1 (reverse KL, mode-seeking) and watch the fitted q move.

    Introduced in notebook 11 (11-Distilling-Language-Models).
    """
    return KLDirectionExplorer(beta=beta, draw=draw, dpi=dpi)


class NextTokenExplorer:
    """Type a prefix, move T, and see the teacher's and students' next-token distributions side by side.

    TemperatureExplorer's idea, for a language model: `.prefix` (text box, e.g. "I lost my"),
    `.temperature` (log slider, 0.25 to 10), `.top` (how many tokens). The numbers behind the current figure:
    `.current` (name → DataFrame of token, probability, most likely first, from
    kdlab.lm_distill.next_token_distribution), `.current_entropy_bits` (name → entropy of the whole next-token
    distribution, in bits) and `.figure`. Each model is a causal LM sharing `tokenizer` (the teacher's).

    Introduced in notebook 11 (11-Distilling-Language-Models), made by `next_token_explorer`.
    """

    def __init__(self, models: Mapping[str, object], tokenizer, prefix: str = "I lost my", temperature: float = 1.0,
                 top: int = 10, draw: bool = True, dpi: float = 80):
        import ipywidgets as w

        from .checks import check_count

        if not models:
            raise ValueError("models must hold at least one language model, e.g. {'teacher': teacher.model}")
        if not isinstance(prefix, str):
            raise ValueError(f"prefix must be a string, e.g. 'I lost my', got {type(prefix).__name__}")
        check_temperature(temperature)
        top = check_count(top, "top", hint="how many next tokens to show")
        self.models, self.tokenizer = dict(models), tokenizer
        self.draw, self.dpi = draw, float(dpi)
        self.figure, self.current, self.current_entropy_bits = None, {}, {}
        self.prefix = w.Text(value=prefix, description=tr("Prefix:"),
                             placeholder=tr("type the start of a query, e.g. 'I lost my'"),
                             continuous_update=False, layout=w.Layout(width="60%"))
        self.temperature = _temperature_slider(temperature, 0.25, 10.0, description="T:", readout_format=".2f",
                                               continuous_update=False, layout=w.Layout(width="50%"))
        self.top = w.IntSlider(value=min(top, 20), min=3, max=20, description=tr("tokens:"), continuous_update=False,
                               layout=w.Layout(width="35%"))
        self.stats = w.HTML()
        self.output = w.Output()
        self.widget = w.VBox([self.prefix, w.HBox([self.temperature, self.top]), self.stats, self.output])
        for control in (self.prefix, self.temperature, self.top):
            control.observe(lambda change: self.update(), names="value")
        self.update()

    def update(self) -> None:
        """Recompute every model's next-token distribution after the prefix at T, then redraw."""
        from .lm_distill import next_token_logits, top_next_tokens

        prefix, t, top = self.prefix.value, float(self.temperature.value), int(self.top.value)
        try:  # one forward pass per model gives both the table and the entropy
            logits = {name: next_token_logits(model, self.tokenizer, prefix) for name, model in self.models.items()}
        except ValueError as problem:  # e.g. a prefix longer than the model reads: say so, keep the last picture
            self.stats.value = f"<b>{problem}</b>"
            return
        self.current = {name: top_next_tokens(z, self.tokenizer, temperature=t, top=top) for name, z in logits.items()}
        self.current_entropy_bits = {name: float(plots.entropy_bits(plots.softmax(z.double().numpy(), t)))
                                     for name, z in logits.items()}
        parts = [tr("<b>{name}</b>: entropy <b>{bits:.2f} bits</b> ≈ {tokens:.1f} equally likely tokens",
                    name=tr(plots.ARM_LABELS.get(name, name)), bits=bits, tokens=2 ** bits)
                 for name, bits in self.current_entropy_bits.items()]
        self.stats.value = ("<div style='font-size:1.1em'>" + tr("After <i>“{prefix}”</i> at T = {t:.2f}", prefix=prefix, t=t)
                            + _clamp_note(self.temperature) + ": " + "; ".join(parts) + "</div>")
        self.figure = plots.plot_next_token_distributions(self.current, prefix, t)
        if self.draw:
            show_figure(self.figure, self.output, dpi=self.dpi)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def next_token_explorer(models: Mapping[str, object], tokenizer, prefix: str = "I lost my", temperature: float = 1.0,
                        top: int = 10, draw: bool = True, dpi: float = 80) -> NextTokenExplorer:
    """A prefix box and a T slider over the next-token distributions of a teacher and its students.

    Introduced in notebook 11 (11-Distilling-Language-Models).
    """
    return NextTokenExplorer(models, tokenizer, prefix=prefix, temperature=temperature, top=top, draw=draw, dpi=dpi)
