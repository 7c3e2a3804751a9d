"""The Chinese edition's notebooks (notebooks/zh-CN/): English code, translated prose, and a check that they agree.

Only the English notebooks' code is maintained. A Chinese notebook is the English one with every markdown cell
translated and one code cell added first (`kdlab.set_language("zh-CN")`, tagged `language`); each translated cell
records a hash of the English text it was translated from, so a later change to the English prose shows up as a
stale translation instead of passing silently.

    python scripts/translation.py export 05 > /tmp/05.md   # the prose to translate (Chinese where it exists)
    python scripts/translation.py import 05 /tmp/05.md     # write notebooks/zh-CN/05-*.ipynb from the English one
    python scripts/translation.py sync                     # after English code changes: refresh every code cell
    python scripts/translation.py check                    # what tests/test_translation.py asserts, as a report
    python scripts/translation.py restamp 05 <cell id>     # the English cell changed, its translation already fits
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENGLISH = REPO / "notebooks"
CHINESE = ENGLISH / "zh-CN"
LANGUAGE_CELL_ID = "kdlab-language"
LANGUAGE_CELL = ('import kdlab\n\n'
                 'kdlab.set_language("zh-CN")  # 控件、图表、损失检查器和练习反馈都用中文；改成 "en" 即换回英文')
CJK = re.compile(r"[\u4e00-\u9fff]")
MARKER = re.compile(r"^<!-- kdlab-cell (\S+) from=([0-9a-f]{12}) -->$", re.M)


def lessons() -> list[Path]:
    """The English lesson notebooks, in order."""
    return sorted(ENGLISH.glob("[0-9][0-9]-*.ipynb"))


def lesson(number: str) -> Path:
    """The English notebook whose name starts with `number` (e.g. '05')."""
    matches = [path for path in lessons() if path.name.startswith(f"{int(number):02d}-")]
    if len(matches) != 1:
        raise SystemExit(f"no English notebook numbered {number!r} in {ENGLISH}")
    return matches[0]


def source_hash(text: str) -> str:
    """A short hash of an English cell's text: what its translation was made from."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def read(path: Path) -> dict:
    """A notebook as plain JSON (sources joined into one string), so cells compare as text."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if isinstance(cell["source"], list):
            cell["source"] = "".join(cell["source"])
    return nb


def write(nb: dict, path: Path) -> None:
    """Save a notebook the way Jupyter does (1-space indent, sources as lists of lines, no outputs)."""
    out = copy.deepcopy(nb)
    for cell in out["cells"]:
        cell["source"] = cell["source"].splitlines(keepends=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def translations_of(nb: dict) -> dict[str, tuple[str, str]]:
    """{cell id: (Chinese text, hash of the English it came from)} for the translated cells of a Chinese notebook."""
    found = {}
    for cell in nb["cells"]:
        origin = cell.get("metadata", {}).get("kdlab", {}).get("translated_from")
        if cell["cell_type"] == "markdown" and origin:
            found[cell["id"]] = (cell["source"], origin)
    return found


def build(english: dict, translations: dict[str, tuple[str, str]], english_file: str) -> dict:
    """The Chinese notebook: English cells in English order, markdown swapped for its translation, language cell first.

    `english_file` (the English notebook's file name) goes into the metadata as the way back to the English edition.
    """
    nb = copy.deepcopy(english)
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown" and cell["id"] in translations:
            text, origin = translations[cell["id"]]
            cell = {**cell, "source": text, "metadata": {**cell.get("metadata", {}), "kdlab": {"translated_from": origin}}}
        if cell["cell_type"] == "code" and not any(c["cell_type"] == "code" for c in cells):
            cells.append({"cell_type": "code", "execution_count": None, "id": LANGUAGE_CELL_ID,
                          "metadata": {"tags": ["language"]}, "outputs": [], "source": LANGUAGE_CELL})
        cells.append(cell)
    nb["cells"] = cells
    nb.setdefault("metadata", {})["kdlab"] = {"language": "zh-CN", "english": f"../{english_file}"}
    return nb


def export(number: str) -> str:
    """The markdown cells to translate, each under a marker line; the Chinese text where a translation exists."""
    path = lesson(number)
    english = read(path)
    existing = translations_of(read(CHINESE / path.name)) if (CHINESE / path.name).exists() else {}
    parts = []
    for cell in english["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        text = existing[cell["id"]][0] if cell["id"] in existing else cell["source"]
        parts.append(f"<!-- kdlab-cell {cell['id']} from={source_hash(cell['source'])} -->\n{text.strip()}\n")
    return "\n".join(parts)


def parse(text: str) -> dict[str, tuple[str, str]]:
    """{cell id: (translated text, hash)} from an exported-and-translated file."""
    pieces = MARKER.split(text)
    return {pieces[i]: (pieces[i + 2].strip(), pieces[i + 1]) for i in range(1, len(pieces), 3)}


def import_(number: str, file: Path) -> Path:
    """Write the Chinese notebook from the English one and a translated export file; refuse unknown cell ids."""
    path = lesson(number)
    english = read(path)
    translations = parse(file.read_text(encoding="utf-8"))
    known = {cell["id"] for cell in english["cells"] if cell["cell_type"] == "markdown"}
    unknown = sorted(set(translations) - known)
    if unknown:
        raise SystemExit(f"{file}: cell ids {unknown} are not markdown cells of {path.name}; re-export it")
    missing = sorted(known - set(translations))
    if missing:
        print(f"note: {len(missing)} markdown cells of {path.name} are not in {file} and stay English: {missing}")
    target = CHINESE / path.name
    write(build(english, translations, path.name), target)
    return target


def sync() -> list[Path]:
    """Rebuild every Chinese notebook from its English one, keeping the translations (after English code changes)."""
    written = []
    for path in lessons():
        target = CHINESE / path.name
        if target.exists():
            write(build(read(path), translations_of(read(target)), path.name), target)
            written.append(target)
    return written


def restamp(number: str, cell_id: str) -> Path:
    """Record that a translated cell matches the English text as it is now (after checking it by eye)."""
    path = lesson(number)
    english = {cell["id"]: cell for cell in read(path)["cells"]}
    target = CHINESE / path.name
    chinese = read(target)
    cell = next((c for c in chinese["cells"] if c.get("id") == cell_id and c["cell_type"] == "markdown"), None)
    if cell is None or cell_id not in english:
        raise SystemExit(f"{target.name} has no translated markdown cell {cell_id!r}")
    cell["metadata"].setdefault("kdlab", {})["translated_from"] = source_hash(english[cell_id]["source"])
    write(chinese, target)
    return target


def problems(path: Path, chinese_dir: Path = CHINESE) -> list[str]:
    """What is wrong with the Chinese edition of English notebook `path`: missing, drifted code, stale prose."""
    target = chinese_dir / path.name
    if not target.exists():
        return [f"{path.name}: no Chinese edition in {chinese_dir.relative_to(REPO) if chinese_dir.is_relative_to(REPO) else chinese_dir}"]
    english, chinese = read(path), read(target)
    translated = translations_of(chinese)
    found = []
    rebuilt = build(english, translated, path.name)
    code = lambda nb: [(c["source"], c.get("metadata", {}).get("tags", [])) for c in nb["cells"] if c["cell_type"] == "code"]
    if code(rebuilt) != code(chinese):
        found.append(f"{path.name}: its code cells differ from the English notebook's; run `python scripts/translation.py sync`")
    elif [c.get("id") for c in rebuilt["cells"]] != [c.get("id") for c in chinese["cells"]]:
        found.append(f"{path.name}: its cells are not the English notebook's cells in the same order; run sync")
    for cell in english["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        done = translated.get(cell["id"])
        if done is None:
            found.append(f"{path.name} cell {cell['id']}: not translated ({cell['source'][:50]!r}…)")
        elif CJK.search(done[0]) is None and len(re.findall(r"[A-Za-z]{3,}", cell["source"])) >= 6:
            found.append(f"{path.name} cell {cell['id']}: still English ({done[0][:50]!r}…)")
        elif done[1] != source_hash(cell["source"]):
            found.append(f"{path.name} cell {cell['id']}: the English text changed after it was translated; "
                         f"export, update the translation, import")
    return found


def main(argv: list[str]) -> int:
    """The command line in this module's docstring."""
    if argv[:1] == ["export"] and len(argv) == 2:
        sys.stdout.write(export(argv[1]))
    elif argv[:1] == ["import"] and len(argv) == 3:
        print(import_(argv[1], Path(argv[2])).relative_to(REPO))
    elif argv[:1] == ["restamp"] and len(argv) == 3:
        print(restamp(argv[1], argv[2]).relative_to(REPO))
    elif argv == ["sync"]:
        print("\n".join(str(p.relative_to(REPO)) for p in sync()) or "no Chinese notebooks yet")
    elif argv == ["check"]:
        report = [line for path in lessons() for line in problems(path)]
        print("\n".join(report) or "the Chinese edition matches the English notebooks")
        return 1 if report else 0
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
