"""Notebooks are committed clean and follow the lesson template (goals, navigation, exercises with solutions)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def find_notebooks(folder: Path) -> list[Path]:
    """Every .ipynb under folder, at any depth, except Jupyter's autosaved checkpoints."""
    return sorted(p for p in folder.glob("**/*.ipynb") if ".ipynb_checkpoints" not in p.parts)


ALL_NOTEBOOKS = find_notebooks(ROOT / "notebooks") + find_notebooks(ROOT / "apps")
# The English lessons; the Chinese edition (notebooks/zh-CN) mirrors them cell by cell (tests/test_translation.py).
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def test_notebooks_are_found():
    # A moved folder or a typo in the glob would otherwise make every test below pass by checking nothing.
    assert LESSONS, f"no numbered lesson notebooks (NN-Name.ipynb) under {ROOT / 'notebooks'}"
    assert find_notebooks(ROOT / "apps"), f"no notebooks under {ROOT / 'apps'}"


def test_the_series_is_numbered_without_gaps():
    numbers = [int(p.name[:2]) for p in LESSONS]
    assert numbers == list(range(len(LESSONS))), [p.name for p in LESSONS]


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; strip them before committing"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_template(path):
    cells = json.loads(path.read_text())["cells"]
    markdown = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown").lower()
    first = "".join(cells[0]["source"]).lower()
    assert "learn" in first or "goal" in first, f"{path.name}: the first cell should state the learning goals"
    number = int(path.name[:2])
    if number > 0:
        assert f"{number - 1:02d}-" in markdown, f"{path.name}: link back to the previous notebook"
    if number < len(LESSONS) - 1:
        assert f"{number + 1:02d}-" in markdown, f"{path.name}: link on to the next notebook"
    if number > 0:
        assert "exercise" in markdown and "<details>" in markdown, f"{path.name}: exercises with solutions to reveal"
