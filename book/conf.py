"""Sphinx configuration of the course book (built by book/build.py; `make book`).

Source: the repository root, restricted to README.md (the landing page), the numbered notebooks in order, and
notebooks/INSTRUCTOR.md. Notebooks are executed during the build by MyST-NB, cell by cell ("inline"), so a
widget's picture can be taken the moment its cell has run: a static page cannot run Python, so each widget is
shown as the figure it draws at its default setting, with a note pointing at the Binder launch button.
Offline by construction: MathJax 3 is served from _static/mathjax (book/build.py fetches it), no widget
JavaScript is loaded from a CDN, and the README's Binder badge (an external image) becomes a text link.
KDLAB_BOOK_PAGES=00,02 builds only those notebooks (tests/test_book.py); nothing else changes.
"""

from __future__ import annotations

import copy
import html
import os
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = os.environ.get("KDLAB_BOOK_REPOSITORY", "OWNER/kdlab")  # the workflow sets it to the real one
BINDER = "https://mybinder.org"


def _notebooks(selection: str | None) -> list[str]:
    """Docnames of the numbered notebooks, in order; only the numbers in `selection` ("00,02") when given."""
    found = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    if not selection:
        return [f"notebooks/{stem}" for stem in found]
    wanted = [n.strip() for n in selection.split(",") if n.strip()]
    numbers = [stem[:2] for stem in found]
    unknown = [n for n in wanted if n not in numbers]
    if unknown:
        raise ValueError(f"KDLAB_BOOK_PAGES names {unknown}, which are not notebooks; choose from {numbers}")
    return [f"notebooks/{stem}" for stem in found if stem[:2] in wanted]


LESSONS = _notebooks(os.environ.get("KDLAB_BOOK_PAGES"))

project = "kdlab"
author = "the kdlab authors"
html_title = "kdlab — knowledge distillation, taught with notebooks"
root_doc = "README"
extensions = ["myst_nb"]
include_patterns = ["README.md", "notebooks/INSTRUCTOR.md"] + [f"{name}.ipynb" for name in LESSONS]
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
mathjax_path = "mathjax/tex-chtml.js"

html_theme = "sphinx_book_theme"
html_theme_options = {
    "repository_url": f"https://github.com/{REPOSITORY}",
    "repository_branch": "main",
    "path_to_docs": "",
    "use_repository_button": True,
    "launch_buttons": {"binderhub_url": BINDER, "notebook_interface": "jupyterlab"},
    "show_navbar_depth": 1,
}
html_last_updated_fmt = None
html_context = {"default_mode": "light"}  # without it the theme logs "invalid theme mode" on every page
html_copy_source = False


# --- widgets: the picture at the default setting instead of a "VBox(...)" stub ---

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ("<p class=\"kdlab-widget-note\"><em>An interactive widget: here is the picture it showed when its "
               "cell had run, at its default setting. To move its controls, launch this lesson on Binder (the "
               "rocket button at the top of the page) or run it in JupyterLab.</em></p>")


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
        # The Binder badge is an image on mybinder.org: a text link keeps the page offline.
        source[0] = re.sub(r"\[!\[Binder\]\([^)]*\)\]\(([^)]*)\)", r"[Launch on Binder](\1)", source[0], count=1)
        toc = "\n".join(LESSONS + ["notebooks/INSTRUCTOR"])
        source[0] += f"\n\n```{{toctree}}\n:hidden:\n:caption: The course\n\n{toc}\n```\n"
    elif docname == "notebooks/INSTRUCTOR":
        link = f"{BINDER}/v2/gh/{REPOSITORY}/main?urlpath=lab/tree/notebooks/00-Welcome.ipynb"
        source[0] = re.sub(r"^(# .*\n)", rf"\1\n[Launch the course on Binder]({link})\n", source[0], count=1)


def _landing_page(app, exception) -> None:
    """GitHub Pages opens index.html: make it the README page."""
    if exception is None and app.builder.format == "html":
        out = Path(app.outdir)
        if (out / "README.html").is_file():
            shutil.copyfile(out / "README.html", out / "index.html")


def setup(app):
    _patch_inline_client()
    app.connect("source-read", _source_read)
    app.connect("build-finished", _landing_page)
    return {"parallel_read_safe": False}
