#!/usr/bin/env bash
# Creates ./.venv with a Python >= 3.12 and installs vpl with its test extras.
# Looks for the interpreter in $PYTHON, then on PATH, then among pyenv's versions.
#   bash launch/setup_env.sh                    # CPU jax (laptops, CI)
#   bash launch/setup_env.sh --backend=cuda12   # NVIDIA GPU node: jax[cuda12]
#   bash launch/setup_env.sh --backend=tpu      # Cloud TPU VM: jax[tpu]
# It ends by printing the backend and devices jax sees.
set -euo pipefail
cd "$(dirname "$0")/.."

backend=${VPL_BACKEND:-cpu}
for arg in "$@"; do
  case "$arg" in
    --backend=*) backend=${arg#--backend=} ;;
    *) echo "setup_env: unknown argument $arg; use --backend=cpu|cuda12|tpu" >&2; exit 2 ;;
  esac
done
case "$backend" in
  cpu) extras="test" ;;
  cuda12|tpu) extras="test,$backend" ;;
  *) echo "setup_env: --backend=$backend; choose cpu, cuda12 or tpu" >&2; exit 2 ;;
esac

is_312() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }

find_python() {
  local c
  for c in ${PYTHON:-} python3.14 python3.13 python3.12 python3 python; do
    if command -v "$c" >/dev/null 2>&1 && is_312 "$c"; then command -v "$c"; return; fi
  done
  local root
  root=$( (pyenv root 2>/dev/null) || echo "$HOME/.pyenv")
  for c in $(ls -d "$root"/versions/3.* 2>/dev/null | sort -V -r); do
    if is_312 "$c/bin/python3"; then echo "$c/bin/python3"; return; fi
  done
  return 1
}

if [ -x .venv/bin/python ] && is_312 .venv/bin/python; then
  py=.venv/bin/python
else
  if ! base=$(find_python); then
    echo "setup_env: no Python >= 3.12 found (tried \$PYTHON, python3.1x and python3 on PATH," \
         "and pyenv's versions). jax >= 0.11 needs one: install Python 3.12+ and rerun," \
         "or point PYTHON=/path/to/python3.12 at it." >&2
    exit 1
  fi
  echo "setup_env: creating .venv with $base ($("$base" --version))"
  rm -rf .venv
  "$base" -m venv .venv
  py=.venv/bin/python
fi
"$py" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
"$py" -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
# MovieLens-100K (vpl/data/movielens.py) is read from the recbole wheel's data files. recbole
# requires torch and ray<=2.6.3 (no wheels for Python 3.13), none of which vpl uses or
# imports, so it cannot be a dependency in setup.cfg: install the wheel alone.
"$py" -m pip install --quiet --disable-pip-version-check --no-deps recbole==1.2.1
seen=$("$py" -c 'import jax; print(jax.__version__, jax.default_backend(), jax.devices())')
echo "setup_env: ready: $("$py" --version), jax ${seen%% *}; backend and devices: ${seen#* }"
if [ "$backend" != cpu ] && [ "$(echo "$seen" | cut -d" " -f2)" = cpu ]; then
  echo "setup_env: asked for --backend=$backend but jax sees only the CPU: check the" \
       "driver (nvidia-smi) or the TPU runtime on this machine." >&2
  exit 1
fi
