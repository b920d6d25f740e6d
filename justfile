# Conveniences; every recipe is a plain cargo or bash command you can run
# without just (install it with `cargo install just --locked` or `pip install rust-just`).

# Run the server with the example config (listens on 127.0.0.1:9090).
run:
    cargo run --release -- --config config.toml.example

# The whole test suite, exactly as CI runs it.
test:
    cargo test

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check
    cargo clippy --all-targets -- -D warnings
    cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings

# Every fuzz target (fuzz/fuzz_targets: JWTs, upstream ID tokens, token formats,
# signed links, request bodies and cookies through the real router, WebAuthn
# answers, config files, a corrupted database) for SECONDS each, with libFuzzer
# and AddressSanitizer; installs cargo-fuzz if missing. docs/fuzzing.md has the
# figures. `bash scripts/fuzz.sh SECONDS TARGET…` runs a few.
fuzz SECONDS="60":
    bash scripts/fuzz.sh {{SECONDS}}

# The crash harness (tests/crash, docs/reliability.md): kill -9 the real
# binary N times under a mixed write load (and during a key rotation, a
# backup, a migration and a sweep at start), restart it, check every
# acknowledged write; lost must be 0. AUTHD_CRASH_SEED=… reruns a seed.
# `cargo test` runs it with 10 kills.
crash N="100":
    AUTHD_CRASH_KILLS={{N}} cargo test --test crash

# Benchmarks, then one headline table (target/bench/summary.json): footprint
# (binary size, startup, idle RSS, audit database size and query latency),
# login (argon2id limit vs logins, logins + TOTP, registrations; burst RSS;
# uniform failure timing), tokens (sign and commit limits vs refresh
# rotations, access-token/PAT/JWKS GETs), apps (code exchanges vs sign and
# commit limits, client_credentials, userinfo; forward-auth checks vs /healthz
# and their p99 under a login storm), scale (login, refresh and PAT
# throughput and file size from 1,000 to 1,000,000 users), postgres (the
# same logins, rotations and PAT GETs on one redb server, one replica and
# two replicas over PostgreSQL; a PostgreSQL commit and read alone). Run on an idle
# machine; `just bench --quick` is a smoke run of a few seconds per bench
# (in the dev profile `cargo test` already built: it proves the harness only).
bench *ARGS:
    bash scripts/bench.sh {{ARGS}}

# The soak (not in CI): builds the static release binary, then runs mixed
# traffic at 1,000 requests/s over 1,000 kept-alive connections against it
# for MINUTES (default 30); per minute requests, errors, p50/p99, RSS and
# file size, p99 per kind of request; fails on an error, an RSS that grows
# past warm-up by more than 10 %, or an unstable p99 (target/bench/soak.json).
# AUTHD_SOAK_RATE and AUTHD_SOAK_CONNECTIONS change the load.
soak MINUTES="30":
    bash scripts/release.sh
    AUTHD_SOAK_MINUTES={{MINUTES}} cargo bench --bench soak

# Where an authenticated GET spends its time: perf samples of the server
# under wrk load, grouped by component (`pat`, `access`, `healthz`, or
# `forward-auth` / `forward-auth-pat`: nginx's check with a cookie / a PAT).
profile SCENARIO="pat" SECONDS="5":
    bash scripts/profile.sh {{SCENARIO}} {{SECONDS}}

# Rewrite scripts/hot-functions.txt: the functions requests run, found by
# running the release build's copy with symbols under callgrind (then run
# `just release` again to link with it); the x86_64 release link
# (scripts/link-ordered.py) packs them together, which keeps the binary's
# resident pages few. Needs valgrind (installed if missing).
hot-functions:
    bash scripts/hot-functions.sh

# A static release binary at target/TRIPLE/release/authd, checked with `file`
# (x86_64: also with ldd, and started); aarch64-unknown-linux-musl and
# armv7-unknown-linux-musleabihf are for the Raspberry Pi.
release TRIPLE="x86_64-unknown-linux-musl":
    if [ "{{TRIPLE}}" = x86_64-unknown-linux-musl ]; then bash scripts/check-static.sh; else bash scripts/release.sh {{TRIPLE}}; fi

# The ARM binary from `just release TRIPLE` under qemu-user: healthz,
# register, login, refresh, SIGTERM.
arm-smoke TRIPLE:
    bash scripts/arm-smoke.sh {{TRIPLE}}

# What CI runs.
ci:
    bash .ci/run
