"""The Binder configuration (binder/) against requirements.txt: Binder itself can't be reached from a test.

repo2docker reads only binder/ when that folder exists, so it has to be complete on its own and
stay in step with requirements.txt, which is what `make setup` and CI install. These tests read the
files as text; scripts/replay_postbuild.sh is the slow end-to-end replay of binder/postBuild.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
ENVIRONMENT = BINDER / "environment.yml"
POSTBUILD = BINDER / "postBuild"
START = BINDER / "start"

# requirements.txt entries that deliberately stay off Binder, with the reason.
NOT_ON_BINDER = {
    "playwright": "drives the headless-Chromium browser test; Binder has no Chromium",
}
# Binder names for requirements.txt packages that come from conda-forge instead of PyPI.
CONDA_NAME = {"torch": "pytorch-cpu"}
# conda packages that are not Python requirements and so have no line in requirements.txt.
CONDA_ONLY = {"python", "pip"}
BINDER_PYTHON = "3.11"
TORCH_VERSION = "2.13.0"  # the project-wide pin (a ranged torch pulls a multi-GB CUDA build)


def normalize(name: str) -> str:
    """PEP 503 name normalisation, so huggingface_hub and huggingface-hub are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirements(text: str) -> dict[str, str]:
    """requirements.txt as {normalized name: pinned version}; every line must be `name==version`."""
    pins = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;=<>!~]+)", line)
        if not match:
            raise ValueError(f"requirements.txt line is not an exact pin 'name==version': {raw!r}")
        pins[normalize(match.group(1))] = match.group(2)
    return pins


def parse_environment(text: str) -> dict:
    """The subset of environment.yml that repo2docker uses: channels, conda deps, the pip list.

    A deliberately small reader (block lists of plain strings, one `- pip:` sub-list), so the test
    needs no YAML library that requirements.txt does not pin. Anything it does not understand is an
    error, never silently skipped.
    """
    env: dict = {"name": None, "channels": [], "conda": [], "pip": []}
    section = None
    pip_indent = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"\s+#.*$", "", raw.rstrip()) if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        stripped = line.strip()
        if indent == 0:
            key, _, value = stripped.partition(":")
            if key == "name":
                env["name"] = value.strip()
                section = None
            elif key in ("channels", "dependencies") and not value.strip():
                section = key
            else:
                raise ValueError(f"environment.yml:{number}: unexpected top-level entry {stripped!r}")
            pip_indent = None
            continue
        if not stripped.startswith("- "):
            raise ValueError(f"environment.yml:{number}: expected a '- item' list entry, got {stripped!r}")
        item = stripped[2:].strip().strip("'\"")
        if section == "channels":
            env["channels"].append(item)
        elif section == "dependencies":
            if pip_indent is not None and indent > pip_indent:
                env["pip"].append(item)
            elif item == "pip:":
                pip_indent = indent
            else:
                pip_indent = None
                env["conda"].append(item)
        else:
            raise ValueError(f"environment.yml:{number}: list entry outside channels/dependencies")
    return env


def conda_pins(env: dict) -> dict[str, str]:
    """Conda dependencies as {name: version}; a missing version is ''."""
    pins = {}
    for spec in env["conda"]:
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:={1,2}\s*([^\s=]+))?(?:=\S+)?", spec)
        if not match:
            raise ValueError(f"conda dependency not understood: {spec!r}")
        pins[normalize(match.group(1))] = match.group(2) or ""
    return pins


def pip_pins(env: dict) -> dict[str, str]:
    """The pip section as {normalized name: version}; raises on anything that is not `name==version`."""
    return parse_requirements("\n".join(env["pip"]))


def drift(requirements: dict[str, str], env: dict) -> list[str]:
    """Every way the Binder environment differs from requirements.txt, as readable lines (empty: in step)."""
    problems = []
    conda, pip = conda_pins(env), pip_pins(env)
    for name, version in sorted(requirements.items()):
        if name in NOT_ON_BINDER:
            continue
        if name in CONDA_NAME:
            binder_name, binder_version = CONDA_NAME[name], conda.get(CONDA_NAME[name])
            if name in pip:
                problems.append(f"{name} is in the pip section; it must come from conda as {binder_name}")
        else:
            binder_name, binder_version = name, pip.get(name)
        if binder_version is None:
            problems.append(f"{name}=={version} from requirements.txt is missing in binder/environment.yml")
        elif binder_version != version:
            problems.append(f"{binder_name} is {binder_version} in binder/environment.yml but {name}=={version} in requirements.txt")
    for name, version in sorted(pip.items()):
        if name not in requirements:
            problems.append(f"pip package {name}=={version} is on Binder but not pinned in requirements.txt")
        elif name in NOT_ON_BINDER:
            problems.append(f"{name} is on Binder although NOT_ON_BINDER says: {NOT_ON_BINDER[name]}")
    allowed_conda = CONDA_ONLY | set(CONDA_NAME.values())
    for name in sorted(set(conda) - allowed_conda):
        problems.append(f"conda package {name} is not in requirements.txt; add it there (pinned) or to the pip section")
    return problems


@pytest.fixture(scope="module")
def requirements() -> dict[str, str]:
    return parse_requirements((ROOT / "requirements.txt").read_text())


@pytest.fixture(scope="module")
def env() -> dict:
    return parse_environment(ENVIRONMENT.read_text())


@pytest.fixture(scope="module")
def postbuild() -> str:
    return POSTBUILD.read_text()


# --- the folder -----------------------------------------------------------------------------------

def test_binder_folder_holds_one_complete_configuration():
    for path in (ENVIRONMENT, POSTBUILD, START):
        assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    # With environment.yml present these would be ignored (runtime.txt, requirements.txt) or would
    # replace everything (Dockerfile): a second, silently unused source of truth.
    for name in ("requirements.txt", "runtime.txt", "Dockerfile", "environment.yaml", "setup.py"):
        assert not (BINDER / name).exists(), f"binder/{name} would be ignored or override environment.yml; remove it"
    assert not (ROOT / ".binder").exists(), "repo2docker refuses a repository with both binder/ and .binder/"


def test_binder_never_names_a_package_index():
    for path in BINDER.iterdir():
        text = path.read_text()
        for option in ("index-url", "extra-index", "find-links", "--trusted-host", "-f http", "-i http"):
            assert option not in text, f"binder/{path.name} names a package index ({option}); keep to the defaults"


# --- versions: the drift check --------------------------------------------------------------------

def test_every_pin_in_requirements_is_on_binder_with_the_same_version(requirements, env):
    problems = drift(requirements, env)
    assert not problems, "binder/environment.yml has drifted from requirements.txt:\n  " + "\n  ".join(problems)


def test_the_drift_check_catches_a_changed_version(requirements, env):
    """The check above has to be able to fail: feed it a Binder env with one version changed."""
    changed = {**env, "pip": [re.sub(r"==.*", "==0.0.1", env["pip"][0]), *env["pip"][1:]]}
    assert any("0.0.1" in line for line in drift(requirements, changed))
    torch_moved = {**env, "conda": [c.replace(TORCH_VERSION, "2.12.0") for c in env["conda"]]}
    assert any("pytorch-cpu is 2.12.0" in line for line in drift(requirements, torch_moved))
    missing = {**env, "pip": env["pip"][1:]}
    assert any("missing" in line for line in drift(requirements, missing))
    extra = {**env, "pip": [*env["pip"], "voila==0.5.0"]}
    assert any("voila" in line for line in drift(requirements, extra))


def test_packages_left_off_binder_are_still_real_requirements(requirements):
    stale = set(NOT_ON_BINDER) - set(requirements)
    assert not stale, f"NOT_ON_BINDER names packages that requirements.txt no longer has: {sorted(stale)}"


def test_torch_is_2_13_0_and_cpu_only_on_binder(requirements, env):
    assert requirements["torch"] == TORCH_VERSION, "torch must be pinned torch==2.13.0 in requirements.txt"
    conda = conda_pins(env)
    assert conda.get("pytorch-cpu") == TORCH_VERSION, "binder must install conda-forge's pytorch-cpu==2.13.0"
    assert "torch" not in pip_pins(env), "torch from PyPI pulls the multi-GB nvidia-* CUDA wheels"
    assert "pytorch" not in conda or conda["pytorch"] == TORCH_VERSION
    names = list(conda) + list(pip_pins(env))
    cuda = [n for n in names if n.startswith(("nvidia-", "cuda", "pytorch-cuda", "cudatoolkit")) or n == "pytorch-gpu"]
    assert not cuda, f"CUDA packages on a CPU-only Binder: {cuda}"
    assert env["channels"] == ["conda-forge"], "only conda-forge: the pytorch/nvidia channels carry CUDA builds"


def test_binder_python_is_3_11(env):
    assert conda_pins(env).get("python") == BINDER_PYTHON
    pyproject = (ROOT / "pyproject.toml").read_text()
    floor = re.search(r'requires-python\s*=\s*">=\s*(\d+)\.(\d+)"', pyproject)
    if floor:
        assert (3, 11) >= (int(floor.group(1)), int(floor.group(2))), "pyproject's requires-python excludes Binder's Python"


def test_environment_reader_agrees_with_a_real_yaml_parser(env):
    """Guards the small reader above against YAML it misreads; skipped where PyYAML is absent."""
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(ENVIRONMENT.read_text())
    assert data["channels"] == env["channels"]
    conda = [d for d in data["dependencies"] if isinstance(d, str)]
    pip = [p for d in data["dependencies"] if isinstance(d, dict) for p in d.get("pip", [])]
    assert conda == env["conda"] and pip == env["pip"]
    assert set(data) <= {"name", "channels", "dependencies"}


# --- postBuild and start --------------------------------------------------------------------------

def _commands(script: str) -> list[str]:
    return [line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")]


def _git_mode(path: Path) -> str | None:
    if not shutil.which("git") or not (ROOT / ".git").exists():
        return None
    out = subprocess.run(["git", "ls-files", "-s", "--", str(path.relative_to(ROOT))], cwd=ROOT,
                         capture_output=True, text=True).stdout
    return out.split()[0] if out else None


@pytest.mark.parametrize("path", [POSTBUILD, START], ids=["postBuild", "start"])
def test_scripts_are_executable_bash(path):
    text = path.read_text()
    assert text.startswith("#!/bin/bash\n"), f"{path.name} must start with #!/bin/bash (repo2docker runs it directly)"
    assert os.access(path, os.X_OK), f"{path.name} is not executable: chmod +x binder/{path.name}"
    mode = _git_mode(path)
    assert mode in (None, "100755"), f"git stores binder/{path.name} as {mode}: git update-index --chmod=+x"
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, f"{path.name} has a bash syntax error:\n{result.stderr}"


def test_postbuild_stops_at_the_first_error(postbuild):
    commands = _commands(postbuild)
    assert commands[0] == "set -euo pipefail", "postBuild's first command must be `set -euo pipefail`"


def test_postbuild_installs_kdlab_without_re_resolving_dependencies(postbuild):
    installs = [c for c in _commands(postbuild) if "pip install" in c]
    assert installs and all("--no-deps" in c for c in installs), "every pip install in postBuild needs --no-deps"
    assert any(re.search(r"pip install .*-e \.$", c) for c in installs), "postBuild must `pip install --no-deps -e .`"


def test_postbuild_builds_the_teacher_cache_offline(postbuild):
    commands = _commands(postbuild)
    build = [i for i, c in enumerate(commands) if "load_teacher_cache(progress=False)" in c]
    assert build, "postBuild must build the teacher cache with kdlab.load_teacher_cache(progress=False)"
    offline = [i for i, c in enumerate(commands) if re.search(r"\bHF_HUB_OFFLINE=1\b", c)]
    assert offline and min(offline) <= build[0], "the cache build must run with HF_HUB_OFFLINE=1"
    install = [i for i, c in enumerate(commands) if "-e ." in c]
    assert install and install[0] < build[0], "install kdlab before building its cache"


def test_postbuild_silences_jupyterlab_news(postbuild):
    plugin = "@jupyterlab/apputils-extension:announcements"
    assert any("labextension disable" in c and plugin in c for c in _commands(postbuild))
    # The plugin id must still exist in the pinned JupyterLab, or the disable is a silent no-op.
    static = Path(sys.prefix) / "share" / "jupyter" / "lab" / "static"
    bundles = list(static.glob("*.js")) if static.is_dir() else []
    if not bundles:
        pytest.skip("JupyterLab's static files are not installed in this environment")
    assert any(plugin in p.read_text(errors="ignore") for p in bundles), f"JupyterLab no longer has {plugin}"


def test_start_hands_over_to_jupyter():
    commands = _commands(START.read_text())
    assert commands[-1] == 'exec "$@"', 'binder/start must end with exec "$@" or Jupyter never starts'


# --- README badge ---------------------------------------------------------------------------------

def test_readme_binder_badge_opens_the_welcome_notebook_in_lab():
    readme = ROOT / "README.md"
    text = readme.read_text() if readme.exists() else ""
    if "mybinder" not in text:
        pytest.xfail("README.md has no Binder badge yet (no 'mybinder' in it); see binder/ and the badge text in the Binder issue")
    badge = re.search(r"\[!\[[^\]]*\]\((https://mybinder\.org/badge_logo\.svg)\)\]\((https://mybinder\.org/v2/[^)\s]+)\)", text)
    assert badge, "README mentions mybinder but has no [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/...) badge"
    url = badge.group(2)
    match = re.fullmatch(r"https://mybinder\.org/v2/gh/([\w.-]+)/([\w.-]+)/([\w./-]+)\?urlpath=(?:%2F)?lab(?:%2F|/)tree(?:%2F|/)(\S+)", url)
    assert match, f"badge URL should be https://mybinder.org/v2/gh/OWNER/REPO/REF?urlpath=lab/tree/notebooks/..., got {url}"
    target = match.group(4).replace("%2F", "/")
    assert (ROOT / target).exists(), f"the badge opens {target}, which is not in the repository"
