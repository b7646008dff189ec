#!/usr/bin/env bash
# Creates or updates the Python environment used to regenerate golden fixtures
# (test/golden/make_golden.py) and to run the reference benchmarks (bench/*.py).
#
#   bash scripts/python-env.sh          # venv at <repo>/.venv (git-ignored)
#   ATTUNE_VENV=/some/dir bash scripts/python-env.sh
#   PYTHON=python3.12 bash scripts/python-env.sh
#
# Idempotent: an existing venv is reused and pip only installs what is missing.
# pip runs with --retries 0 --timeout 2: on machines without internet pip's configured
# local wheel store answers at once, while the unreachable public index would otherwise
# stall every package for minutes. Exits non-zero, with a message, when anything fails.
# Neither the app nor its tests need this: CI compares against committed fixtures.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ATTUNE_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
packages=(torch transformers peft accelerate safetensors tokenizers)

fail() {
  echo "python-env: $*" >&2
  exit 1
}

command -v "$python" >/dev/null 2>&1 || fail "no '$python' on PATH (set PYTHON=...)"

if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  echo "python-env: creating venv at $venv with $("$python" --version 2>&1)"
  rm -rf "$venv"
  "$python" -m venv "$venv" || fail "could not create a venv at $venv (is the venv module installed?)"
else
  echo "python-env: reusing venv at $venv"
fi

# Skip pip entirely when everything already imports (fast path for repeated calls).
if ! "$venv/bin/python" - "${packages[@]}" >/dev/null 2>&1 <<'EOF'
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
EOF
then
  echo "python-env: installing ${packages[*]}"
  start=$SECONDS
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check --retries 0 --timeout 2 \
      "${packages[@]}"; then
    fail "pip could not install ${packages[*]} into $venv.
  The packages come from pip's configured index / wheel store (pip config list);
  without network access or a local wheel store they cannot be installed here."
  fi
  echo "python-env: installed in $((SECONDS - start)) s"
fi

"$venv/bin/python" - "${packages[@]}" <<'EOF' || fail "the venv at $venv is incomplete (an import failed)"
import importlib, sys
print(f"python-env: python {sys.version.split()[0]} at {sys.executable}")
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    print(f"python-env: {name} {getattr(module, '__version__', '?')}")
EOF
