#!/usr/bin/env bash
# The main job end to end: build fastcart, then plan and apply the FastCart
# order-processing stack.
#
# With no AWS account configured (no AWS_ACCESS_KEY_ID, AWS_PROFILE,
# ~/.aws/credentials or ~/.aws/config), or with FASTCART_EMULATOR=1, it runs against a local
# AWS emulator (moto server, installed into a virtualenv by scripts/moto.sh and
# started on 127.0.0.1): plan, apply, outputs, plan again (no changes),
# drift-check, destroy. The emulator stops when the script ends.
#
# With an AWS account it runs `fastcart plan` and `fastcart apply`, which
# shows the plan and asks before changing anything.
#
#   bash scripts/run.sh                  # ENVIRONMENT_SUFFIX picks the environment (default dev)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --quiet --bin fastcart
bin="${CARGO_TARGET_DIR:-target}/debug/fastcart"

has_account() {
  [ -n "${AWS_ACCESS_KEY_ID:-}" ] || [ -n "${AWS_PROFILE:-}" ] || [ -f "$HOME/.aws/credentials" ] || [ -f "$HOME/.aws/config" ]
}

if [ "${FASTCART_EMULATOR:-}" != "1" ] && has_account; then
  echo "== AWS account configured: planning and applying for real (region ${AWS_REGION:-eu-central-1})"
  "$bin" plan
  exec "$bin" apply
fi

. scripts/emulator.sh
# A fresh emulator each run: its state and outputs go to a scratch directory,
# never over a real account's .fastcart/ or cfn-outputs/.
scratch="$(mktemp -d)"
state=(--state-dir "$scratch/state" --outputs-dir "$scratch/cfn-outputs")
trap 'kill $emulator_pid 2>/dev/null; rm -rf "$emulator_log" "$scratch"' EXIT
echo "== no AWS account configured: using the local emulator at $AWS_ENDPOINT_URL"

step() { echo; echo "\$ fastcart $*"; "$bin" "$@" "${state[@]}"; }
step plan
step apply --auto-approve
step outputs
step plan --detailed-exitcode
step drift-check
step destroy --auto-approve
echo
echo "Done: the whole stack was planned, applied, checked for drift and destroyed against the emulator."
