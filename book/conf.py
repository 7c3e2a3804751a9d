"""Sphinx configuration of the course book (built by book/build.py; `make book`).

Source: the repository root, restricted to README.md (the landing page), the numbered notebooks in order, and
notebooks/INSTRUCTOR.md. Notebooks are executed during the build by MyST-NB, cell by cell ("inline"), so a
widget's picture can be taken the moment its cell has run: a static page cannot run Python, so each widget is
shown as the figure it draws at its default setting, with a note pointing at the Binder launch button.
Offline by construction: MathJax 3 is served from _static/mathjax (book/build.py fetches it), no widget
JavaScript is loaded from a CDN, and the README's Binder badge (an external image) becomes a text link.
KDLAB_BOOK_PAGES=00,02 builds only those notebooks (tests/test_book.py); nothing else changes.

Two editions, one configuration: KDLAB_BOOK_LANGUAGE=zh-CN builds the Chinese one (README.zh-CN.md, notebooks/zh-CN/,
its INSTRUCTOR.md, Sphinx's own Chinese interface strings) into the zh-CN/ folder of the English site, and every page
of each edition carries a link to the same page of the other (the header's language switch).
"""

from __future__ import annotations

import copy
import html
import os
import posixpath
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = os.environ.get("KDLAB_BOOK_REPOSITORY", "OWNER/kdlab")  # the workflow sets it to the real one
BINDER = "https://mybinder.org"


# Each edition: its landing page, its lessons' folder, its instructor guide, and where its site sits in the book.
EDITIONS = {
    "en": {"root": "README", "folder": "notebooks", "site": "", "label": "English", "sphinx": "en",
           "title": "kdlab — knowledge distillation, taught with notebooks", "caption": "The course"},
    "zh-CN": {"root": "README.zh-CN", "folder": "notebooks/zh-CN", "site": "zh-CN", "label": "中文",
              "sphinx": "zh_CN", "title": "kdlab — 动手学知识蒸馏", "caption": "课程"},
}
EDITION = os.environ.get("KDLAB_BOOK_LANGUAGE", "en")
if EDITION not in EDITIONS:
    raise ValueError(f"KDLAB_BOOK_LANGUAGE={EDITION!r}: the book has the editions {', '.join(EDITIONS)}")


def _notebooks(selection: str | None, folder: str = EDITIONS[EDITION]["folder"]) -> list[str]:
    """Docnames of the numbered notebooks, in order; only the numbers in `selection` ("00,02") when given."""
    found = sorted(p.stem for p in (ROOT / folder).glob("[0-9][0-9]-*.ipynb"))
    if not selection:
        return [f"{folder}/{stem}" for stem in found]
    wanted = [n.strip() for n in selection.split(",") if n.strip()]
    numbers = [stem[:2] for stem in found]
    unknown = [n for n in wanted if n not in numbers]
    if unknown:
        raise ValueError(f"KDLAB_BOOK_PAGES names {unknown}, which are not notebooks; choose from {numbers}")
    return [f"{folder}/{stem}" for stem in found if stem[:2] in wanted]


LESSONS = _notebooks(os.environ.get("KDLAB_BOOK_PAGES"))
INSTRUCTOR = f"{EDITIONS[EDITION]['folder']}/INSTRUCTOR"

project = "kdlab"
author = "the kdlab authors"
html_title = EDITIONS[EDITION]["title"]
language = EDITIONS[EDITION]["sphinx"]
root_doc = EDITIONS[EDITION]["root"]
extensions = ["myst_nb"]
include_patterns = [f"{root_doc}.md", f"{INSTRUCTOR}.md"] + [f"{name}.ipynb" for name in LESSONS]
# Pruned folders, so Sphinx does not walk .venv, the caches or the build output.
exclude_patterns = [".*", "**/.*", "book", "kdlab", "tests", "data", "apps", "benchmarks", "binder", "docs", "scripts",
                    "artifacts", "build", "*.egg-info", "**/__pycache__", "**/.ipynb_checkpoints"]
suppress_warnings = ["myst.xref_missing", "myst.header"]  # README links to files outside the book (code, docs)

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# --- execution: every notebook runs during the build, a failing cell fails the build ---
nb_execution_mode = "inline"
nb_execution_timeout = 900
nb_execution_allow_errors = False
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_ipywidgets_js = {}  # the default loads require.js and the widget manager from CDNs; widgets are pictures here
nb_merge_streams = True

# --- maths with no network: MathJax 3 from _static (book/build.py puts it there) ---
html_static_path = ["_static"]
html_css_files = ["kdlab.css"]  # the language switch
mathjax_path = "mathjax/tex-chtml.js"

html_theme = "sphinx_book_theme"
html_theme_options = {
    "repository_url": f"https://github.com/{REPOSITORY}",
    "repository_branch": "main",
    "path_to_docs": "",
    "use_repository_button": True,
    "launch_buttons": {"binderhub_url": BINDER, "notebook_interface": "jupyterlab"},
    "show_navbar_depth": 1,
    "article_header_end": ["article-header-buttons.html", "language-switch.html"],
}
templates_path = ["_templates"]
html_last_updated_fmt = None
html_context = {"default_mode": "light"}  # without it the theme logs "invalid theme mode" on every page
html_copy_source = False


# --- widgets: the picture at the default setting instead of a "VBox(...)" stub ---

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTES = {
    "en": ("An interactive widget: here is the picture it showed when its cell had run, at its default setting. To "
           "move its controls, launch this lesson on Binder (the rocket button at the top of the page) or run it in "
           "JupyterLab."),
    "zh-CN": "这是一个交互控件：这里是它的单元格运行后、在默认设置下显示的图。要拖动它的控件，请在 Binder 上启动本课（页面顶部的火箭按钮），或在 JupyterLab 中运行。",
}
WIDGET_NOTE = f"<p class=\"kdlab-widget-note\"><em>{WIDGET_NOTES[EDITION]}</em></p>"


def _models(value, seen: set[str]):
    """Widget model ids referenced in a widget's state ("IPY_MODEL_<id>"), depth first, each once."""
    if isinstance(value, str) and value.startswith("IPY_MODEL_"):
        if value[10:] not in seen:
            seen.add(value[10:])
            yield value[10:]
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _models(item, seen)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in ("layout", "style"):
                yield from _models(item, seen)


def _widget_contents(model_id: str, state: dict, seen: set[str]) -> tuple[list[dict], list[str]]:
    """What a widget tree shows without a kernel: the outputs of its Output widgets, and its text labels."""
    pictures, texts = [], []
    model = state.get(model_id, {})
    if model.get("_model_name") == "OutputModel":
        for output in model.get("outputs", ()):
            inner = static_outputs(output, state, note=False)
            pictures.extend(o for o in inner if o.get("output_type") != "stream")
    elif model.get("_model_name") in ("HTMLModel", "LabelModel", "HTMLMathModel"):
        text = re.sub(r"<[^>]+>", "", html.unescape(str(model.get("value", "")))).strip()
        if text:
            texts.append(text)
    for child in _models({k: v for k, v in model.items() if k != "outputs"}, seen):
        more_pictures, more_texts = _widget_contents(child, state, seen)
        pictures.extend(more_pictures)
        texts.extend(more_texts)
    return pictures, texts


def static_outputs(output: dict, state: dict, note: bool = True) -> list[dict]:
    """One cell output as a static page can show it: a widget becomes its pictures (or its text), plus a note."""
    data = output.get("data", {})
    if output.get("output_type") not in ("display_data", "execute_result") or WIDGET_VIEW not in data:
        return [output]
    pictures, texts = _widget_contents(data[WIDGET_VIEW]["model_id"], state, {data[WIDGET_VIEW]["model_id"]})
    shown = [copy.deepcopy(p) for p in pictures]
    if not shown and texts:
        shown = [{"output_type": "stream", "name": "stdout", "text": " ".join(texts) + "\n"}]
    if note and pictures:
        shown.append({"output_type": "display_data", "metadata": {}, "data": {"text/html": WIDGET_NOTE}})
    return shown


def _patch_inline_client() -> None:
    """Make MyST-NB's inline client hand the renderer static widget outputs, taken right after each cell runs."""
    import nbformat
    from myst_nb.core.execute.inline import NotebookClientInline

    if getattr(NotebookClientInline, "_kdlab_static_widgets", False):
        return
    original = NotebookClientInline.code_cell_outputs

    def code_cell_outputs(self, cell_index):
        count, outputs = original(self, cell_index)
        state = copy.deepcopy(getattr(self._client, "widget_state", {}))
        static = [nbformat.from_dict(o) for output in outputs for o in static_outputs(output, state)]
        self.notebook["cells"][cell_index]["outputs"] = static
        return count, static

    NotebookClientInline.code_cell_outputs = code_cell_outputs
    # No widget state in the page: with nothing to render it (no CDN), it would only add weight.
    NotebookClientInline.finalise_client = lambda self: None
    NotebookClientInline._kdlab_static_widgets = True


# --- navigation: the lessons in order after the landing page, then the instructor kit ---

def _source_read(app, docname: str, source: list[str]) -> None:
    if docname == root_doc:
        # The Binder badges are images on mybinder.org: text links keep the page offline.
        source[0] = re.sub(r"\[!\[Binder[^\]]*\]\([^)]*\)\]\(([^)]*)\)", r"[Launch on Binder](\1)", source[0])
        toc = "\n".join(LESSONS + [INSTRUCTOR])
        caption = EDITIONS[EDITION]["caption"]
        source[0] += f"\n\n```{{toctree}}\n:hidden:\n:caption: {caption}\n\n{toc}\n```\n"
    elif docname == INSTRUCTOR:
        path = "kdlab/language/zh-CN" if EDITION == "zh-CN" else "lab/tree/notebooks/00-Welcome.ipynb"
        label = "在 Binder 上启动课程（中文界面）" if EDITION == "zh-CN" else "Launch the course on Binder"
        link = f"{BINDER}/v2/gh/{REPOSITORY}/main?urlpath={path}"
        source[0] = re.sub(r"^(# .*\n)", rf"\1\n[{label}]({link})\n", source[0], count=1)


def counterpart(docname: str, edition: str = EDITION) -> tuple[str, str]:
    """(other edition, the same page's site path there): README ↔ README.zh-CN, notebooks/NN ↔ notebooks/zh-CN/NN."""
    other = "zh-CN" if edition == "en" else "en"
    here, there = EDITIONS[edition], EDITIONS[other]
    if docname == here["root"]:
        page = there["root"]
    elif docname.startswith(here["folder"] + "/"):
        page = there["folder"] + "/" + docname[len(here["folder"]) + 1:]
    else:
        page = there["root"]
    return other, posixpath.join(there["site"], page + ".html")


def _language_switch(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """The header link to this page in the other edition (book/_templates/language-switch.html draws it)."""
    other, target = counterpart(pagename)
    here = posixpath.join(EDITIONS[EDITION]["site"], pagename + ".html")
    context["kdlab_switch"] = {"url": posixpath.relpath(target, posixpath.dirname(here) or "."),
                               "label": EDITIONS[other]["label"], "lang": other}


def _fix_chinese_search(out: Path) -> None:
    """Sphinx 9.0.4 writes `window.Stemmer = ChineseStemmer`, a class it never defines (its Chinese search uses the
    English stemmer), so every Chinese page logs a ReferenceError and search finds nothing: sphinx-doc/sphinx#14229,
    fixed upstream by #14416 after 9.0.4. Make the same one-line change to the built file."""
    data = out / "_static" / "language_data.js"
    if data.is_file():
        text = data.read_text(encoding="utf-8")
        if "window.Stemmer = ChineseStemmer;" in text and "ChineseStemmer=" not in text:
            data.write_text(text.replace("window.Stemmer = ChineseStemmer;", "window.Stemmer = EnglishStemmer;"),
                            encoding="utf-8")


def _landing_page(app, exception) -> None:
    """GitHub Pages opens index.html: make it the README page."""
    if exception is None and app.builder.format == "html":
        out = Path(app.outdir)
        _fix_chinese_search(out)
        if (out / f"{root_doc}.html").is_file():
            shutil.copyfile(out / f"{root_doc}.html", out / "index.html")


def setup(app):
    _patch_inline_client()
    app.connect("source-read", _source_read)
    app.connect("build-finished", _landing_page)
    app.connect("html-page-context", _language_switch)
    return {"parallel_read_safe": False}
