#!/usr/bin/env bash
# Installs the pinned AWS emulator (moto server) and the official resource
# schemas (cfn-lint, for the drivers' conformance test) into a virtualenv,
# once per machine, and prints the virtualenv's directory.
#
#   bash scripts/moto.sh            # install if needed, print the directory
#   "$(bash scripts/moto.sh)/bin/python" -m moto.server -H 127.0.0.1 -p 5000
#
# The tests call this themselves; FASTCART_MOTO_VENV overrides the location.
set -euo pipefail
MOTO_VERSION=5.2.5
CFN_LINT_VERSION=1.58.0
venv="${FASTCART_MOTO_VENV:-$HOME/.cache/fastcart/venv-moto-$MOTO_VERSION-cfn-lint-$CFN_LINT_VERSION}"
ready() { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import moto.server, cfnlint' 2>/dev/null; }
if ! ready; then
  mkdir -p "$(dirname "$venv")"
  exec 9>"$venv.lock"
  flock 9
  if ! ready; then
    command -v python3 >/dev/null || { echo "python3 is needed to install moto server (apt-get install python3 python3-venv)" >&2; exit 1; }
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet "moto[server]==$MOTO_VERSION" "cfn-lint==$CFN_LINT_VERSION" >&2
  fi
fi
echo "$venv"
