#!/usr/bin/env bash
# Runs every fuzz target in fuzz/fuzz_targets for SECONDS each (default 60)
# and prints one line per target: runs, seconds, and whether it crashed
# (the crashing input is then in fuzz/artifacts/TARGET/). docs/fuzzing.md
# says what each target feeds and what the runs so far found.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
#
# cargo-fuzz hands rustc nightly-only flags (`-Zsanitizer=address`,
# `-Cllvm-args=-sanitizer-coverage-*` behind `-Z` options). authd builds with
# the stable toolchain only, so RUSTC_BOOTSTRAP=1 lets stable rustc accept
# them: the same compiler, with its unstable options unlocked, for these
# builds and nothing else. FUZZ_SANITIZER=none builds without AddressSanitizer
# (faster, catches only panics, aborts and timeouts); the default is address.
#
# Inputs that find new coverage go to target/fuzz-corpus/TARGET, never into
# the committed seeds in fuzz/corpus/TARGET (both are read at start); copy
# the few worth keeping by hand, after `cargo fuzz cmin` if they are many.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true

# libfuzzer-sys compiles libFuzzer, which is C++.
if ! command -v c++ >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "== installing a C++ compiler for libFuzzer"
  apt-get update -qq && apt-get install -y -qq g++ >/dev/null
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-address}"
# FUZZ_BUILD=dev builds unoptimised: quicker to build, but far slower to
# run (in a CI trial jwt_verify's key set-up alone outlasted the 10 s
# per-input limit): for trying a target, not for runs that count.
build_flags=()
if [ "${FUZZ_BUILD:-release}" = dev ]; then
  build_flags=(--dev)
fi
if [ "$#" -gt 0 ]; then
  targets="$*"
else
  targets="$(cargo fuzz list --fuzz-dir fuzz)"
fi

echo "== building the fuzz targets (sanitizer: $sanitizer, ${FUZZ_BUILD:-release} build)"
cargo fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer" "${build_flags[@]}"

failed=()
summary=()
for target in $targets; do
  echo "== $target for ${seconds}s"
  scratch="target/fuzz-corpus/$target"
  mkdir -p "$scratch" "fuzz/corpus/$target"
  log="target/fuzz-corpus/$target.log"
  # -timeout: an input slower than 10 s is a finding (a hang), not a wait.
  if cargo fuzz run --fuzz-dir fuzz --sanitizer "$sanitizer" "${build_flags[@]}" "$target" \
      "$scratch" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
      -print_final_stats=1 >"$log" 2>&1; then
    outcome="no crash"
  else
    outcome="CRASHED (see $log and fuzz/artifacts/$target/)"
    failed+=("$target")
  fi
  runs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)"
  took="$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -oE 'in [0-9]+' | grep -oE '[0-9]+' | tail -1 || true)"
  line="$target: ${runs:-?} runs in ${took:-?} s, $outcome"
  echo "$line"
  tail -n 3 "$log"
  summary+=("$line")
done

echo "== fuzzing summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "crashed: ${failed[*]}" >&2
  exit 1
fi
