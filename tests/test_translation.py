"""The Chinese edition (notebooks/zh-CN/) against the English notebooks it translates.

Only the English code is maintained: a Chinese notebook must hold the English code cells unchanged (plus its one
language cell), a translation of every markdown cell made from the English text as it is now, solutions that are
the English programs with translated comments, and links that resolve. Then each Chinese notebook runs under
KDLAB_EXERCISES=strict with its solutions pasted in, as the English ones do in test_exercises.py.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from exercise_runs import FENCE, exercise_cells, run_strict_many, strict_mode, with_solutions  # noqa: E402

_spec = importlib.util.spec_from_file_location("translation", REPO / "scripts" / "translation.py")
translation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(translation)

LESSONS = translation.lessons()
IDS = [path.stem[:2] for path in LESSONS]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def cells_by_id(path: Path) -> dict[str, dict]:
    """A notebook's cells keyed by cell id."""
    return {cell["id"]: cell for cell in translation.read(path)["cells"]}


def test_every_english_lesson_is_found():
    assert len(LESSONS) >= 13, f"only {len(LESSONS)} lessons under {translation.ENGLISH}"


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_the_chinese_notebook_has_the_english_code_and_current_translations(lesson):
    assert translation.problems(lesson) == []


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_the_first_code_cell_switches_kdlab_to_chinese(lesson):
    code = [c for c in translation.read(translation.CHINESE / lesson.name)["cells"] if c["cell_type"] == "code"]
    assert code[0]["id"] == translation.LANGUAGE_CELL_ID and "language" in code[0]["metadata"]["tags"]
    assert 'kdlab.set_language("zh-CN")' in code[0]["source"]


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_each_solution_is_the_english_program_with_translated_comments(lesson):
    english = translation.read(lesson)
    chinese = cells_by_id(translation.CHINESE / lesson.name)
    nb = nbformat.reads(json.dumps(english), as_version=4)
    for index in exercise_cells(nb):
        solution_cell = english["cells"][index + 1]
        (english_code,) = FENCE.findall(solution_cell["source"])
        translated = FENCE.findall(chinese[solution_cell["id"]]["source"])
        assert len(translated) == 1, f"cell {solution_cell['id']}: the translation must keep exactly one python block"
        assert "<details" in chinese[solution_cell["id"]]["source"]
        assert ast.dump(ast.parse(translated[0])) == ast.dump(ast.parse(english_code)), (
            f"cell {solution_cell['id']}: the translated solution is not the English program (only # comments may change)")


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_relative_links_in_both_editions_resolve(lesson):
    for path in (lesson, translation.CHINESE / lesson.name):
        for cell in translation.read(path)["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            for target in LINK.findall(cell["source"]):
                if re.match(r"[a-z]+:|#", target):
                    continue
                assert (path.parent / target.split("#")[0]).exists(), f"{path.relative_to(REPO)}: broken link {target}"


def test_the_chinese_instructor_guide_and_readme_exist_and_link_back():
    readme = (REPO / "README.zh-CN.md").read_text(encoding="utf-8")
    guide = (translation.CHINESE / "INSTRUCTOR.md").read_text(encoding="utf-8")
    assert "README.md" in readme and "notebooks/zh-CN/00-Welcome.ipynb" in readme
    for text, folder in ((readme, REPO), (guide, translation.CHINESE)):
        assert len(translation.CJK.findall(text)) > 1000
        for target in LINK.findall(text):
            if not re.match(r"[a-z]+:|#", target):
                assert (folder / target.split("#")[0]).exists(), f"broken link {target}"


def _copy_pair(tmp_path: Path, lesson: Path) -> tuple[Path, Path]:
    """The English notebook and its Chinese edition, copied into tmp_path/en and tmp_path/en/zh-CN."""
    english_dir, chinese_dir = tmp_path / "en", tmp_path / "en" / "zh-CN"
    chinese_dir.mkdir(parents=True)
    shutil.copy(lesson, english_dir / lesson.name)
    shutil.copy(translation.CHINESE / lesson.name, chinese_dir / lesson.name)
    return english_dir / lesson.name, chinese_dir


def test_drift_is_reported_for_changed_code_changed_prose_and_a_missing_translation(tmp_path):
    english, chinese_dir = _copy_pair(tmp_path, LESSONS[4])
    assert translation.problems(english, chinese_dir) == []
    nb = json.loads(english.read_text(encoding="utf-8"))
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["source"] = ["x = 1  # an English-only change\n"] + code["source"]
    prose = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    prose["source"] = prose["source"] + ["\nOne more English sentence."]
    english.write_text(json.dumps(nb), encoding="utf-8")
    found = translation.problems(english, chinese_dir)
    assert any("code cells differ" in line for line in found)
    assert any(prose["id"] in line and "changed after it was translated" in line for line in found)
    zh = json.loads((chinese_dir / english.name).read_text(encoding="utf-8"))
    dropped = next(c for c in zh["cells"] if c["cell_type"] == "markdown" and c["id"] != prose["id"])
    dropped["metadata"].pop("kdlab")
    (chinese_dir / english.name).write_text(json.dumps(zh), encoding="utf-8")
    assert any(dropped["id"] in line and "not translated" in line for line in translation.problems(english, chinese_dir))


def test_export_then_import_gives_back_the_committed_notebook():
    for lesson in LESSONS:
        committed = translation.read(translation.CHINESE / lesson.name)
        parsed = translation.parse(translation.export(lesson.name[:2]))
        rebuilt = translation.build(translation.read(lesson), parsed, lesson.name)
        assert rebuilt["cells"] == committed["cells"], lesson.name


@pytest.fixture(scope="module")
def chinese_runs() -> dict[str, tuple[dict, str]]:
    """Every Chinese notebook run under strict mode with its solutions pasted in, two at a time.

    kdlab's thread policy gives each kernel one thread, so two kernels side by side take about half the time of one
    after the other on a 2-core machine (as test_exercises' two runs of each English notebook do).
    """
    from concurrent.futures import ThreadPoolExecutor

    def run(lesson: Path) -> tuple[str, tuple[dict, str]]:
        path = translation.CHINESE / lesson.name
        executed = []
        (errors,) = run_strict_many([with_solutions(nbformat.read(path, as_version=4))], path, keep=executed)
        streams = "".join(output.get("text", "") for cell in executed[0].cells if cell.cell_type == "code"
                          for output in cell.get("outputs", []) if output.get("output_type") == "stream")
        return lesson.name, (errors, streams)

    with strict_mode(), ThreadPoolExecutor(max_workers=2) as pool:  # one block for the batch (strict_mode says why)
        return dict(pool.map(run, LESSONS))


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_the_chinese_notebook_runs_with_its_solutions_and_draws_no_missing_glyphs(chinese_runs, lesson):
    """Like test_exercises' second run, in Chinese: nothing raises, and no figure lacks a glyph (a box)."""
    errors, streams = chinese_runs[lesson.name]
    assert errors == {}
    assert "missing from font" not in streams and "No font with Chinese glyphs" not in streams
