#!/usr/bin/env python3
"""Writes scripts/hot-functions.txt: every function the running server
executes to answer requests (not to start), as demangled names without
hashes, most executed first. scripts/link-ordered.py places them together
at the start of the release binary's text.

    python3 scripts/hot-functions.py BINARY     (scripts/hot-functions.sh
                                                  builds BINARY and calls this)

BINARY must keep its symbols (the `profiling` profile). It runs under
valgrind's callgrind with instrumentation off until the server answers
/healthz, then serves what a sign-in and an app use, with the default
argon2id parameters: registrations, logins (and a failed one), the sign-in
page and a sign-in through it, access-token, cookie and PAT requests,
refresh rotations (and a bad one), forward-auth checks, the OpenID
discovery, JWKS and userinfo, a logout, and a few seconds of idling. Every function callgrind saw run in that part, that
the binary defines, goes in the list.
"""
import collections
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "hot-functions.txt")
LLVM_SUFFIX = re.compile(r"\.llvm\.\d+$")
PASSWORD = "Correct horse battery staple 42"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, base):
        self.base = base

    def call(self, method, path, body=None, headers=None, form=None):
        data, hdrs = None, dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["content-type"] = "application/json"
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            hdrs["content-type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(self.base + path, data=data, headers=hdrs, method=method)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                text = response.read().decode() or "null"
                return response.status, json.loads(text) if text.startswith(("{", "[", "n")) else text
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


def workload(client):
    """What a sign-in and an app make the server run, a few times each."""
    for n in range(3):
        email = f"hot{n}@example.com"
        status, _ = client.call("POST", "/register", {"email": email, "password": PASSWORD})
        assert status == 201, status
        status, tokens = client.call("POST", "/login", {"email": email, "password": PASSWORD})
        assert status == 200, (status, tokens)
        bearer = {"authorization": f"Bearer {tokens['access_token']}"}
        client.call("GET", "/api/account", headers=bearer)
        client.call("GET", "/api/account/sessions", headers=bearer)
        refresh = tokens["refresh_token"]
        for _ in range(2):
            status, rotated = client.call("POST", "/oauth/token",
                                          form={"grant_type": "refresh_token", "refresh_token": refresh})
            assert status == 200, (status, rotated)
            refresh = rotated["refresh_token"]
        client.call("POST", "/oauth/token", form={"grant_type": "refresh_token", "refresh_token": "nope"})
        client.call("POST", "/login", {"email": email, "password": "wrong password 1234"})
        status, session = client.call("POST", "/api/v1/auth/login", {"email": email, "password": PASSWORD})
        assert status == 200, (status, session)
        control = {"authorization": f"Bearer {session['access_token']}"}
        _, memberships = client.call("GET", "/api/v1/org/memberships", headers=control)
        control["x-active-org-id"] = memberships["active_org_id"]
        status, pat = client.call("POST", "/api/v1/auth/api-tokens",
                                  {"name": "hot", "scopes": ["tokens.read"], "expires_in_days": 30},
                                  headers=control)
        assert status == 201, (status, pat)
        if status == 201:
            with_pat = {"authorization": f"Bearer {pat['token']}",
                        "x-active-org-id": memberships["active_org_id"]}
            for _ in range(3):
                client.call("GET", "/api/v1/auth/api-tokens", headers=with_pat)
                client.call("GET", "/forward-auth", headers={
                    **with_pat, "x-forwarded-host": "app.example", "x-forwarded-proto": "https",
                    "x-forwarded-uri": "/"})
        for _ in range(3):
            client.call("GET", "/forward-auth", headers={
                **bearer, "x-forwarded-host": "app.example", "x-forwarded-proto": "https",
                "x-forwarded-uri": "/"})
            client.call("GET", "/healthz")
        # The sign-in page and its assets, and a sign-in through it, whose
        # cookie then passes a forward-auth check.
        for path in ("/", "/ui/app.js", "/ui/app.css", "/ui/api/info", "/ui/api/vocabulary"):
            client.call("GET", path)
        request = urllib.request.Request(
            client.base + "/ui/api/login", method="POST",
            data=json.dumps({"email": email, "password": PASSWORD}).encode(),
            headers={"content-type": "application/json", "origin": client.base})
        with urllib.request.urlopen(request, timeout=120) as response:
            cookies = "; ".join(c.split(";")[0] for c in response.headers.get_all("set-cookie") or [])
        for _ in range(3):
            client.call("GET", "/forward-auth", headers={
                "cookie": cookies, "x-forwarded-host": "app.example", "x-forwarded-proto": "https",
                "x-forwarded-uri": "/"})
        client.call("GET", "/.well-known/openid-configuration")
        client.call("GET", "/.well-known/jwks.json")
        client.call("GET", "/oauth/userinfo", headers=bearer)
        client.call("POST", "/logout", headers=bearer)


def called_functions(profile):
    """Names (as the binary has them) callgrind recorded, with their cost."""
    names, cost, current = {}, collections.Counter(), None
    define = re.compile(r"^(c?fn)=\((\d+)\)(?: (.*))?$")
    with open(profile, errors="replace") as lines:
        for line in lines:
            match = define.match(line)
            if match:
                kind, ident, name = match.groups()
                if name:
                    names[ident] = name
                if kind == "fn":
                    current = ident
                cost[ident] += 0
            elif current and line[:1].isdigit():
                fields = line.split()
                if len(fields) >= 2 and fields[1].isdigit():
                    cost[current] += int(fields[1])
    return {names[i]: c for i, c in cost.items() if i in names}


def demangled_names(binary):
    """Mangled name -> demangled name without the LTO suffix, for the
    functions the binary defines (the pairing the linker wrapper uses)."""
    spec = importlib.util.spec_from_file_location("link_ordered", os.path.join(HERE, "link-ordered.py"))
    link_ordered = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(link_ordered)
    return dict(link_ordered.text_symbols([binary]))


def main():
    binary = sys.argv[1]
    work = tempfile.mkdtemp(prefix="authd-hot-")
    port = free_port()
    profile = os.path.join(work, "callgrind.out")
    env = dict(os.environ,
               AUTHD_SERVER__LISTEN=f"127.0.0.1:{port}",
               AUTHD_STORAGE__DATA_DIR=os.path.join(work, "data"),
               AUTHD_LOG__LEVEL="warn")
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--demangle=no",
         f"--callgrind-out-file={profile}", binary],
        env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "server.log"), "w"))
    client = Client(f"http://127.0.0.1:{port}")
    deadline = time.time() + 600
    while True:
        try:
            if client.call("GET", "/healthz")[0] == 200:
                break
        except OSError:
            pass
        if time.time() > deadline or server.poll() is not None:
            sys.exit(f"the server did not come up under valgrind; see {work}/server.log")
        time.sleep(1)
    subprocess.run(["callgrind_control", "--instr=on", str(server.pid)], check=True,
                   stdout=subprocess.DEVNULL)
    workload(client)
    # What runs while the server idles after requests (timers, sweeps).
    time.sleep(5)
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=300)
    names = demangled_names(binary)
    hot = collections.Counter()
    for name, cost in called_functions(profile).items():
        key = LLVM_SUFFIX.sub("", name)
        if name in names:
            hot[(key, names[name])] += cost
    with open(OUT, "w") as out:
        out.write("# Functions the server runs to answer requests, most executed first, as\n"
                  "# <symbol> TAB <demangled name without hashes>: the symbol while it\n"
                  "# matches the build, else every function of that name.\n"
                  "# Written by scripts/hot-functions.sh, read by scripts/link-ordered.py.\n")
        for (symbol, name), _cost in hot.most_common():
            out.write(f"{symbol}\t{name}\n")
    print(f"{len(hot)} functions written to {OUT}")


if __name__ == "__main__":
    main()
