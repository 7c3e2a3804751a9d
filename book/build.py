"""Build the course as a static HTML book: every notebook executed (with the caches), README as the landing page.

    python book/build.py                      # the whole book into book/_build/html (what `make book` runs)
    python book/build.py --pages 00,02 --out DIR   # the same build, only README, notebooks 00 and 02, INSTRUCTOR.md
    python book/build.py --language en             # one edition only (default: both, Chinese into <out>/zh-CN)

Steps: (1) MathJax 3 from the npm registry into book/_static/mathjax (once; checked against a pinned SHA-256),
so the pages typeset maths with no network; (2) sphinx-build with book/conf.py over the repository root, always
from a fresh environment (-E), so every page is executed now, against this checkout's kdlab. A notebook that
raises stops the build. Standard library only; run it with the Python of .venv (Sphinx and MyST-NB from
requirements-book.txt).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
DEFAULT_OUT = BOOK / "_build" / "html"
MATHJAX_SPEC = "mathjax@3.2.2"
MATHJAX_SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"
MATHJAX_DIR = BOOK / "_static" / "mathjax"
PAGES_ENV = "KDLAB_BOOK_PAGES"
LANGUAGE_ENV = "KDLAB_BOOK_LANGUAGE"
EDITIONS = {"en": "", "zh-CN": "zh-CN"}  # edition → its folder inside the site (book/conf.py's EDITIONS)


def fetch_mathjax(target: Path = MATHJAX_DIR) -> Path:
    """MathJax 3's browser bundle (package/es5 of the npm package) in `target`; downloads it once with `npm pack`."""
    entry = target / "tex-chtml.js"
    if entry.is_file():
        return entry
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("The book needs npm to fetch MathJax (npm pack mathjax@3.2.2): install Node.js and npm "
                         "(Debian/Ubuntu: sudo apt-get install npm), then run the build again.")
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([npm, "pack", MATHJAX_SPEC, "--silent"], cwd=tmp, capture_output=True, text=True)
        tarballs = list(Path(tmp).glob("mathjax-*.tgz"))
        if done.returncode != 0 or len(tarballs) != 1:
            raise SystemExit(f"npm pack {MATHJAX_SPEC} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
        digest = hashlib.sha256(tarballs[0].read_bytes()).hexdigest()
        if digest != MATHJAX_SHA256:
            raise SystemExit(f"{tarballs[0].name} has SHA-256 {digest}, expected {MATHJAX_SHA256}: not using it.")
        staging = Path(tmp) / "es5"
        with tarfile.open(tarballs[0]) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/es5/") and m.isfile()]
            for member in members:
                member.name = member.name[len("package/es5/"):]
            tar.extractall(staging, members=members, filter="data")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(staging), str(target))
    return entry


def build(out: Path = DEFAULT_OUT, pages: str | None = None, quiet: bool = False,
          editions: tuple[str, ...] = tuple(EDITIONS)) -> Path:
    """Run the book build into `out` (pages: None for every notebook, or numbers such as "00,02"); returns index.html.

    Each edition is its own sphinx-build (the Chinese one into out/zh-CN), so each has its own table of contents.
    """
    unknown = [e for e in editions if e not in EDITIONS]
    if unknown:
        raise SystemExit(f"the book has the editions {', '.join(EDITIONS)}, not {', '.join(unknown)}")
    fetch_mathjax()
    out = Path(out).resolve()
    for edition in editions:
        env = dict(os.environ)
        env.pop(PAGES_ENV, None)
        if pages:
            env[PAGES_ENV] = pages
        env[LANGUAGE_ENV] = edition
        env.pop("KDLAB_LANGUAGE", None)  # each notebook says its own language (the Chinese ones in their first cell)
        env["HF_HUB_OFFLINE"] = "1"  # the build reads the caches; nothing may come from a hub
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        site = out / EDITIONS[edition]
        command = [sys.executable, "-m", "sphinx", "-b", "html", "-E", "-c", str(BOOK), "-d", str(site / ".doctrees"),
                   str(ROOT), str(site)]
        if quiet:
            command.insert(3, "-q")
        subprocess.run(command, cwd=ROOT, env=env, check=True)
    return out / EDITIONS[editions[0]] / "index.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--pages", default=None,
                        help="comma-separated notebook numbers to include, e.g. 00,02 (default: every notebook)")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("--language", choices=[*EDITIONS, "both"], default="both",
                        help="which edition to build (default both: English, and Chinese into OUT/zh-CN)")
    args = parser.parse_args(argv)
    editions = tuple(EDITIONS) if args.language == "both" else (args.language,)
    try:
        index = build(args.out, args.pages, args.quiet, editions)
    except subprocess.CalledProcessError as error:
        print(f"The book build failed (sphinx-build exit {error.returncode}); the log above says where.",
              file=sys.stderr)
        return 1
    print(f"The book: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
