"""Run a notebook the two ways the exercise contract asks for (DESIGN.md, "Exercises — contract").

1. As committed, under KDLAB_EXERCISES=strict: every exercise cell must raise (its stub is unsolved) and no
   other cell may — so nothing after an exercise depends on the learner's answer.
2. With each exercise cell replaced by the python block of the solution in the markdown cell after it,
   under strict mode too: nothing may raise.

Used by tests/test_exercises.py; also handy by hand: `python tests/exercise_runs.py notebooks/03-*.ipynb`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
from nbclient import NotebookClient

FENCE = re.compile(r"```python\n(.*?)```", re.S)


def exercise_cells(nb) -> list[int]:
    """Indices of the code cells tagged `exercise`."""
    return [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and "exercise" in cell.metadata.get("tags", [])]


def solution_of(nb, index: int) -> str:
    """The one python block inside the <details> of the markdown cell right after exercise cell `index`."""
    following = nb.cells[index + 1] if index + 1 < len(nb.cells) else None
    blocks = FENCE.findall(following.source) if following is not None and following.cell_type == "markdown" else []
    if len(blocks) != 1 or "<details" not in following.source:
        raise ValueError(f"cell {index}: the next cell must be markdown with <details> holding exactly one python block")
    return blocks[0]


def with_solutions(nb):
    """A copy of the notebook whose exercise cells hold their solutions."""
    solved = copy.deepcopy(nb)
    for index in exercise_cells(nb):
        solved.cells[index].source = solution_of(nb, index)
    return solved


def _errors(executed) -> dict[int, str]:
    """{cell index: 'ErrorName: message'} for every code cell of an executed notebook that raised."""
    errors = {}
    for index, cell in enumerate(executed.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "error":
                errors[index] = f"{output.get('ename')}: {output.get('evalue', '')[:300]}"
    return errors


@contextlib.contextmanager
def strict_mode():
    """KDLAB_EXERCISES=strict in this process (the kernels inherit it) until the block ends, then as before.

    Nested blocks keep it strict: a caller that runs several notebooks in threads wraps them all in one block, so
    one run ending cannot unset it while another starts its kernel.
    """
    previous = os.environ.get("KDLAB_EXERCISES")
    os.environ["KDLAB_EXERCISES"] = "strict"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("KDLAB_EXERCISES", None)
        else:
            os.environ["KDLAB_EXERCISES"] = previous


def run_strict_many(notebooks, path: Path, timeout: int = 600, keep: list | None = None) -> list[dict[int, str]]:
    """Execute several versions of one notebook side by side (one kernel each) under KDLAB_EXERCISES=strict.

    Every cell runs (errors are recorded, not fatal); returns one {cell index: error} per notebook. The kernels
    run at the same time, each in its own thread and event loop: on a 2-core CI machine the two runs of the
    exercise contract then take about the time of one.
    """
    with strict_mode():
        copies = [copy.deepcopy(nb) for nb in notebooks]

        def execute(executed):
            client = NotebookClient(executed, timeout=timeout, kernel_name="python3", allow_errors=True,
                                    resources={"metadata": {"path": str(path.parent)}})
            asyncio.run(client.async_execute())

        with ThreadPoolExecutor(max_workers=len(copies)) as pool:
            list(pool.map(execute, copies))  # list(): re-raises a failure to start or run a kernel
    if keep is not None:
        keep.extend(copies)  # the executed notebooks, for a caller that reads their outputs
    return [_errors(executed) for executed in copies]


def check_notebook(path: Path) -> list[str]:
    """Both runs of one notebook; the problems found, in words (empty when the contract holds)."""
    nb = nbformat.read(path, as_version=4)
    exercises = exercise_cells(nb)
    problems = []
    if len(exercises) < 3:
        problems.append(f"{len(exercises)} exercise cell(s); every notebook needs at least 3")
    as_committed, solved = run_strict_many([nb, with_solutions(nb)], path)
    for index in exercises:
        if index not in as_committed:
            problems.append(f"stub in cell {index} did not raise under KDLAB_EXERCISES=strict")
        elif not as_committed[index].startswith("ExerciseNotSolved"):
            problems.append(f"stub in cell {index} raised {as_committed[index]} instead of the check's ExerciseNotSolved")
    for index, error in as_committed.items():
        if index not in exercises:
            problems.append(f"cell {index} (not an exercise) raised with the stubs in place: {error}")
    for index, error in solved.items():
        problems.append(f"with the solutions pasted in, cell {index} raised {error}")
    return problems


if __name__ == "__main__":
    failed = False
    for name in sys.argv[1:]:
        found = check_notebook(Path(name))
        failed |= bool(found)
        print(f"{name}: " + ("contract holds" if not found else "\n  " + "\n  ".join(found)))
    sys.exit(1 if failed else 0)
