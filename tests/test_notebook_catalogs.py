"""Every string an English notebook's exercise checks show has a Chinese translation in kdlab/locale/zh-CN.

The Chinese edition runs the English code cells unchanged, and kdlab translates the check's name, hint, `why=` and
messages at display time (kdlab.language.tr). A string built with an f-string arrives filled in and is matched by
its template, so the catalog key is the f-string's template. A new English hint without a key shows in English in
the Chinese edition: these tests name the notebook and the string. Static (ast only): nothing is executed.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

import kdlab.language as language

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))
CHECKS = {"check_value", "check_function", "check_choice", "check_true", "check_loss_function"}
SHOWN_KEYWORDS = {"hint", "why", "message_if_true", "message_if_false"}
SOLUTION = re.compile(r"```python\n(.*?)```", re.S)
HOLE = re.compile(r"\{[^{}]+\}")


def programs(notebook: dict) -> list[str]:
    """The code cells' sources and the solution blocks of the markdown cells (their strings are shown too)."""
    found = []
    for cell in notebook["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "code":
            found.append("\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in text.splitlines()))
        else:
            found.extend(SOLUTION.findall(text))
    return found


def template(node: ast.expr, source: str) -> str | None:
    """A string literal's text, or an f-string's template with each hole written as in the source; else None."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if not isinstance(node, ast.JoinedStr):
        return None
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append(value.value)
        else:
            conversion = {-1: "", ord("s"): "!s", ord("r"): "!r", ord("a"): "!a"}[value.conversion]
            spec = ":" + template(value.format_spec, source) if value.format_spec is not None else ""
            parts.append("{" + ast.get_source_segment(source, value.value) + conversion + spec + "}")
    return "".join(parts)


def shown_strings(source: str) -> list[str]:
    """Check names, hints, `why=` and messages passed to kdlab.exercises checks in one program, as catalog keys."""
    found = []
    for call in ast.walk(ast.parse(source)):
        if not isinstance(call, ast.Call):
            continue
        function = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
        if function not in CHECKS:
            continue
        shown = call.args[:1] + (call.args[2:4] if function == "check_true" else [])
        shown += [keyword.value for keyword in call.keywords if keyword.arg in SHOWN_KEYWORDS]
        found += [text for text in (template(node, source) for node in shown) if text]
    return found


def test_the_extraction_gives_template_keys_for_literals_f_strings_and_joined_pieces():
    source = ('from kdlab.exercises import check_choice, check_true\n'
              'check_choice("top vs T", a, "b", options=["a", "b"],\n'
              '             why=f"median {np.median(top[0]):.3f} at T = 1, {x!r}; "\n'
              '                 "the rest is plain.")\n'
              'kdlab.exercises.check_true(f"n = {n:,}", ok, "yes", f"no: {d[\'k\']:.1f} left", hint="look")\n'
              'print("not shown by kdlab")\n')
    assert shown_strings(source) == ["top vs T", "median {np.median(top[0]):.3f} at T = 1, {x!r}; the rest is plain.",
                                     "n = {n:,}", "yes", "no: {d['k']:.1f} left", "look"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem[:2] for path in NOTEBOOKS])
def test_every_check_string_of_the_english_notebook_has_a_chinese_key(path):
    catalog = language.catalog("zh-CN")
    shown = {text for source in programs(json.loads(path.read_text(encoding="utf-8"))) for text in shown_strings(source)}
    assert shown, f"{path.name}: no exercise check found; has the extraction gone stale?"
    missing = sorted(shown - set(catalog))
    assert not missing, (f"{path.name} shows {len(missing)} exercise string(s) with no zh-CN translation; add to "
                         f"kdlab/locale/zh-CN/notebook-{path.stem[:2]}.json (an f-string's key is its template): "
                         + "; ".join(repr(text) for text in missing))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem[:2] for path in NOTEBOOKS])
def test_each_template_key_translates_its_filled_in_text_with_the_same_holes(path, monkeypatch):
    entries = json.loads((REPO / "kdlab" / "locale" / "zh-CN" / f"notebook-{path.stem[:2]}.json").read_text("utf-8"))
    monkeypatch.setattr(language, "_current", "zh-CN")  # no font search: tr() only reads the language
    for key, value in entries.items():
        assert sorted(HOLE.findall(key)) == sorted(HOLE.findall(value)), f"{key!r}: the Chinese has other holes"
        if HOLE.search(key):
            filled = HOLE.sub("1.23", key)
            assert language.tr(filled) == HOLE.sub("1.23", value), f"{filled!r} is not translated through {key!r}"
