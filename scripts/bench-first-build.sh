#!/usr/bin/env bash
# First-build times: a fresh `bash scripts/run.sh`, then a fresh `bash .ci/run`,
# of one commit, each in a fresh clone with an empty build directory (the
# crates already downloaded, the emulator's virtualenv already installed).
# Takes 15 to 50 minutes and about 35 GB of disk at its peak; it appends one
# line per run to bench-first-build-LABEL.txt in the current directory.
#
#   bash scripts/bench-first-build.sh before ee3352e
#   bash scripts/bench-first-build.sh after HEAD
set -u
label=$1
repo="$(cd "$(dirname "$0")/.." && pwd)"
commit=$(git -C "$repo" rev-parse "$2")
out="$PWD/bench-first-build-$label.txt"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for what in run ci; do
  rm -rf "$scratch/clone" "$scratch/target"
  git clone -q "$repo" "$scratch/clone" && git -C "$scratch/clone" checkout -q "$commit"
  cd "$scratch/clone"
  start=$(date +%s)
  if [ $what = run ]; then
    CARGO_TARGET_DIR="$scratch/target" FASTCART_EMULATOR=1 bash scripts/run.sh > "$scratch/$what.log" 2>&1; rc=$?
  else
    CARGO_TARGET_DIR="$scratch/target" bash .ci/run > "$scratch/$what.log" 2>&1; rc=$?
  fi
  end=$(date +%s)
  size=$(du -sh "$scratch/target" | cut -f1)
  grep -h "Finished" "$scratch/$what.log" | sed "s/^/$label $what: /" >> "$out"
  echo "$label $what commit=${commit:0:7} rc=$rc seconds=$((end-start)) target=$size" >> "$out"
  cd "$repo"
done
