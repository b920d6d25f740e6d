#!/usr/bin/env bash
# Builds the static release binary target/TRIPLE/release/authd, checks with
# `file` that it is statically linked, and prints its size.
#
#   scripts/release.sh [TRIPLE]      (default x86_64-unknown-linux-musl)
#
# TRIPLE: x86_64-unknown-linux-musl, aarch64-unknown-linux-musl (64-bit
# Raspberry Pi OS, Pi 3/4/5) or armv7-unknown-linux-musleabihf (32-bit).
# Installs what it needs itself: the rustup target, and the C toolchain.
#
# The C toolchain (ring builds C and assembly, and the binary links musl):
# - x86_64: Debian's musl-gcc (musl-tools), via scripts/musl-env.sh, as
#   before: a native compiler with musl's own libc.a; nothing new to trust.
# - aarch64 and armv7: zig's `cc`, driven by cargo-zigbuild, both from PyPI
#   (pinned below). zig carries musl libc and crt objects for every musl
#   triple, so one pip install serves both ARM targets, needs no root, and
#   the result is static (`file`: "statically linked") with no extra
#   flags, but for the armv7 case below.
#   Tried first, and it worked, so the alternative was not needed: Debian's
#   gcc-aarch64-linux-gnu / gcc-arm-linux-gnueabihf are glibc cross
#   compilers, so a musl build would also need the target's musl (multiarch
#   musl-dev) wired in by hand, plus CC_<triple>, linker and +crt-static
#   settings per target.
# - armv7 only: rustup offers no prebuilt standard library for
#   armv7-unknown-linux-musleabihf with 1.94 and 1.95 (their manifests mark
#   rust-std unavailable; 1.93's did not), so when `rustup target add`
#   fails the standard library is compiled from the rust-src component with
#   cargo's build-std. That is an unstable cargo flag, enabled on the stable
#   toolchain with RUSTC_BOOTSTRAP=1; it costs a few minutes more. A
#   prebuilt std is used whenever rustup offers one.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-x86_64-unknown-linux-musl}"
ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.1

pip_install() {
  python3 -m pip install --quiet "$@" \
    || python3 -m pip install --quiet --break-system-packages "$@"
}

need_zig() {
  if ! command -v python3 >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3 python3-pip >/dev/null
  fi
  if ! command -v cargo-zigbuild >/dev/null 2>&1 \
    || ! python3 -m ziglang version >/dev/null 2>&1; then
    pip_install "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
    hash -r
  fi
}

if ! command -v file >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq file >/dev/null
fi

start=$(date +%s)
case "$target" in
  x86_64-unknown-linux-musl)
    source scripts/musl-env.sh
    # Linked by LLD with the request path's functions packed together
    # (scripts/link-ordered.py; it falls back to a plain link).
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER="$PWD/scripts/link-ordered.py" \
      cargo build --release --locked --target "$target"
    ;;
  aarch64-unknown-linux-musl)
    rustup target add "$target"
    need_zig
    cargo zigbuild --release --locked --target "$target"
    ;;
  armv7-unknown-linux-musleabihf)
    need_zig
    if rustup target add "$target" >/dev/null 2>&1; then
      cargo zigbuild --release --locked --target "$target"
    else
      echo "no prebuilt std for $target on this toolchain: building it from rust-src"
      rustup component add rust-src
      # panic_abort: the release profile has panic = "abort". Without a
      # prebuilt std there are no self-contained crt objects either, so the
      # link is told to take them from zig (link-self-contained=no); passed
      # to the binary's own rustc only, as only its link changes.
      RUSTC_BOOTSTRAP=1 cargo-zigbuild rustc --release --locked --target "$target" \
        --bin authd -Z build-std=std,panic_abort -- -C link-self-contained=no
    fi
    ;;
  *)
    echo "unknown target $target (x86_64-unknown-linux-musl, aarch64-unknown-linux-musl, armv7-unknown-linux-musleabihf)" >&2
    exit 2
    ;;
esac
echo "build: $(($(date +%s) - start)) s"

binary="${CARGO_TARGET_DIR:-target}/$target/release/authd"
description=$(file -b "$binary")
echo "file: $description"
case "$description" in
  *"statically linked"*|*"static-pie linked"*) ;;
  *) echo "$binary is not a static binary" >&2; exit 1 ;;
esac
case "$description" in
  *interpreter*) echo "$binary asks for a program interpreter" >&2; exit 1 ;;
esac
bytes=$(stat -c %s "$binary")
echo "size: $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }') MiB)"
if [ -f "$binary.link-order" ]; then
  echo "link order: $(cat "$binary.link-order")"
fi
echo "binary: $binary"
