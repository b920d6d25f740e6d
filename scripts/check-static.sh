#!/usr/bin/env bash
# Builds the x86_64 musl release binary (scripts/release.sh, which checks it
# with `file` and prints its size), then proves with ldd that it is static
# and that it starts and answers /healthz. Used by `just release` and `.ci/run`.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
bash scripts/release.sh "$target"
binary="${CARGO_TARGET_DIR:-target}/$target/release/authd"

linkage=$(ldd "$binary" 2>&1 || true)
echo "ldd: $linkage"
case "$linkage" in
  *"statically linked"*|*"not a dynamic executable"*) ;;
  *) echo "ldd found dynamic dependencies" >&2; exit 1 ;;
esac

work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(( 20000 + RANDOM % 20000 ))
AUTHD_SERVER__LISTEN="127.0.0.1:$port" AUTHD_STORAGE__DATA_DIR="$work/data" \
  "$binary" --config config.toml.example >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if body=$(curl -fsS "http://127.0.0.1:$port/healthz" 2>/dev/null); then
    echo "healthz: $body"
    [ "$body" = '{"status":"ok"}' ] || { echo "unexpected body" >&2; exit 1; }
    kill -TERM "$pid"; wait "$pid"
    echo "static binary OK"
    exit 0
  fi
  sleep 0.1
done
echo "static binary did not answer /healthz:" >&2; cat "$work/log" >&2; exit 1
