#!/usr/bin/env bash
# Sourced by scripts: starts the local AWS emulator (moto server, installed by
# scripts/moto.sh) on a free port on 127.0.0.1, points the AWS SDK at it, and
# stops it when the sourcing script exits.
venv="$(bash scripts/moto.sh)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
emulator_log="$(mktemp)"
MOTO_IAM_LOAD_MANAGED_POLICIES=true "$venv/bin/python" tests/support/moto_server.py -H 127.0.0.1 -p "$port" >"$emulator_log" 2>&1 &
emulator_pid=$!
trap 'kill $emulator_pid 2>/dev/null; rm -f "$emulator_log"' EXIT
up=""
for _ in $(seq 1 150); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
  sleep 0.2
done
if [ -z "$up" ]; then
  { echo "the AWS emulator did not start on 127.0.0.1:$port within 30 s; its log:"; cat "$emulator_log"; } >&2
  exit 1
fi
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
# No AWS_REGION: each stack goes to its own region unless the caller set one.
unset AWS_PROFILE
