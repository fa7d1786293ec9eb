#!/usr/bin/env bash
# How many AWS requests a refresh of the whole fastcart stack costs: applies
# the stack to the local emulator, then runs `fastcart plan -v` (which prints
# the requests it sent, per operation) and sums them. The engine reads one
# batched call per resource type where AWS allows it; Terraform reads one
# call (or more) per resource.
#
#   bash scripts/bench-requests.sh              # the order stack
#   bash scripts/bench-requests.sh flask-api    # another stack
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --quiet --bin fastcart
bin="${CARGO_TARGET_DIR:-target}/debug/fastcart"
. scripts/emulator.sh
state=(--state-dir "$(mktemp -d)" --env bench --stack "${1:-fastcart}")
"$bin" apply --auto-approve "${state[@]}" >/dev/null
resources=$("$bin" state list "${state[@]}" | grep -c '::')
"$bin" plan -v "${state[@]}" 2>"$emulator_log.req" >/dev/null
grep '^aws requests:' "$emulator_log.req" | sed 's/^aws requests: //' | awk '{ print $NF, $0 }' | sort -n -r | cut -d' ' -f2-
total=$(grep '^aws requests:' "$emulator_log.req" | awk '{ s += $NF } END { print s }')
echo "plan of $resources resources: $total AWS requests in all"
"$bin" destroy --auto-approve "${state[@]}" >/dev/null
rm -f "$emulator_log.req"
