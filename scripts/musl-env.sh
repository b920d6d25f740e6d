# Sourced by the scripts that build for x86_64-unknown-linux-musl: the target
# itself, and a C compiler for it (ring builds C and assembly). Uses a
# cross gcc if there is one, else Debian's musl-gcc wrapper (musl-tools).
rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1 || true
if ! command -v x86_64-linux-musl-gcc >/dev/null 2>&1; then
  if ! command -v musl-gcc >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq musl-tools >/dev/null
  fi
  export CC_x86_64_unknown_linux_musl=musl-gcc
fi
