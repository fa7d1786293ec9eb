#!/usr/bin/env bash
# How many AWS requests a refresh of the whole fastcart stack costs: applies
# the stack to the local emulator, then runs `fastcart plan -v` (which prints
# the requests it sent, per operation) and sums them. The engine reads one
# batched call per resource type where AWS allows it; Terraform reads one
# call (or more) per resource.
#
# With --s3 the state is in an S3 bucket of the emulator (`--backend`), and
# the figures are the apply's, where the state's own requests (lock, lease,
# journal entries, saves, compaction) are counted as s3:* beside the rest.
#
#   bash scripts/bench-requests.sh              # the order stack
#   bash scripts/bench-requests.sh flask-api    # another stack
#   bash scripts/bench-requests.sh --s3         # the order stack's apply, state in S3
set -euo pipefail
cd "$(dirname "$0")/.."
s3=""
if [ "${1:-}" = "--s3" ]; then s3=1; shift; fi
cargo build --locked --quiet --bin fastcart
bin="${CARGO_TARGET_DIR:-target}/debug/fastcart"
. scripts/emulator.sh
state=(--state-dir "$(mktemp -d)" --env bench --stack "${1:-fastcart}")
report() {
  grep '^aws requests:' "$1" | sed 's/^aws requests: //' | awk '{ print $NF, $0 }' | sort -n -r | cut -d' ' -f2-
  grep '^aws requests:' "$1" | awk '{ s += $NF; if ($3 ~ /^s3:/) t += $NF } END { printf "%d AWS requests in all, %d of them for the state in S3\n", s, t }'
}
if [ -n "$s3" ]; then
  "$venv/bin/python" -c '
import boto3, os
boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="eu-central-1").create_bucket(
    Bucket="fastcart-bench-state", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})'
  state+=(--backend s3://fastcart-bench-state/states)
  "$bin" apply -v --auto-approve "${state[@]}" 2>"$emulator_log.req" >/dev/null
  echo "apply of $("$bin" state list "${state[@]}" | grep -c '::') resources:"
  report "$emulator_log.req"
else
  "$bin" apply --auto-approve "${state[@]}" >/dev/null
  resources=$("$bin" state list "${state[@]}" | grep -c '::')
  "$bin" plan -v "${state[@]}" 2>"$emulator_log.req" >/dev/null
  echo "plan of $resources resources:"
  report "$emulator_log.req"
fi
"$bin" destroy --auto-approve "${state[@]}" >/dev/null
rm -f "$emulator_log.req"
