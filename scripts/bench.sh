#!/usr/bin/env bash
# Every benchmark, then the one headline table (target/bench/summary.json).
# `just bench` runs this; `scripts/bench.sh --quick` is the smoke run CI does.
# Run the full set on an idle machine: the figures are ratios to limits
# measured in the same run, but a busy machine still moves them.
#
# A quick run only proves the harness works, so it builds nothing new: it
# runs the benches in the dev profile that `cargo test` already compiled
# (dependencies optimised, our code not) instead of a second release build,
# and reports the static binary's size only if it is already built.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/bench
rm -f target/bench/*.json
profile=()
if [[ " $* " == *" --quick "* ]]; then
  profile=(--profile dev)
else
  # The static binary is the one whose size counts.
  source scripts/musl-env.sh
  cargo build --release --target x86_64-unknown-linux-musl
fi
for bench in footprint login tokens apps scale postgres summary; do
  cargo bench "${profile[@]}" --bench "$bench" -- "$@"
done
