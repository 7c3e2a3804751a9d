#!/bin/bash
# Replays Binder's build of this repository locally: a fresh environment, then binder/postBuild,
# then a check that the teacher cache was really built. Exits non-zero when any step fails.
#
#   bash scripts/replay_postbuild.sh        # about 5 min: pip install ~3 min, teacher cache ~2 min
#   KEEP=1 bash scripts/replay_postbuild.sh # keep the temporary folder to look around afterwards
#   TORCH_WHEEL=path/to/torch-2.13.0+cpu-….whl bash scripts/replay_postbuild.sh  # see "torch" below
#
# What differs from Binder, and why:
# - Binder builds binder/environment.yml with conda (Python 3.11, torch from conda-forge's
#   pytorch-cpu, everything else from PyPI). pip cannot build a conda environment, so this script
#   makes a plain venv and installs the same pins from requirements.txt; tests/test_binder.py keeps
#   the two files in step, version for version.
# - torch: Binder's is CPU-only and postBuild refuses a CUDA one. From PyPI, torch==2.13.0 on Linux is
#   the CUDA build, so where pip would pick that, this script stops before downloading it and asks for
#   TORCH_WHEEL: a CPU wheel of torch 2.13.0 for this Python, fetched as PyTorch's install selector says
#   (Compute Platform: CPU), e.g. with `pip download --no-deps` and the options the selector shows.
# - Binder builds from a fresh clone. This replays from a copy of the working tree as git sees it
#   (tracked and untracked-but-not-ignored files), so .venv, .cache and other ignored files can't
#   make it pass, yet uncommitted edits are replayed too.
# - KDLAB_CACHE points at the temporary folder, so the repository's own .cache is never touched.
# Not part of `make test` (too slow); run it after changing binder/, requirements.txt or the cache.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
work=$(mktemp -d "${TMPDIR:-/tmp}/kdlab-replay.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
  trap 'echo "kept: $work"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi

started=$SECONDS
stage() { printf '\n== %s (t=%ds)\n' "$1" "$((SECONDS - started))"; }

stage "copy the working tree as a fresh clone would see it"
mkdir "$work/repo"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | tar --null -T - -cf -) | tar -xf - -C "$work/repo"
[ -x "$work/repo/binder/postBuild" ] || { echo "FAIL: binder/postBuild is not executable" >&2; exit 1; }

stage "fresh virtual environment ($("$PYTHON" --version 2>&1)), binder's Python is 3.11"
"$PYTHON" -m venv "$work/venv"
export PATH="$work/venv/bin:$PATH" VIRTUAL_ENV="$work/venv"
pip_started=$SECONDS
# The full pip log goes to a file and is shown only when the install fails.
python -m pip install --upgrade pip > "$work/pip.log" 2>&1 || { tail -n 40 "$work/pip.log" >&2; exit 1; }
if [ -n "${TORCH_WHEEL:-}" ]; then
  python -m pip install --no-deps "$TORCH_WHEEL" >> "$work/pip.log" 2>&1 \
    || { tail -n 40 "$work/pip.log" >&2; echo "FAIL: could not install TORCH_WHEEL=$TORCH_WHEEL" >&2; exit 1; }
fi
# Resolve first (metadata only): stop before pip downloads about 2.7 GB of CUDA wheels that postBuild would refuse.
python -m pip install --dry-run --quiet --report "$work/plan.json" -r "$work/repo/requirements.txt" >> "$work/pip.log" 2>&1 \
  || { tail -n 40 "$work/pip.log" >&2; echo "FAIL: pip could not resolve requirements.txt" >&2; exit 1; }
python - "$work/plan.json" <<'EOF'
import json, sys
names = [item["metadata"]["name"] for item in json.load(open(sys.argv[1]))["install"]]
cuda = sorted(n for n in names if n.lower().startswith("nvidia-"))
if cuda:
    sys.exit(f"FAIL: pip would install the CUDA build of torch here ({len(cuda)} nvidia-* packages, e.g. {cuda[0]}), "
             "which Binder's CPU-only environment never has. Rerun with TORCH_WHEEL=<a torch 2.13.0 CPU wheel>, "
             "fetched as PyTorch's install selector says (Compute Platform: CPU).")
EOF
if ! python -m pip install -r "$work/repo/requirements.txt" >> "$work/pip.log" 2>&1; then
  tail -n 40 "$work/pip.log" >&2
  echo "FAIL: pip install -r requirements.txt (full log: $work/pip.log; rerun with KEEP=1 to keep it)" >&2
  exit 1
fi
pip_s=$((SECONDS - pip_started))
python - <<'EOF'
import torch
assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__
assert torch.version.cuda is None, f"this torch is a CUDA build ({torch.version.cuda}); Binder's is CPU-only"
print(f"torch {torch.__version__}, CPU-only")
EOF

stage "binder/postBuild, as repo2docker runs it (from the repository root)"
export KDLAB_CACHE="$work/cache"
unset HF_HUB_OFFLINE  # postBuild must set it itself
post_started=$SECONDS
(cd "$work/repo" && ./binder/postBuild)
post_s=$((SECONDS - post_started))

stage "check what postBuild left behind"
shopt -s nullglob
caches=("$KDLAB_CACHE"/teacher-*.safetensors)
if [ ${#caches[@]} -eq 0 ]; then
  echo "FAIL: no teacher cache in $KDLAB_CACHE after postBuild" >&2
  exit 1
fi
# A learner's first call must now load the cache, not rebuild it: time it from a new process.
(cd "$work/repo" && HF_HUB_OFFLINE=1 python - <<'EOF'
import time
import kdlab
start = time.perf_counter()
cache = kdlab.load_teacher_cache(progress=False)
seconds = time.perf_counter() - start
print(f"teacher cache {cache.path.name}: test accuracy {cache.accuracy('test'):.3f}, loaded in {seconds:.1f} s")
assert seconds < 30, "the cache was rebuilt instead of loaded"
EOF
)
grep -q '"@jupyterlab/apputils-extension:announcements": true' \
  "$work/venv/etc/jupyter/labconfig/page_config.json" \
  || { echo "FAIL: JupyterLab's announcements plugin is not disabled" >&2; exit 1; }
echo "JupyterLab news/update popup disabled"

printf '\nOK: postBuild replayed in %ds (pip install %ds, postBuild %ds)\n' \
  "$((SECONDS - started))" "$pip_s" "$post_s"
