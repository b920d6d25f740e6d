#!/usr/bin/env python3
"""Which parts of a running authd are resident: the binary's pages by ELF
section (from /proc/PID/pagemap, so a page counts only if it is mapped in
this process), and the anonymous memory by mapping kind.

    python3 scripts/resident-pages.py PID [--text-map]

Reading pagemap needs root (or CAP_SYS_ADMIN) for the present bits of
file-backed pages; docs/performance.md uses it for the RSS split.
--text-map prints where in .text the resident pages are, in 1 MiB steps,
which shows whether hot code is packed together or spread out.
"""
import os
import struct
import subprocess
import sys

PAGE = os.sysconf("SC_PAGE_SIZE")


def sections(exe):
    """(name, file offset, size) of each allocated section."""
    out = subprocess.run(["readelf", "-SW", exe], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("["):
            continue
        fields = line[line.index("]") + 1:].split()
        if len(fields) < 7 or fields[0] in ("Name", "NULL"):
            continue
        name, _kind, _addr, offset, size, _es, flags = fields[:7]
        if "A" not in flags:
            continue
        found.append((name, int(offset, 16), int(size, 16)))
    return found


def mappings(pid, exe):
    """Every mapping: (start, end, file offset, path, is the binary)."""
    result = []
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            offset = int(fields[2], 16)
            path = fields[5] if len(fields) > 5 else ""
            result.append((start, end, offset, path, path == exe))
    return result


def present_pages(pid, start, end):
    """Virtual addresses of the pages of [start, end) that are in memory."""
    present = []
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        pagemap.seek(start // PAGE * 8)
        data = pagemap.read((end - start) // PAGE * 8)
    for n in range(len(data) // 8):
        (entry,) = struct.unpack_from("<Q", data, n * 8)
        if entry >> 63 & 1:
            present.append(start + n * PAGE)
    return present


def main():
    pid = int(sys.argv[1])
    exe = os.readlink(f"/proc/{pid}/exe")
    secs = sections(exe)
    by_section = {}
    text_pages = []
    anon = {}
    for start, end, offset, path, is_binary in mappings(pid, exe):
        pages = present_pages(pid, start, end)
        if is_binary:
            for page in pages:
                file_offset = offset + (page - start)
                name = next((n for n, o, s in secs if o <= file_offset < o + s), "(between sections)")
                by_section[name] = by_section.get(name, 0) + 1
                if name == ".text":
                    text_pages.append(file_offset)
        else:
            kind = path or "[anon]"
            if kind.startswith("/"):
                kind = "file " + os.path.basename(kind)
            anon[kind] = anon.get(kind, 0) + len(pages)
    total = 0
    print(f"binary {exe}:")
    for name, _offset, size in secs:
        pages = by_section.pop(name, 0)
        if pages:
            total += pages
            print(f"  {name:<22} {pages * PAGE / 1024:9.0f} KiB of {size / 1024:8.0f} KiB")
    for name, pages in by_section.items():
        total += pages
        print(f"  {name:<22} {pages * PAGE / 1024:9.0f} KiB")
    print(f"  {'binary in all':<22} {total * PAGE / 1024:9.0f} KiB")
    print("other mappings:")
    for kind, pages in sorted(anon.items(), key=lambda kv: -kv[1]):
        if pages:
            print(f"  {kind:<22} {pages * PAGE / 1024:9.0f} KiB")
    if "--text-map" in sys.argv and text_pages:
        text = next((o, s) for n, o, s in secs if n == ".text")
        step = 1 << 20
        print(".text resident per MiB of it:")
        for base in range(text[0], text[0] + text[1], step):
            count = sum(1 for p in text_pages if base <= p < base + step)
            print(f"  +{(base - text[0]) >> 20:3d} MiB {count * PAGE / 1024:6.0f} KiB {'#' * (count * 64 // (step // PAGE))}")


if __name__ == "__main__":
    main()
