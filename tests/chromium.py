"""Find the Chromium that the browser tests drive: one search, used by tests/test_browser.py and the Makefile.

The order, first hit wins:
1. the environment variable KDLAB_CHROMIUM (a path to a Chromium or Chrome binary; when set, nothing else is tried,
   so a wrong path is reported instead of quietly replaced by another browser);
2. `chromium`, `chromium-browser` or `google-chrome` on PATH (Debian, Ubuntu, Fedora, Chrome's own packages);
3. the Chromium that Playwright downloads with `python -m playwright install chromium`, if that file exists.

`python tests/chromium.py` prints the path and exits 0, or prints one line saying what to install and exits 1.
Standard library only (Playwright is optional), so the Makefile can run it in any Python.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

ENV_VAR = "KDLAB_CHROMIUM"
COMMANDS = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = (f"install one: `sudo apt-get install chromium` (Debian/Ubuntu), or `python -m playwright install chromium` "
                f"(run it with .venv/bin/python), or set {ENV_VAR} to a Chromium or Chrome binary")


# Headless, and nothing that talks to the network by itself (the browser tests also record every request).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextmanager
def launched(executable: str) -> Iterator[object]:
    """The Chromium at `executable`, started by Playwright with CHROMIUM_ARGS and closed afterwards (browser and book tests)."""
    from playwright.sync_api import sync_playwright  # imported here: the Makefile runs this file without Playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class ChromiumNotFound(RuntimeError):
    """No usable Chromium; the message is one line that says what to install."""


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def playwright_chromium() -> str | None:
    """Where Playwright keeps its own Chromium, or None when Playwright is not installed or cannot say."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    try:
        with sync_playwright() as playwright:
            return playwright.chromium.executable_path
    except Exception:  # a broken driver means "no Playwright browser here", not a crash of the search
        return None


def find_chromium(environ: Mapping[str, str] | None = None, which: Callable[[str], str | None] = shutil.which,
                  playwright_path: Callable[[], str | None] = playwright_chromium) -> str:
    """The path of the Chromium to use, searched in the order of this module's docstring; raises ChromiumNotFound."""
    environ = os.environ if environ is None else environ
    chosen = environ.get(ENV_VAR, "").strip()
    if chosen:
        if _is_executable(chosen):
            return chosen
        raise ChromiumNotFound(f"{ENV_VAR}={chosen} is not an executable file; point it at a Chromium or Chrome "
                               f"binary, or unset it to search PATH")
    for command in COMMANDS:
        found = which(command)
        if found and _is_executable(found):
            return found
    downloaded = playwright_path()
    if downloaded and _is_executable(downloaded):
        return downloaded
    raise ChromiumNotFound(f"The browser tests need Chromium and found none ({', '.join(COMMANDS)} not on PATH, no "
                           f"Playwright Chromium): {INSTALL_HINT}.")


def main() -> int:
    try:
        print(find_chromium())
    except ChromiumNotFound as missing:
        print(missing, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
