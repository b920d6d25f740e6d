#!/usr/bin/env python3
"""The linker of the static x86_64 release build (scripts/release.sh sets
it): links with LLD (the rust-lld of the Rust toolchain, so nothing to
install) and places the functions that requests run, listed in
scripts/hot-functions.txt, together at the start of .text.

Why: a page of the binary is resident once code on it runs, and the kernel
maps 64 KiB around each such page (fault-around). Spread over the whole
text, the code of a sign-in kept ~9 MiB of the binary resident; packed
together it is what it is. docs/performance.md has the figures.

The list holds demangled names without hashes (they change with every
build setting); this wrapper finds the mangled names of this link's
objects with `nm` and hands LLD an exact ordering file. A name that no
longer exists is skipped; if anything here fails, the link goes on
unordered with the compiler driver alone, so this can only change where
code sits, never whether the binary builds.

The binary is linked with its symbols and stripped afterwards with
objcopy (the same result as the linker's --strip-all); the copy with
symbols is kept as release/authd.unstripped for scripts/hot-functions.sh.

    called by rustc as: link-ordered.py <the cc arguments>
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
HOT_LIST = os.path.join(HERE, "hot-functions.txt")
DRIVER = os.environ.get("AUTHD_LINK_DRIVER", "cc")
# LTO renames internal functions it promotes ("f.llvm.123456"), differently
# in each build.
LLVM_SUFFIX = re.compile(r"\.llvm\.\d+$")


def expand(args):
    """The arguments, with rustc's @argument-files read in."""
    out = []
    for arg in args:
        if arg.startswith("@") and os.path.isfile(arg[1:]):
            with open(arg[1:]) as listed:
                for line in listed.read().splitlines():
                    out.append(re.sub(r"\\(.)", r"\1", line))
        else:
            out.append(arg)
    return out


def text_symbols(paths):
    """(mangled, normalised demangled) of every function the inputs define."""
    pairs = []
    for chunk in range(0, len(paths), 200):
        batch = paths[chunk:chunk + 200]
        run = lambda *flags: subprocess.run(
            ["nm", "--defined-only", "-p", "-P", *flags, *batch],
            capture_output=True, text=True, check=False).stdout.splitlines()
        mangled, demangled = run(), run("-C")
        if len(mangled) != len(demangled):
            continue
        for raw, nice in zip(mangled, demangled):
            # "name type [value [size]]"; only the demangled name has spaces.
            raw_fields = raw.split()
            if len(raw_fields) < 2 or raw_fields[1] not in ("t", "T", "w", "W"):
                continue
            name = nice.rsplit(" ", len(raw_fields) - 1)[0]
            pairs.append((raw_fields[0], LLVM_SUFFIX.sub("", name)))
    return pairs


def ordering_file(args):
    """An LLD symbol-ordering file for this link, or None."""
    with open(HOT_LIST) as listed:
        hot = [line.rstrip("\n").split("\t") for line in listed
               if line.strip() and not line.startswith("#")]
    inputs = [a for a in expand(args) if a.endswith((".o", ".rlib", ".a")) and os.path.isfile(a)]
    by_name, by_symbol = {}, {}
    for mangled, name in text_symbols(inputs):
        by_name.setdefault(name, []).append(mangled)
        by_symbol.setdefault(LLVM_SUFFIX.sub("", mangled), []).append(mangled)
    ordered, seen, found = [], set(), 0
    for entry in hot:
        symbol, name = entry if len(entry) == 2 else (None, entry[0])
        # The exact symbol while it matches this build; a build with other
        # settings or dependencies renames them all, and then every
        # function of the name is placed (generic code shares names).
        symbols = by_symbol.get(symbol) or by_name.get(name, [])
        found += bool(symbols)
        for symbol in symbols:
            if symbol not in seen:
                seen.add(symbol)
                ordered.append(symbol)
    if not ordered:
        return None, 0, len(hot)
    handle, path = tempfile.mkstemp(prefix="authd-order-", suffix=".txt")
    with os.fdopen(handle, "w") as out:
        out.write("\n".join(ordered) + "\n")
    return path, found, len(hot)


def kept_copy(output, suffix):
    """release/authd<suffix> for the linker's deps/authd-<hash> output."""
    base = re.sub(r"-[0-9a-f]{16}$", "", os.path.basename(output))
    return os.path.join(os.path.dirname(os.path.dirname(output)), base + suffix)


def main():
    args = sys.argv[1:]
    output = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "-o"), None)
    # Linked with its symbols, then stripped here: the copy with symbols
    # (release/authd.unstripped) is what scripts/hot-functions.sh profiles,
    # so finding the hot functions needs no second build.
    strip = "-Wl,--strip-all" in args and output is not None
    link_args = [a for a in args if a != "-Wl,--strip-all"] if strip else args
    extra, order, note = [], None, "unordered"
    try:
        order, found, wanted = ordering_file(args)
        if order:
            sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True,
                                     text=True, check=True).stdout.strip()
            host = subprocess.run(["rustc", "-vV"], capture_output=True, text=True,
                                  check=True).stdout
            triple = re.search(r"^host: (\S+)", host, re.M).group(1)
            gcc_ld = os.path.join(sysroot, "lib", "rustlib", triple, "bin", "gcc-ld")
            extra = [f"-B{gcc_ld}", "-fuse-ld=lld",
                     f"-Wl,--symbol-ordering-file={order}", "-Wl,--no-warn-symbol-ordering"]
            note = f"{found} of {wanted} hot functions placed first"
    except Exception as error:  # the link must not depend on this
        note = f"unordered ({error})"
    result = subprocess.run([DRIVER, *link_args, *extra], check=False)
    if result.returncode == 0 and strip:
        try:
            shutil.copy2(output, kept_copy(output, ".unstripped"))
            subprocess.run(["objcopy", "--strip-all", output], check=True)
        except (OSError, subprocess.CalledProcessError) as error:
            note += f"; stripped by the linker instead ({error})"
            result = subprocess.run([DRIVER, *args, *extra], check=False)
    if output and result.returncode == 0:
        with open(kept_copy(output, ".link-order"), "w") as report:
            report.write(note + "\n")
    if order:
        os.unlink(order)
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
