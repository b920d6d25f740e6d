#!/usr/bin/env bash
# Runs the ARM release binary (built by scripts/release.sh TRIPLE) under
# qemu-user on a temp data dir and a free loopback port, and drives it with
# curl: /healthz, register, login, an authenticated GET and a refresh
# rotation, then SIGTERM and a clean exit. Any failure exits non-zero and
# prints the server's log.
#
#   scripts/arm-smoke.sh aarch64-unknown-linux-musl | armv7-unknown-linux-musleabihf
#
# Installs qemu-user, curl and python3 (for JSON) from Debian if missing.
# The exec → first /healthz time is printed as a trend figure: under qemu it
# measures the emulator as much as authd.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: scripts/arm-smoke.sh TRIPLE}"
case "$target" in
  aarch64-*) qemu=qemu-aarch64 ;;
  armv7-*|arm-*) qemu=qemu-arm ;;
  *) echo "not an ARM target: $target" >&2; exit 2 ;;
esac
binary="${CARGO_TARGET_DIR:-target}/$target/release/authd"
[ -x "$binary" ] || { echo "no $binary: run scripts/release.sh $target first" >&2; exit 1; }

for tool in "$qemu:qemu-user" curl:curl python3:python3; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq "${tool#*:}" >/dev/null
  fi
done

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL ($target): $*" >&2
  echo "--- server log" >&2
  cat "$work/log" >&2 || true
  exit 1
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
started=$(date +%s.%N)
AUTHD_SERVER__LISTEN="127.0.0.1:$port" AUTHD_STORAGE__DATA_DIR="$work/data" \
  AUTHD_PASSWORDS__MEMORY_KIB=8192 AUTHD_PASSWORDS__ITERATIONS=1 AUTHD_PASSWORDS__PARALLELISM=1 \
  "$qemu" "$binary" --config config.toml.example >"$work/log" 2>&1 &
pid=$!

healthy=
for _ in $(seq 1 600); do
  if body=$(curl -fsS "$base/healthz" 2>/dev/null); then
    healthy=$(date +%s.%N)
    break
  fi
  kill -0 "$pid" 2>/dev/null || fail "the server exited before answering /healthz"
  sleep 0.05
done
[ -n "$healthy" ] || fail "no answer on /healthz within 30 s"
[ "$body" = '{"status":"ok"}' ] || fail "/healthz answered $body"
echo "healthz: $body after $(awk -v a="$started" -v b="$healthy" 'BEGIN { printf "%.2f", b - a }') s (exec under $qemu to first answer)"

# call EXPECTED_STATUS curl-args...: the body goes to $work/body.
call() {
  local expected=$1 status
  shift
  status=$(curl -sS -o "$work/body" -w '%{http_code}' "$@") || fail "curl $*"
  [ "$status" = "$expected" ] || fail "$* answered $status, not $expected: $(cat "$work/body")"
}
# field NAME: prints the string field NAME of $work/body; false if it is absent or empty.
field() {
  python3 -c '
import json, sys
value = json.load(open(sys.argv[1])).get(sys.argv[2])
if not isinstance(value, str) or not value:
    sys.exit(1)
print(value)' "$work/body" "$1" 2>/dev/null
}
answer() { cat "$work/body"; }

credentials='{"email":"smoke@example.com","password":"Correct-Horse-42"}'
call 201 "$base/register" -H 'content-type: application/json' \
  -d '{"email":"smoke@example.com","password":"Correct-Horse-42","name":"Smoke"}'
[ "$(field email)" = smoke@example.com ] || fail "register answered $(answer)"
echo "register: 201"

call 200 "$base/login" -H 'content-type: application/json' -d "$credentials"
access=$(field access_token) || fail "no access_token in $(answer)"
refresh=$(field refresh_token) || fail "no refresh_token in $(answer)"
echo "login: 200 with access and refresh tokens"

call 200 "$base/api/account" -H "Authorization: Bearer $access"
[ "$(field email)" = smoke@example.com ] || fail "/api/account answered $(answer)"
echo "account: 200 with the access token"

call 200 "$base/oauth/token" --data-urlencode grant_type=refresh_token \
  --data-urlencode "refresh_token=$refresh"
field access_token >/dev/null || fail "no access_token in $(answer)"
rotated=$(field refresh_token) || fail "no refresh_token in $(answer)"
[ "$rotated" != "$refresh" ] || fail "the refresh token did not rotate"
echo "refresh: 200 with a new access and refresh token"

kill -TERM "$pid"
for _ in $(seq 1 300); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$pid" 2>/dev/null && fail "still running 30 s after SIGTERM"
status=0
wait "$pid" || status=$?
pid=
[ "$status" = 0 ] || fail "exit status $status after SIGTERM"
echo "SIGTERM: clean exit"
echo "arm smoke OK ($target)"
