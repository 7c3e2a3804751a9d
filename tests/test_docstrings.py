"""Each kdlab helper's docstring names the notebook that introduces it (d2l's "Defined in" habit); check the names.

For every public function and class of kdlab.plots and kdlab.widgets (which must name one), and of any other kdlab
module whose docstring names one: every `notebook NN` it mentions must exist in notebooks/ and use the helper in a
code cell. A helper the notebook reaches only through another one (a panel the loss explorer draws) passes when its
docstring names that caller in backticks, the caller's code refers to the helper, and the notebook uses the caller
(directly or, the same way, through its own caller). Only "notebook NN" and the backticks are parsed, not the wording.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import re
import textwrap
from functools import lru_cache
from pathlib import Path

import pytest

import kdlab
from kdlab import plots, widgets

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MENTION = re.compile(r"\bnotebooks?\s+(\d{2}(?:\s*(?:,|and|or|&)\s*\d{2})*)\b", re.IGNORECASE)
TITLE = re.compile(r"\b(\d{2}-[A-Za-z][\w-]*)")
BACKTICKED = re.compile(r"`(?:kdlab\.)?(?:[a-z_]+\.)*([A-Za-z_]\w*)`")
MUST_NAME_A_NOTEBOOK = (plots, widgets)


def public_objects(module) -> dict[str, object]:
    """Public functions and classes a module defines itself (for kdlab.plots: everything its __all__ re-exports)."""
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    found = {}
    for name in names:
        obj = getattr(module, name)
        defined_here = getattr(obj, "__module__", "").startswith(module.__name__)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and defined_here:
            found[name] = obj
    return found


def kdlab_modules():
    modules = [importlib.import_module(f"kdlab.{m.name}") for m in pkgutil.iter_modules(kdlab.__path__)
               if m.name != "__main__"]
    return {m.__name__: m for m in modules}


ALL = {}  # name -> (module name, object), over every kdlab module: what a backticked name can refer to
for _module in kdlab_modules().values():
    for _name, _obj in public_objects(_module).items():
        ALL.setdefault(_name, (_module.__name__, _obj))


def documented():
    """(module, name, object, notebook numbers its docstring names) for every helper the test covers."""
    cases = []
    for module_name, module in sorted(kdlab_modules().items()):
        for name, obj in sorted(public_objects(module).items()):
            numbers = mentioned_notebooks(inspect.getdoc(obj) or "")
            if numbers or module in MUST_NAME_A_NOTEBOOK:
                cases.append(pytest.param(module_name, name, obj, numbers, id=f"{module_name}.{name}"))
    return cases


def mentioned_notebooks(doc: str) -> list[str]:
    return sorted({n for match in MENTION.finditer(doc) for n in re.findall(r"\d{2}", match.group(1))})


@lru_cache(maxsize=None)
def notebook_file(number: str) -> Path | None:
    files = sorted(NOTEBOOKS.glob(f"{number}-*.ipynb"))
    return files[0] if len(files) == 1 else None


@lru_cache(maxsize=None)
def notebook_code(number: str) -> str:
    """The code of lesson `number` in both editions: the Chinese one adds its language cell (kdlab.set_language)."""
    english = notebook_file(number)
    paths = [english] + ([NOTEBOOKS / "zh-CN" / english.name] if (NOTEBOOKS / "zh-CN" / english.name).exists() else [])
    cells = [c for path in paths for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def names_in_code(obj) -> set[str]:
    """Every identifier the object's code refers to (its docstring and comments excluded)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(obj))))
    return ({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            | {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)})


def used_in_notebook(number: str, name: str, obj, seen: frozenset = frozenset()) -> bool:
    if re.search(rf"\b{re.escape(name)}\b", notebook_code(number)):
        return True
    for caller in BACKTICKED.findall(inspect.getdoc(obj) or ""):
        if caller in seen or caller == name or caller not in ALL:
            continue
        caller_obj = ALL[caller][1]
        if name in names_in_code(caller_obj) and used_in_notebook(number, caller, caller_obj, seen | {name}):
            return True
    return False


@pytest.mark.parametrize("module_name, name, obj, numbers", documented())
def test_docstring_names_a_notebook_that_uses_it(module_name, name, obj, numbers):
    doc = inspect.getdoc(obj) or ""
    first = doc.splitlines()[0] if doc else ""
    assert first and not MENTION.match(first), f"{module_name}.{name}: the first line should say what it does"
    assert numbers, f"{module_name}.{name}: the docstring should name the notebook that introduces it ('notebook NN')"
    for number in numbers:
        path = notebook_file(number)
        assert path is not None, f"{module_name}.{name} names notebook {number}, but notebooks/ has no single {number}-*.ipynb"
        assert used_in_notebook(number, name, obj), (
            f"{module_name}.{name} says notebook {number} ({path.name}) introduces it, but no code cell there uses it "
            f"(nor a caller named in backticks in its docstring)")
    for title in TITLE.findall(doc):  # a title written out, e.g. (02-Soft-Targets-and-Temperature), must be the file's
        if title[:2] in numbers:
            assert notebook_file(title[:2]).stem == title, f"{module_name}.{name}: {title} is now {notebook_file(title[:2]).stem}"


def test_every_plots_and_widgets_helper_is_covered():
    covered = {p.values[1] for p in documented()}
    for module in MUST_NAME_A_NOTEBOOK:
        assert set(public_objects(module)) <= covered
    assert len(public_objects(plots)) >= 40  # the 40 functions of the old kdlab/plots.py


# The checker itself must be able to fail: a helper no notebook uses, a wrong notebook, a caller that does not call.

def never_used_anywhere():
    """A helper no notebook uses.

    Introduced in notebook 02 (02-Soft-Targets-and-Temperature).
    """


def calls_nothing():
    """Claims a caller that does not call it.

    Introduced in notebook 03, drawn by `loss_explorer`.
    """


def test_the_check_catches_what_it_should():
    assert mentioned_notebooks("Introduced in notebook 02; notebooks 05 and 06 reuse it.") == ["02", "05", "06"]
    assert not used_in_notebook("02", "never_used_anywhere", never_used_anywhere)
    assert not used_in_notebook("03", "calls_nothing", calls_nothing)  # loss_explorer's code never calls it
    assert notebook_file("99") is None
    assert used_in_notebook("03", "plot_loss_parts", plots.plot_loss_parts)  # through LossExplorer ← loss_explorer
    assert not used_in_notebook("06", "plot_loss_parts", plots.plot_loss_parts)
