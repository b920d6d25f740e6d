#!/usr/bin/env bash
# Every benchmark, then the one headline table (target/bench/summary.json).
# `just bench` runs this; `scripts/bench.sh --quick` is the smoke run CI does.
# Run the full set on an idle machine: the figures are ratios to limits
# measured in the same run, but a busy machine still moves them.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/bench
rm -f target/bench/*.json
cargo build --release --target x86_64-unknown-linux-musl
for bench in footprint login tokens scale summary; do
  cargo bench --bench "$bench" -- "$@"
done
