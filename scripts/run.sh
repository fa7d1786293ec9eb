#!/usr/bin/env bash
# The main job end to end: build fastcart, then plan and apply both of
# FastCart's stacks: the order-processing platform (`fastcart`, in
# eu-central-1) and the Flask API (`flask-api`, in eu-south-1).
#
# With no AWS account configured (no AWS_ACCESS_KEY_ID, AWS_PROFILE,
# ~/.aws/credentials or ~/.aws/config), or with FASTCART_EMULATOR=1, it runs against a local
# AWS emulator (moto server, installed into a virtualenv by scripts/moto.sh and
# started on 127.0.0.1): for each stack plan, apply, outputs, plan again (no
# changes), drift-check, destroy. The emulator stops when the script ends.
#
# With an AWS account it runs `fastcart plan` and `fastcart apply` for each
# stack, which show the plan and ask before changing anything.
#
#   bash scripts/run.sh                  # ENVIRONMENT_SUFFIX picks the environment (default dev)
#   bash scripts/run.sh flask-api        # one stack only
set -euo pipefail
cd "$(dirname "$0")/.."

# FASTCART_BIN: a fastcart binary already built from this tree (CI passes
# the one its test build made, which a separate `cargo build` would compile
# again with other features).
if [ -n "${FASTCART_BIN:-}" ]; then
  bin="$FASTCART_BIN"
else
  cargo build --locked --quiet --bin fastcart
  bin="${CARGO_TARGET_DIR:-target}/debug/fastcart"
fi

has_account() {
  [ -n "${AWS_ACCESS_KEY_ID:-}" ] || [ -n "${AWS_PROFILE:-}" ] || [ -f "$HOME/.aws/credentials" ] || [ -f "$HOME/.aws/config" ]
}

if [ $# -gt 0 ]; then stacks=("$@"); else stacks=(fastcart flask-api); fi

if [ "${FASTCART_EMULATOR:-}" != "1" ] && has_account; then
  for stack in "${stacks[@]}"; do
    echo "== AWS account configured: planning and applying $stack for real (${AWS_REGION:+region $AWS_REGION, from AWS_REGION; }else its own region)"
    "$bin" plan --stack "$stack"
    "$bin" apply --stack "$stack"
  done
  exit 0
fi

. scripts/emulator.sh
# A fresh emulator each run: its state and outputs go to a scratch directory,
# never over a real account's .fastcart/ or cfn-outputs/.
scratch="$(mktemp -d)"
state=(--state-dir "$scratch/state" --outputs-dir "$scratch/cfn-outputs")
trap 'kill $emulator_pid 2>/dev/null; rm -rf "$emulator_log" "$scratch"' EXIT
echo "== no AWS account configured: using the local emulator at $AWS_ENDPOINT_URL"

step() { echo; echo "\$ fastcart $*"; "$bin" "$@" "${state[@]}"; }
for stack in "${stacks[@]}"; do
  echo
  echo "== stack $stack"
  step plan --stack "$stack"
  step apply --stack "$stack" --auto-approve
  step outputs --stack "$stack"
  step plan --stack "$stack" --detailed-exitcode
  step drift-check --stack "$stack"
  step destroy --stack "$stack" --auto-approve
done
echo
echo "Done: ${stacks[*]} planned, applied, checked for drift and destroyed against the emulator."
