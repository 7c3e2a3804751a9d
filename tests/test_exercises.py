"""The exercise contract, run for real: every notebook's stubs fail and its solutions pass under strict mode.

tests/exercise_runs.py does the two runs; ../shared/tools/exercise_lint.py checks the contract's shape.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from exercise_runs import check_notebook, exercise_cells, with_solutions

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))
LINT = REPO.parent / "shared" / "tools" / "exercise_lint.py"


def toy_notebook(tmp_path: Path, stub: str, solution: str, after: str = "x = 1") -> Path:
    """A three-cell notebook: an exercise stub, its hidden solution, and a cell after it."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(stub, metadata={"tags": ["exercise"]}),
        nbformat.v4.new_markdown_cell(f"<details><summary>Solution</summary>\n\n```python\n{solution}\n```\n</details>"),
        nbformat.v4.new_code_cell(after),
    ]
    path = tmp_path / "toy.ipynb"
    nbformat.write(nb, path)
    return path


STUB = "from kdlab.exercises import check_value\nanswer = ...\ncheck_value('two', answer, 2)"
SOLUTION = "from kdlab.exercises import check_value\nanswer = 1 + 1\ncheck_value('two', answer, 2)"


def test_the_runner_accepts_a_notebook_that_keeps_the_contract(tmp_path):
    problems = check_notebook(toy_notebook(tmp_path, STUB, SOLUTION))
    assert problems == ["1 exercise cell(s); every notebook needs at least 3"]  # the only thing wrong with the toy


@pytest.mark.parametrize("stub, solution, after, expected", [
    ("answer = 2", SOLUTION, "x = 1", "stub in cell 0 did not raise"),                      # the stub is solved already
    (STUB, "from kdlab.exercises import check_value\ncheck_value('two', 3, 2)", "x = 1", "with the solutions pasted in, cell 0 raised"),
    (STUB, SOLUTION, "answer + 1", "cell 2 (not an exercise) raised"),                       # a later cell uses the answer
    ("answer = ...\nanswer + 1", SOLUTION, "x = 1", "raised TypeError"),                    # crashes instead of checking
])
def test_the_runner_catches_each_way_of_breaking_the_contract(tmp_path, stub, solution, after, expected):
    problems = check_notebook(toy_notebook(tmp_path, stub, solution, after))
    assert any(expected in problem for problem in problems), problems


def test_solutions_replace_the_whole_stub_cell(tmp_path):
    nb = nbformat.read(toy_notebook(tmp_path, STUB, SOLUTION), as_version=4)
    assert exercise_cells(nb) == [0] and with_solutions(nb).cells[0].source.strip() == SOLUTION


def test_the_static_lint_of_the_contract_passes():
    if not LINT.exists():
        pytest.skip(f"{LINT} is not beside this checkout (it ships with the project's shared folder)")
    done = subprocess.run([sys.executable, str(LINT)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    linted = [p for p in (REPO / "notebooks").glob("**/*.ipynb") if ".ipynb_checkpoints" not in p.parts]
    assert len(linted) > len(NOTEBOOKS)  # the Chinese edition's notebooks are linted too
    assert f"0 problem(s) in {len(linted)} notebook(s)" in done.stdout


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_every_notebook_keeps_the_exercise_contract(notebook):
    """As committed each exercise cell raises and no other does; with the solutions pasted in, nothing raises."""
    assert check_notebook(notebook) == []
