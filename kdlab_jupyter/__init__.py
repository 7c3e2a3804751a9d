"""Open JupyterLab in the Chinese edition: /kdlab/language/zh-CN sets the interface language, then opens notebook 00.

JupyterLab reads its interface language only from the user setting `@jupyterlab/translation-extension:plugin`
`locale`, with no URL parameter, and one Binder image serves both editions. So this Jupyter server extension
gives the Chinese Binder link (README.zh-CN.md) and `make lab-zh` one URL that writes that setting (the
language pack jupyterlab-language-pack-zh-cn provides the strings) and redirects to notebooks/zh-CN/00-Welcome.ipynb.
`/kdlab/language/en` switches back and opens the English notebook 00. A package of its own, next to kdlab, so that
the Jupyter server does not import kdlab (and torch) just to serve this one URL.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

EDITIONS = {"zh-CN": ("zh_CN", "zh-CN/00-Welcome.ipynb"), "en": ("en", "00-Welcome.ipynb")}
SETTING = Path("@jupyterlab") / "translation-extension" / "plugin.jupyterlab-settings"


def user_settings_dir() -> Path:
    """Where JupyterLab keeps user settings: JUPYTERLAB_SETTINGS_DIR, else <jupyter config dir>/lab/user-settings."""
    if os.environ.get("JUPYTERLAB_SETTINGS_DIR"):
        return Path(os.environ["JUPYTERLAB_SETTINGS_DIR"])
    from jupyter_core.paths import jupyter_config_dir

    return Path(jupyter_config_dir()) / "lab" / "user-settings"


def set_lab_locale(locale: str, settings_dir: Path | None = None) -> Path:
    """Write JupyterLab's interface language into the user settings, keeping any other translation setting."""
    path = (settings_dir or user_settings_dir()) / SETTING
    current = {}
    if path.exists():
        try:
            current = json.loads(path.read_text(encoding="utf-8") or "{}")
        except json.JSONDecodeError:  # JupyterLab writes JSON5 with comments; a file we cannot read is replaced
            current = {}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**current, "locale": locale}, indent=2), encoding="utf-8")
    return path


def _handler():
    """The tornado handler class (imported lazily: kdlab itself must not need jupyter_server)."""
    from jupyter_server.base.handlers import JupyterHandler
    from jupyter_server.utils import ensure_async, url_path_join
    from tornado import web

    class LanguageHandler(JupyterHandler):
        """GET /kdlab/language/<edition>: set the interface language, open that edition's notebook 00."""

        @web.authenticated
        async def get(self, edition: str) -> None:
            if edition not in EDITIONS:
                raise web.HTTPError(404, f"kdlab has the editions {', '.join(EDITIONS)}, not {edition!r}")
            locale, notebook = EDITIONS[edition]
            # The server's root is the repository (Binder) or its notebooks/ folder (make lab): look in both.
            found = None
            for path in (f"notebooks/{notebook}", notebook):
                if await ensure_async(self.contents_manager.file_exists(path)):  # async contents managers too
                    found = path
                    break
            if found is None:
                raise web.HTTPError(404, f"{notebook} is not under this server's root folder")
            set_lab_locale(locale)
            self.redirect(url_path_join(self.base_url, "lab", "tree", found))

    return LanguageHandler


def _jupyter_server_extension_points() -> list[dict]:
    """Lets `jupyter server extension enable kdlab_jupyter` find this module."""
    return [{"module": "kdlab_jupyter"}]


def _load_jupyter_server_extension(serverapp) -> None:
    """Register /kdlab/language/<edition> on the running Jupyter server."""
    from jupyter_server.utils import url_path_join

    web_app = serverapp.web_app
    route = url_path_join(web_app.settings["base_url"], "kdlab", "language", "([A-Za-z-]+)")
    web_app.add_handlers(".*$", [(route, _handler())])


def enable(prefix: Path | None = None) -> Path:
    """Turn the extension on for every Jupyter server of this environment (make setup, binder/postBuild)."""
    import sys

    path = Path(prefix or sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "kdlab.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"ServerApp": {"jpserver_extensions": {"kdlab_jupyter": True}}}, indent=2) + "\n")
    return path
