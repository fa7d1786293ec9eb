#!/usr/bin/env bash
# Runs every test of the workspace and ends with one line of totals.
# `.ci/run` calls this same script.
set -euo pipefail
cd "$(dirname "$0")/.."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, i }' \
  <(sed 's/;//g' "$log")
exit "$status"
