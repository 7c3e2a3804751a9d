"""The Chinese edition's switch: every tr() string has a translation, figures draw Chinese without boxes,
and the checker, the exercise feedback and the widgets speak Chinese under zh-CN and English otherwise."""

from __future__ import annotations

import ast
import io
import json
import os
import re
import string
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import kdlab
from kdlab import plots

ROOT = Path(__file__).resolve().parents[1]
LOCALE = ROOT / "kdlab" / "locale" / "zh-CN"
language_module = sys.modules["kdlab.language"]
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def zh():
    """zh-CN for one test, English again afterwards even when the test fails."""
    kdlab.set_language("zh-CN")
    try:
        yield
    finally:
        kdlab.set_language("en")


# --- the catalog against the code, read with ast (no kdlab code runs) ---

def tr_literals(tree: ast.AST) -> set[str]:
    """The first argument of every tr("literal", ...) call."""
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "tr" and node.args
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)}


def str_constants(tree: ast.AST) -> set[str]:
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def library_sources() -> list[ast.AST]:
    return [ast.parse(path.read_text(encoding="utf-8")) for path in sorted((ROOT / "kdlab").rglob("*.py"))]


def library_catalog() -> dict[str, str]:
    """The library areas' files (plots.json, checker.json, ...), not the notebooks' (notebook-NN.json)."""
    merged: dict[str, str] = {}
    for path in sorted(LOCALE.glob("*.json")):
        if not path.name.startswith("notebook-"):
            merged.update(json.loads(path.read_text(encoding="utf-8")))
    return merged


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def test_the_scanner_finds_literals_and_only_literals():
    tree = ast.parse('tr("a {n}", n=1)\ntr(name)\nx.tr("b")\nprint("c")\ntr("d" "e")')
    assert tr_literals(tree) == {"a {n}", "de"}


def test_every_tr_literal_in_kdlab_has_a_chinese_entry():
    catalog = library_catalog()
    literals = set().union(*(tr_literals(tree) for tree in library_sources()))
    assert len(literals) >= 300  # plots, widgets, checker, exercises, environment
    missing = sorted(literals - set(catalog))
    assert not missing, f"{len(missing)} tr() strings have no zh-CN entry, e.g. {missing[:3]}"


def test_no_stale_entries_and_the_same_placeholders():
    catalog = library_catalog()
    trees = library_sources()
    # An entry is used when a tr() literal is its key, or when kdlab holds the string in a constant it hands to
    # tr() by name (a default title, a dict of panel titles); a string gone from the code is stale.
    known = set().union(*(str_constants(tree) for tree in trees))
    stale = sorted(set(catalog) - known)
    assert not stale, f"catalog entries no kdlab code uses any more: {stale[:5]}"
    for english, chinese in catalog.items():
        assert fields(english) == fields(chinese), english
        assert chinese.strip(), english


def test_catalog_files_are_sorted_one_entry_per_key_and_unescaped():
    for path in sorted(LOCALE.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        pairs = json.loads(text, object_pairs_hook=list)
        keys = [key for key, _ in pairs]
        assert keys == sorted(keys) and len(keys) == len(set(keys)), path.name
        assert "\\u" not in text, f"{path.name} escapes non-ASCII (write it with ensure_ascii=False)"


# --- figures: every public plot under zh-CN, inputs taken from the plot tests themselves ---

PROBE = '''
import functools, io, json, os, sys, warnings

RECORD = {}

def _texts(figure):
    found = []
    if getattr(figure, "_suptitle", None) is not None and figure._suptitle.get_text():
        found.append(["suptitle", figure._suptitle.get_text()])
    for ax in figure.axes:
        for loc in ("center", "left", "right"):
            if ax.get_title(loc):
                found.append(["title", ax.get_title(loc)])
        for kind, text in (("xlabel", ax.get_xlabel()), ("ylabel", ax.get_ylabel())):
            if text:
                found.append([kind, text])
    return found

def _inspect(name, result):
    from matplotlib.figure import Figure
    figure = result if isinstance(result, Figure) else result.figure
    entry = RECORD.setdefault(name, {"warnings": [], "texts": []})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure.savefig(io.BytesIO(), format="png", dpi=30)
    entry["warnings"] += [str(w.message) for w in caught]
    entry["texts"] += _texts(figure)

def pytest_configure(config):
    from kdlab import plots
    for name in plots.__all__:
        if name.startswith("plot_"):
            original = getattr(plots, name)
            @functools.wraps(original)
            def wrapper(*args, __original=original, __name=name, **kwargs):
                result = __original(*args, **kwargs)
                _inspect(__name, result)
                return result
            setattr(plots, name, wrapper)

def pytest_unconfigure(config):
    from kdlab import current_language
    RECORD["_language"] = current_language()
    with open(os.environ["KDLAB_PROBE_OUT"], "w", encoding="utf-8") as f:
        json.dump(RECORD, f, ensure_ascii=False)
'''

# Strings the plot tests pass in themselves (their own titles and run names), which no catalog translates.
CALLER_TEXT = {"dropout 0.3", "live"}


def drawn_directly() -> dict:
    """The plots no plot test draws, drawn here on inputs of our own."""
    from kdlab import conventions

    rng = np.random.default_rng(0)
    student, teacher, labels = rng.normal(0, 1, (12, 5)), rng.normal(0, 2, (12, 5)), np.arange(12) % 5
    names = ["card_arrival", "card_delivery_estimate", "lost_or_stolen_card", "top_up_failed", "exchange_rate"]
    import pandas as pd

    features, logits = torch.tensor(rng.normal(0, 1, (12, 4))), torch.tensor(teacher)
    race = pd.concat([conventions.spelling_race(features, logits, torch.tensor(labels), "keras-classic",
                                                {"alpha": 0.1, "temperature": 10.0}, optimizer=o, lr=0.01, steps=3)
                      for o in ("sgd", "adam")])
    drawn = {
        "plot_two_targets": plots.plot_two_targets(student[0], teacher[0], 1, names),
        "plot_gradient_vs_temperature": plots.plot_gradient_vs_temperature(student, teacher, [1.0, 4.0], labels=labels),
        "plot_logit_matching_limit": plots.plot_logit_matching_limit(student, teacher, [1.0, 10.0]),
        "plot_logit_gradients": plots.plot_logit_gradients(student[0], teacher[0], names, [0, 1, 2], gold=1),
        "plot_token_vectors": plots.plot_token_vectors(rng.normal(0, 1, (4, 40)), ["[CLS]", "my", "card", "[SEP]"]),
        "plot_spelling_race": plots.plot_spelling_race(race),
    }
    return drawn


def assert_chinese_figure(name: str, texts: list, warned: list) -> None:
    glyphs = [w for w in warned if "Glyph" in w or "missing from" in w]
    assert not glyphs, f"{name}: {glyphs[0]}"
    titles = [text for kind, text in texts if kind in ("title", "suptitle")]
    assert any(CJK.search(text) for text in titles) or name == "plot_distribution", f"{name}: no Chinese title in {titles}"
    english = sorted({text for _, text in texts if not CJK.search(text) and re.search(r"[A-Za-z]{4,}", text)}
                     - CALLER_TEXT)
    assert not english, f"{name} left English on its title or axes: {english}"
    assert any(CJK.search(text) for kind, text in texts if kind in ("xlabel", "ylabel")) or name in (
        "plot_similarity_map", "plot_softmax_toy", "plot_token_vectors"), f"{name}: no Chinese axis label"


def test_every_plot_draws_chinese_without_missing_glyphs(tmp_path):
    (tmp_path / "zh_probe.py").write_text(textwrap.dedent(PROBE), encoding="utf-8")
    out = tmp_path / "record.json"
    env = dict(os.environ, KDLAB_LANGUAGE="zh-CN", KDLAB_PROBE_OUT=str(out), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    tests = sorted(str(p) for p in (ROOT / "tests").glob("test_plots*.py")) + [str(ROOT / "tests" / "test_conventions.py")]
    # The plot tests assert English text, so many fail here: only what they drew is of interest.
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "zh_probe",
                    "-p", "no:cacheprovider", *tests], cwd=ROOT, env=env, capture_output=True, timeout=600)
    record = json.loads(out.read_text(encoding="utf-8"))
    assert record.pop("_language") == "zh-CN"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kdlab.set_language("zh-CN")
        try:
            direct = drawn_directly()
        finally:
            kdlab.set_language("en")
    everything = {name for name in plots.__all__ if name.startswith("plot_")}
    assert everything <= set(record) | set(direct), everything - set(record) - set(direct)
    for name, entry in sorted(record.items()):
        assert_chinese_figure(name, entry["texts"], entry["warnings"])


def test_chinese_figures_save_with_warnings_as_errors(zh):
    from matplotlib.figure import Figure

    for name, result in drawn_directly().items():
        figure = result if isinstance(result, Figure) else result.figure
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a "Glyph ... missing from font" warning fails here
            figure.savefig(io.BytesIO(), format="png", dpi=30)
        texts = [("title", ax.get_title()) for ax in figure.axes if ax.get_title()]
        texts += [("suptitle", figure._suptitle.get_text())] if figure._suptitle is not None else []
        texts += [(k, t) for ax in figure.axes for k, t in (("xlabel", ax.get_xlabel()), ("ylabel", ax.get_ylabel())) if t]
        assert_chinese_figure(name, texts, [])


def test_english_figures_are_unchanged_after_chinese(zh):
    kdlab.set_language("en")
    ax = plots.plot_loss_parts(1.0, 2.0, 0.5)
    assert ax.get_title() == "The two terms and their λ-weighted sum"
    assert ax.get_ylabel() == "loss [nats, mean over the batch]"
    kdlab.set_language("zh-CN")
    ax = plots.plot_loss_parts(1.0, 2.0, 0.5)
    assert ax.get_title() == "两项损失及其 λ 加权和"
    assert [t.get_text() for t in ax.get_xticklabels()][0] == "CE\n（硬标签）"


# --- the checker, the exercise feedback, the widgets ---

def no_t_squared(s, t, labels=None, temperature=4.0, lam=0.5):
    """The classic mistake (tests/test_checker.py has it too): the KL without T²."""
    kd = F.kl_div(F.log_softmax(s / temperature, -1), F.softmax(t.detach() / temperature, -1), reduction="batchmean")
    return kd if labels is None else lam * F.cross_entropy(s, labels) + (1 - lam) * kd


def test_checker_findings_follow_the_language(zh):
    from kdlab.checker import check_distillation_loss, format_findings

    chinese = check_distillation_loss(no_t_squared)
    kdlab.set_language("en")
    english = check_distillation_loss(no_t_squared)
    assert [f.code for f in chinese] == [f.code for f in english] == ["missing-t-squared"]
    assert english[0].message.startswith("The soft-target term is not multiplied by T² (")
    assert english[0].fix == "Multiply the KL term by temperature ** 2 (Hinton et al. 2015, section 2)."
    assert not CJK.search(format_findings(english))
    assert chinese[0].message.startswith("软目标项没有乘以 T²（") and "温度" in chinese[0].message
    assert chinese[0].fix.startswith("把 KL 项乘以 temperature ** 2")
    kdlab.set_language("zh-CN")
    assert format_findings(chinese).startswith("发现 1 个问题：")
    assert format_findings([]).startswith("没有发现问题")


@pytest.fixture
def notebook_catalog(tmp_path, monkeypatch):
    """The library catalogs plus one notebook's file, as the notebook translators write it."""
    folder = tmp_path / "zh-CN"
    folder.mkdir()
    for path in LOCALE.glob("*.json"):
        (folder / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "notebook-99.json").write_text(json.dumps(
        {"divide by T before the softmax": "先除以 T 再做 softmax", "the same logits at T = 1": "T = 1 时同样的 logits",
         "temperature check": "温度检查"}, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setattr(language_module, "LOCALE_DIR", tmp_path)
    language_module.catalog.cache_clear()
    yield
    language_module.catalog.cache_clear()


def test_exercise_feedback_speaks_chinese_and_translates_the_notebooks_hint(zh, notebook_catalog, monkeypatch):
    from kdlab import exercises

    monkeypatch.delenv(exercises.STRICT_ENV, raising=False)
    wrong = exercises.check_value("temperature check", 2.0, 1.0, hint="divide by T before the softmax")
    assert not wrong.solved
    assert str(wrong) == "温度检查: ✘ 尚未完成 — 得到 2，应为 1\n  提示：先除以 T 再做 softmax"
    assert "提示：" in wrong._repr_html_()
    unknown = exercises.check_value("q", 2.0, 1.0, hint="a hint no catalog has")
    assert unknown.hint == "a hint no catalog has"  # falls back to the notebook's English
    right = exercises.check_true("q", True, "the same logits at T = 1", "no")
    assert str(right) == "q: ✔ 已完成 — T = 1 时同样的 logits"
    monkeypatch.setenv(exercises.STRICT_ENV, "strict")
    with pytest.raises(exercises.ExerciseNotSolved, match="尚未完成"):
        exercises.check_value("temperature check", ..., 1.0)
    kdlab.set_language("en")
    assert str(exercises.check_true("q", True, "the same logits at T = 1", "no")) == "q: ✔ solved — the same logits at T = 1"


def test_a_widget_built_under_chinese_has_chinese_labels(zh):
    from tests.test_widgets import TEXTS, synthetic_cache

    explorer = kdlab.widgets.temperature_explorer(synthetic_cache(), texts=TEXTS, draw=False)
    assert explorer.search.description == "搜索：" and explorer.example.description == "查询："
    assert CJK.search(explorer.top_k.description)
    assert "真实意图" in explorer.stats.value and "比特" in explorer.stats.value
    assert CJK.search(explorer.figure.axes[0].get_title())
    explorer.temperature.value = 80.0  # clamped at 50: the note is Chinese too
    assert "此滑块允许的最大值；你要的是 80" in explorer.stats.value
    kdlab.set_language("en")
    english = kdlab.widgets.temperature_explorer(synthetic_cache(), texts=TEXTS, draw=False)
    assert english.search.description == "Search:" and not CJK.search(english.stats.value)


# --- the switch itself ---

def run_python(code: str, language: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, KDLAB_LANGUAGE=language, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_the_environment_variable_switches_language_and_font():
    done = run_python("import kdlab, matplotlib; print(kdlab.current_language()); print(matplotlib.rcParams['font.family'])", "zh-CN")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "zh-CN"
    assert "WenQuanYi" in lines[1] or "Noto" in lines[1] or "Source Han" in lines[1], lines[1]


def test_an_unknown_language_is_refused_with_the_choices():
    done = run_python("import kdlab", "fr")
    assert done.returncode != 0
    assert "KDLAB_LANGUAGE='fr'" in done.stderr and "'zh-CN'" in done.stderr and "'en'" in done.stderr
    with pytest.raises(ValueError, match=r"'en', 'zh-CN'.*got 'fr'"):
        kdlab.set_language("fr")
    assert kdlab.current_language() == "en"
