#!/usr/bin/env bash
# Rewrites scripts/hot-functions.txt, the functions the static x86_64
# release binary places together at the start of its text
# (scripts/link-ordered.py): builds that binary (`just release`; the link
# keeps a copy with symbols, release/authd.unstripped), runs the copy under
# valgrind's callgrind and records what requests execute
# (scripts/hot-functions.py). Then build again to link with the new list.
# Rerun after large changes to the request path; a stale list only packs
# less, it never breaks the build.
#
#   bash scripts/hot-functions.sh        (just hot-functions)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
fi
target=x86_64-unknown-linux-musl
bash scripts/release.sh "$target"
python3 scripts/hot-functions.py "${CARGO_TARGET_DIR:-target}/$target/release/authd.unstripped"
