"""Notebooks are committed clean and follow the lesson template (goals, navigation, exercises with solutions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def test_the_series_is_there():
    names = [p.name[:2] for p in NOTEBOOKS]
    assert names[:5] == ["00", "01", "02", "03", "04"], names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; strip them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_template(path):
    cells = json.loads(path.read_text())["cells"]
    markdown = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown").lower()
    first = "".join(cells[0]["source"]).lower()
    assert "learn" in first or "goal" in first, f"{path.name}: the first cell should state the learning goals"
    number = int(path.name[:2])
    if number > 0:
        assert f"{number - 1:02d}-" in markdown, f"{path.name}: link back to the previous notebook"
    if number < 4:
        assert f"{number + 1:02d}-" in markdown, f"{path.name}: link on to the next notebook"
    if number > 0:
        assert "exercise" in markdown and "<details>" in markdown, f"{path.name}: exercises with solutions to reveal"
