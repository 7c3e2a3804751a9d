"""One switch for the language kdlab speaks: widgets, figure text, the loss checker's findings, exercise feedback.

English is the source text and the key: `tr("Temperature T")` gives the text in the current language, and the
Chinese edition's catalog (kdlab/locale/zh-CN/*.json: one file per library area, and one per notebook for the
strings its code cells pass to kdlab, such as exercise hints) maps each English string to its
translation. The language comes from `set_language` (the first code cell of every notebook in notebooks/zh-CN/)
or, before that, from the environment variable KDLAB_LANGUAGE; English when neither is set.
Figures need a font with CJK glyphs for Chinese: `set_language("zh-CN")` finds one and adds it to matplotlib.
"""

from __future__ import annotations

import functools
import json
import os
import re
import warnings
from pathlib import Path

LANGUAGES = ("en", "zh-CN")
ENV_VAR = "KDLAB_LANGUAGE"
LOCALE_DIR = Path(__file__).with_name("locale")
# Fonts with Simplified Chinese glyphs, by the file names Debian/Ubuntu/Fedora/macOS install them under, best first.
# All are redistributable (Apache-2.0/GPL with font exception, SIL OFL); none is bundled with kdlab.
CJK_FONT_FILES = ("wqy-microhei.ttc", "NotoSansCJK-Regular.ttc", "NotoSansCJKsc-Regular.otf", "NotoSansSC-Regular.otf",
                  "NotoSansSC-Regular.ttf", "wqy-zenhei.ttc", "SourceHanSansSC-Regular.otf", "DroidSansFallbackFull.ttf",
                  "PingFang.ttc", "Hiragino Sans GB.ttc")
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts", "/System/Library/Fonts",
             "/Library/Fonts")


def _checked(code: str) -> str:
    """`code` if kdlab speaks it, else a ValueError that lists the choices."""
    if code not in LANGUAGES:
        raise ValueError(f"kdlab speaks {', '.join(repr(c) for c in LANGUAGES)}; got {code!r}. "
                         f"Use set_language('zh-CN') for Chinese or set_language('en') for English.")
    return code


def _from_environment() -> str:
    """The language KDLAB_LANGUAGE asks for (English when unset), checked when kdlab is imported."""
    value = os.environ.get(ENV_VAR, "").strip() or "en"
    try:
        return _checked(value)
    except ValueError as error:
        raise ValueError(f"{ENV_VAR}={value!r}: {error}") from None


_current = _from_environment()


@functools.lru_cache(maxsize=None)
def _catalog_files(folder: Path) -> dict[str, dict[str, str]]:
    """{file name: its entries} of one language's catalog folder, each file read once."""
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.json"))}


@functools.lru_cache(maxsize=None)
def catalog(code: str) -> dict[str, str]:
    """English text → translation for one language, merged from its per-area JSON files (the Chinese edition)."""
    if _checked(code) == "en":
        return {}
    merged: dict[str, str] = {}
    for name, entries in _catalog_files(LOCALE_DIR / code).items():
        clash = sorted(key for key in set(entries) & set(merged) if entries[key] != merged[key])
        if clash:
            raise ValueError(f"{name} translates {clash[0]!r} differently from another file in {LOCALE_DIR / code}")
        merged.update(entries)
    return merged


def current_language() -> str:
    """The language kdlab speaks now: 'en' or 'zh-CN' (the Chinese edition's notebooks set it in their first cell)."""
    return _current


def set_language(code: str) -> None:
    """Make widgets, figures, checker findings and exercise feedback speak `code` (notebook 00; the Chinese edition's first cell)."""
    global _current
    _current = _checked(code)
    if _current == "zh-CN":
        use_cjk_font()


def tr(text: str, **fields: object) -> str:
    """`text` (English, the key) in the current language, its {placeholders} filled from `fields`.

    A string a notebook built with an f-string (an exercise's `why=`, a figure title) arrives filled in; it is
    translated when a catalog key is its f-string's template, the filled-in values carried over (`_by_template`).
    """
    if _current == "en" or not isinstance(text, str):  # not a string (e.g. no title given: None): as it is
        return text.format(**fields) if fields else text
    entries = catalog(_current)
    translated = entries.get(text)
    if translated is None:
        translated = (None if fields else _by_template(text)) or text
    return translated.format(**fields) if fields else translated


_HOLE = re.compile(r"\{[^{}]+\}")


@functools.lru_cache(maxsize=None)
def _templates(code: str) -> list[tuple[re.Pattern, list[str], str]]:
    """(pattern, holes, translation) for each notebook catalog key with {holes}: f-string templates to match filled text."""
    found = []
    notebook_keys = {key for name, entries in _catalog_files(LOCALE_DIR / code).items() if name.startswith("notebook-")
                     for key in entries}
    # Only the notebooks' f-strings: the library fills its own templates through tr(key, **fields).
    for key, value in ((key, catalog(code)[key]) for key in sorted(notebook_keys)):
        holes = _HOLE.findall(key)
        if holes:
            literal = _HOLE.split(key)
            pattern = "".join(re.escape(part) + ("(.+?)" if i < len(holes) else "") for i, part in enumerate(literal))
            found.append((re.compile(pattern + r"\Z", re.S), holes, value))
    return found


def _by_template(text: str) -> str | None:
    """The translation of an f-string's output: the first template that matches, each {hole} replaced by its value."""
    for pattern, holes, value in _templates(_current):
        match = pattern.match(text)
        if match:
            entries = catalog(_current)
            for hole, filled in zip(holes, match.groups()):  # a filled-in name ("CE only") has its own entry
                value = value.replace(hole, entries.get(filled, filled))
            return value
    return None


def find_cjk_font() -> Path | None:
    """The first installed font file that has Simplified Chinese glyphs (CJK_FONT_FILES order), or None."""
    wanted = {name.lower(): rank for rank, name in enumerate(CJK_FONT_FILES)}
    found: dict[int, Path] = {}
    for folder in FONT_DIRS:
        root = Path(folder).expanduser()
        if root.is_dir():
            for path in root.rglob("*"):
                rank = wanted.get(path.name.lower())
                if rank is not None and rank not in found:
                    found[rank] = path
    return found[min(found)] if found else None


@functools.lru_cache(maxsize=1)
def use_cjk_font() -> str | None:
    """Add a CJK font to matplotlib as the fallback after its own, so Chinese figure text has glyphs, not boxes.

    The font is added by file (font_manager.addfont), so matplotlib's font cache need not be rebuilt after the
    font is installed. Returns the family name, or None (with one warning saying what to install).
    """
    path = find_cjk_font()
    if path is None:
        warnings.warn("No font with Chinese glyphs is installed, so Chinese figure text would show as boxes. "
                      "Install one (Debian/Ubuntu: sudo apt-get install fonts-wqy-microhei; Binder has it), then "
                      "restart the kernel.", stacklevel=3)
        return None
    from matplotlib import font_manager, rcParams

    font_manager.fontManager.addfont(str(path))
    family = font_manager.FontProperties(fname=str(path)).get_name()
    # Latin text keeps the usual font; glyphs it lacks fall back to the CJK font (matplotlib >= 3.6).
    rcParams["font.family"] = [name for name in rcParams["font.family"] if name != family] + [family]
    return family


def _font_check() -> None:
    """`make fonts`: print the CJK font figures will use, or what to install and exit 1."""
    import sys

    font = find_cjk_font()
    print(font if font else "No font with Chinese glyphs found in " + ", ".join(FONT_DIRS) + ": install one "
          "(Debian/Ubuntu: sudo apt-get install fonts-wqy-microhei) for the Chinese edition's figures.",
          file=sys.stdout if font else sys.stderr)
    sys.exit(0 if font else 1)


if _current == "zh-CN":  # KDLAB_LANGUAGE=zh-CN: figures need the CJK font as much as after set_language("zh-CN")
    use_cjk_font()
