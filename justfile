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
    cargo clippy --all-targets -- -D warnings

# Benchmarks: footprint (binary size, startup, idle RSS) and login (argon2id limit vs
# logins/s, burst RSS, uniform failure timing). `just bench --quick` for a smoke run.
bench *ARGS:
    cargo build --release --target x86_64-unknown-linux-musl
    cargo bench --bench footprint -- {{ARGS}}
    cargo bench --bench login -- {{ARGS}}
    cargo bench --bench tokens -- {{ARGS}}

# The static x86_64 musl release binary, checked to be static and to start.
release:
    bash scripts/check-static.sh

# What CI runs.
ci:
    bash .ci/run
