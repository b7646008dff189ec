#!/usr/bin/env bash
# The PEFT interop check (test/interop/check_peft.py): Attune's saved adapters loaded with
# PeftModel.from_pretrained and compared, and PEFT-made adapters loaded into Attune.
#
#   bash scripts/interop-check.sh [--build auto|always|never] [--keep]
#
# It needs the Python reference libraries (torch, transformers, peft), which
# scripts/python-env.sh installs from this machine's local wheel store. Where they cannot be
# installed (no wheel store, no network: most CI machines) it prints one line saying it skipped
# and exits 0; otherwise it exits with the check's status (0 = every check passed).
# ATTUNE_VENV and PYTHON are honoured as by python-env.sh.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ATTUNE_VENV:-$root/.venv}"

if ! bash "$root/scripts/python-env.sh" >/dev/null 2>&1; then
  echo "interop check skipped: the Python reference libraries (torch, transformers, peft) cannot be installed here"
  exit 0
fi

cd "$root" && "$venv/bin/python" "$root/test/interop/check_peft.py" "$@"
