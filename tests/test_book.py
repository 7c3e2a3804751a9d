"""The rendered book (book/build.py, `make book`): a two-lesson build, opened in headless Chromium, offline.

The build is the one `make book` runs, with KDLAB_BOOK_PAGES limiting it to notebooks 00 (an `interact`
widget) and 02 (maths, figures, the kdlab temperature explorer), so it fits in CI's time. Every page is loaded
from file://, and every request the browser makes is recorded: anything that is not file:// (or localhost)
fails the test, so the book cannot quietly depend on a CDN. Both editions are built: the Chinese one (zh-CN/ of
the site) is checked the same way, plus its language switch both ways. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from chromium import ChromiumNotFound, find_chromium, launched

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
LESSONS = ["notebooks/00-Welcome", "notebooks/02-Soft-Targets-and-Temperature"]
ZH_LESSONS = [name.replace("notebooks/", "zh-CN/notebooks/zh-CN/") for name in LESSONS]
PAGES = ["README", *LESSONS, "notebooks/INSTRUCTOR", "zh-CN/README.zh-CN", *ZH_LESSONS, "zh-CN/notebooks/zh-CN/INSTRUCTOR"]


def _load(name: str, path: Path):
    """Import a file of book/ under a name of its own ("build" and "conf" are too common to put on sys.path)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


book_build = _load("kdlab_book_build", ROOT / "book" / "build.py")  # the same build `make book` runs
book_conf = _load("kdlab_book_conf", ROOT / "book" / "conf.py")  # its widget-to-picture step, tested without a build


# --- the widget step alone: a state like the one nbclient records, turned into what a static page shows ---

def _view(model_id: str) -> dict:
    return {"output_type": "display_data", "metadata": {},
            "data": {"text/plain": "VBox(children=(FloatLogSlider(value=1.0), Output()))",
                     book_conf.WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": model_id}}}


def test_widget_becomes_its_picture_and_a_note():
    png = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}}
    state = {"box": {"_model_name": "VBoxModel", "children": ["IPY_MODEL_slider", "IPY_MODEL_out"],
                     "layout": "IPY_MODEL_layout"},
             "slider": {"_model_name": "FloatLogSliderModel", "value": 1.0},
             "out": {"_model_name": "OutputModel", "outputs": [png]},
             "layout": {"_model_name": "LayoutModel"}}
    shown = book_conf.static_outputs(_view("box"), state)
    assert shown[0] == png
    assert "Binder" in shown[1]["data"]["text/html"]
    assert len(shown) == 2 and all(book_conf.WIDGET_VIEW not in o.get("data", {}) for o in shown)


def test_widget_without_a_picture_shows_its_text_and_plain_outputs_pass():
    state = {"bar": {"_model_name": "HBoxModel", "children": ["IPY_MODEL_left", "IPY_MODEL_right"]},
             "left": {"_model_name": "HTMLModel", "value": "epoch 3/3"},
             "right": {"_model_name": "HTMLModel", "value": "<b>100%</b>"}}
    assert book_conf.static_outputs(_view("bar"), state) == [
        {"output_type": "stream", "name": "stdout", "text": "epoch 3/3 100%\n"}]
    plain = {"output_type": "stream", "name": "stdout", "text": "hello\n"}
    assert book_conf.static_outputs(plain, state) == [plain]


def test_unknown_page_number_is_refused_before_any_build():
    with pytest.raises(ValueError, match=r"'99'.*choose from \['00', '01'"):
        book_conf._notebooks("00,99")


# --- the real build, in a real browser ---

@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    if importlib.util.find_spec("myst_nb") is None:
        pytest.fail("The book test needs the book's requirements: `.venv/bin/pip install -r requirements-book.txt` "
                    "(make test installs them).", pytrace=False)
    import kdlab

    kdlab.load_teacher_cache(progress=False)  # built before the build, so the build measures the notebooks
    index = book_build.build(tmp_path_factory.mktemp("book") / "html", pages="00,02", quiet=True)
    assert index.is_file(), "the build wrote no index.html"
    return index.parent


@pytest.fixture(scope="module")
def browser():
    try:
        executable = find_chromium()
    except ChromiumNotFound as missing:
        pytest.fail(str(missing), pytrace=False)
    with launched(executable) as chromium:
        yield chromium


def open_page(browser, path: Path):
    """Load one page; returns (page, requests to other hosts, console errors, page errors)."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
    outside, console_errors, page_errors = [], [], []

    def route(route):
        url = urlparse(route.request.url)
        if url.scheme in ("file", "data", "blob") or url.hostname in ("localhost", "127.0.0.1"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.goto(path.as_uri(), wait_until="load")
    return page, outside, console_errors, page_errors


@pytest.mark.parametrize("name", PAGES)
def test_page_is_offline_and_error_free(book, browser, name):
    page, outside, console_errors, page_errors = open_page(browser, book / f"{name}.html")
    try:
        page.wait_for_timeout(500)
        assert not outside, f"{name}: requests left the machine: {outside}"
        assert not page_errors, f"{name}: page errors: {page_errors}"
        assert not console_errors, f"{name}: console errors: {console_errors}"
        binder = page.locator("a[href*='mybinder.org/v2/gh/']")
        assert binder.count() >= 1, f"{name}: no Binder launch link"
    finally:
        page.context.close()


def test_landing_page_is_the_readme(book):
    assert (book / "index.html").read_bytes() == (book / "README.html").read_bytes()
    assert (book / "zh-CN" / "index.html").read_bytes() == (book / "zh-CN" / "README.zh-CN.html").read_bytes()


def test_unknown_edition_is_refused_before_any_build(tmp_path):
    with pytest.raises(SystemExit, match="editions en, zh-CN, not fr"):
        book_build.build(tmp_path, editions=("fr",))
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name", PAGES)
def test_language_switch_leads_to_the_same_page_in_the_other_edition_and_back(book, name):
    import re

    def switch(path: Path) -> Path:
        links = re.findall(r'<a class="[^"]*kdlab-language-switch[^"]*" href="([^"]+)"', path.read_text(encoding="utf-8"))
        assert len(links) == 1, f"{path.relative_to(book)}: {len(links)} language switches"
        return (path.parent / links[0]).resolve()

    here = (book / f"{name}.html").resolve()
    there = switch(here)
    assert there.is_file(), f"{name}: the switch points at {there}, which the build did not write"
    assert ("zh-CN" in there.relative_to(book.resolve()).parts) != ("zh-CN" in here.relative_to(book.resolve()).parts)
    assert Path(name).name.split("-")[0] in there.name or "README" in there.name  # the same lesson number
    assert switch(there) == here, f"{name}: the way back leads elsewhere"


@pytest.mark.parametrize("name", ZH_LESSONS)
def test_chinese_lesson_page_is_chinese_with_figures_and_maths(book, browser, name):
    page, outside, _, _ = open_page(browser, book / f"{name}.html")
    try:
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        figures = page.locator("article img[src*='_images/']")
        assert figures.count() >= 1, f"{name}: no figure"
        page.wait_for_selector("mjx-container", state="attached", timeout=30_000)
        assert page.locator("mjx-merror").count() == 0
        text = page.locator("article").inner_text()
        assert len(re.findall(r"[\u4e00-\u9fff]", text)) > 500, f"{name}: the page is not in Chinese"
        assert "missing from font" not in text and "No font with Chinese glyphs" not in text, f"{name}: boxes for glyphs"
        assert page.locator(".kdlab-widget-note", has_text="交互控件").count() >= 1
        assert page.locator("details:has(summary:text-is('参考答案'))").count() >= 1 or name.endswith("00-Welcome")
        assert not outside
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.locator(".kdlab-widget-note").first.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / f"book-zh-{name.split('/')[-1][:2]}-widget.png"))
    finally:
        page.context.close()


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_page_has_figures_maths_widget_picture_and_navigation(book, browser, name):
    page, outside, _, _ = open_page(browser, book / f"{name}.html")
    try:
        figures = page.locator("article img[src*='_images/']")
        assert figures.count() >= 1, f"{name}: no figure"
        page.wait_for_function("() => [...document.querySelectorAll('article img')].every(i => i.complete)",
                               timeout=30_000)
        widths = figures.evaluate_all("images => images.map(i => i.naturalWidth)")
        assert all(w > 0 for w in widths), f"{name}: a figure did not load: natural widths {widths}"
        # MathJax 3 (served from _static) replaces every $...$ with an mjx-container once it has typeset them.
        page.wait_for_selector("mjx-container", state="attached", timeout=30_000)
        assert page.locator("mjx-container").count() >= 1
        assert page.locator("mjx-merror").count() == 0, f"{name}: MathJax reported a TeX error"
        text = page.locator("article").inner_text()
        assert "VBox(" not in text and "HBox(" not in text and "interactive(children" not in text.replace(
            "interactive(children=(FloatLogSlider(...", ""), f"{name}: a widget is shown as its text stub"
        # each lesson here has a widget: its picture, then the note that sends the reader to Binder
        note = page.locator(".kdlab-widget-note")
        assert note.count() >= 1, f"{name}: no widget note"
        picture = page.locator(".cell:has(.kdlab-widget-note) img")
        assert picture.count() >= 1, f"{name}: the widget cell shows no picture"
        assert page.locator(".prev-next-area a.left-prev").count() == 1, f"{name}: no link to the previous page"
        assert page.locator(".prev-next-area a.right-next").count() == 1, f"{name}: no link to the next page"
        assert page.locator("a[href*='mybinder.org/v2/gh/'][href*='" + name.split("/")[1] + ".ipynb']").count() >= 1
        assert not outside, f"{name}: requests left the machine: {outside}"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.locator(".kdlab-widget-note").first.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / f"book-{name.split('/')[1][:2]}-widget.png"))
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOTS / f"book-{name.split('/')[1][:2]}-top.png"))
    finally:
        page.context.close()


def test_exercises_show_stub_and_feedback_with_solutions_folded(book, browser):
    page, _, _, _ = open_page(browser, book / f"{LESSONS[1]}.html")
    try:
        solutions = page.locator("details:has(summary:text-is('Solution'))")
        assert solutions.count() >= 1, "notebook 02 has exercises, but the page shows no Solution"
        assert all(not d for d in solutions.evaluate_all("ds => ds.map(d => d.open)")), "a solution is unfolded"
        exercise = page.locator(".cell.tag_exercise")
        assert 1 <= exercise.count() <= solutions.count()  # "think" exercises have a Solution but no code cell
        assert page.locator(".cell.tag_exercise .cell_output").count() == exercise.count(), \
            "an exercise cell shows no feedback from its check"
        assert "Traceback" not in page.locator("article").inner_text()
    finally:
        page.context.close()
