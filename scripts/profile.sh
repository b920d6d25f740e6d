#!/usr/bin/env bash
# Where an authenticated GET spends its time: builds authd with symbols
# (`--profile profiling`), starts it on a temp data dir, signs a user up and
# makes a PAT, then samples the server with `perf record` (cpu-clock, which
# works where hardware counters are not exposed) while wrk loads it, and
# prints the share of each component and the top symbols.
#
#   scripts/profile.sh [pat|access|healthz|forward-auth|forward-auth-pat] [seconds]
#                                                        (default: pat 5)
#
# forward-auth asks `/forward-auth/nginx` about a protected host with the
# UI's session cookie, forward-auth-pat with the PAT.
#
# Installs perf and wrk from Debian's packages if they are missing. Not run
# by CI: a developer's tool for the figures in the benchmark notes.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario="${1:-pat}"
seconds="${2:-5}"

for tool in perf:linux-perf wrk:wrk curl:curl; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq "${tool#*:}" >/dev/null
  fi
done
cargo build --profile profiling --bin authd
binary="${CARGO_TARGET_DIR:-target}/profiling/authd"

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$work/config.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
[storage]
data_dir = "$work/data"
[log]
level = "warn"
[passwords]
memory_kib = 1024
iterations = 1
parallelism = 1
[forward_auth]
[[forward_auth.rules]]
hosts = ["app.home.test"]
policy = "one_factor"
EOF
"$binary" --config "$work/config.toml" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
base="http://127.0.0.1:$port"
until curl -sf "$base/healthz" >/dev/null; do sleep 0.05; done

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
curl -sf "$base/register" -H 'content-type: application/json' \
  -d '{"email":"profile@example.com","password":"Correct-Horse-42"}' >/dev/null
access="$(curl -sf "$base/login" -H 'content-type: application/json' \
  -d '{"email":"profile@example.com","password":"Correct-Horse-42"}' | json '["access_token"]')"
org="$(curl -sf "$base/api/v1/org/memberships" -H "Authorization: Bearer $access" | json '["active_org_id"]')"
pat="$(curl -sf "$base/api/v1/auth/api-tokens" -H "Authorization: Bearer $access" \
  -H "X-Active-Org-Id: $org" -H 'content-type: application/json' \
  -d '{"name":"profile","scopes":["sessions.read"],"expires_in_days":1}' | json '["token"]')"

cookie="$(curl -si "$base/ui/api/login" -H 'content-type: application/json' \
  -d '{"email":"profile@example.com","password":"Correct-Horse-42"}' |
  sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p' | paste -sd ';' | sed 's/;/; /g')"
original=(-H "X-Original-URL: https://app.home.test/dashboard")

case "$scenario" in
  pat) args=(-H "Authorization: Bearer $pat" "$base/api/account") ;;
  forward-auth) args=("${original[@]}" -H "Cookie: $cookie" "$base/forward-auth/nginx") ;;
  forward-auth-pat) args=("${original[@]}" -H "Authorization: Bearer $pat" "$base/forward-auth/nginx") ;;
  access) args=(-H "Authorization: Bearer $access" "$base/api/account") ;;
  healthz) args=("$base/healthz") ;;
  *) echo "unknown scenario $scenario (pat, access, healthz, forward-auth, forward-auth-pat)" >&2; exit 2 ;;
esac

wrk -t1 -c32 -d1s "${args[@]}" >/dev/null # warm-up
perf record -q -e cpu-clock -F 999 -g -p "$server" -o "$work/perf.data" -- sleep "$((seconds + 1))" >/dev/null 2>&1 &
recorder=$!
sleep 0.3
echo "== $scenario: wrk -t1 -c32 -d${seconds}s (generator on the same cores)"
wrk -t1 -c32 -d"${seconds}s" "${args[@]}" | grep -E "Requests/sec|Non-2xx|Latency"
wait "$recorder"

report() { perf report -i "$work/perf.data" --no-children --stdio -g none "$@" 2>/dev/null; }
echo "== share of the server's CPU samples by component"
report --sort dso,sym | python3 -c '
import collections, re, sys
groups = [
    ("kernel: sockets, scheduling", lambda dso, sym: dso.startswith("[kernel")),
    ("serde_json: records and bodies", lambda dso, sym: "serde" in sym),
    ("redb", lambda dso, sym: "redb" in sym),
    ("hyper / http", lambda dso, sym: "hyper" in sym or "http::" in sym),
    ("axum / tower", lambda dso, sym: "axum" in sym or "tower" in sym),
    ("tokio", lambda dso, sym: "tokio" in sym or "mio" in sym),
    ("malloc / memcpy", lambda dso, sym: re.search(r"malloc|free|realloc|mem(move|cpy|set|cmp)", sym)),
    ("sha2 / jwt / signatures", lambda dso, sym: re.search(r"sha2|jsonwebtoken|rsa|ed25519|curve25519", sym)),
    ("authd", lambda dso, sym: "authd" in sym),
]
shares = collections.Counter()
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[.\]\s+(.*)", line)
    if not m:
        continue
    share, dso, sym = float(m.group(1)), m.group(2), m.group(3)
    name = next((n for n, test in groups if test(dso, sym)), "other")
    shares[name] += share
for name, share in shares.most_common():
    print(f"{share:6.1f}%  {name}")
'
echo "== top symbols"
report --sort sym | grep -E "^ +[0-9]" | head -"${PROFILE_TOP:-20}"
