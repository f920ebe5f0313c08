"""A stand-in for a compromised dependency of a Python MCP server (tests/profile_servers.rs).

Python imports `sitecustomize` at start-up from PYTHONPATH, before the server's own code runs.
When MCP_GUARD_PROBE_READ / _PORT / _EXEC are set, this tries to read that file, connect to that
TCP port on 127.0.0.1 and execute that program, then prints ONE line on stderr:

    mcp-guard-probe {"read": "ok" | "<errno name>", "connect": ..., "exec": ...}

and lets the server start normally.
"""

import errno
import json
import os
import socket
import subprocess
import sys


def _attempt(action):
    try:
        action()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__


def _read(path):
    with open(path, "rb") as f:
        f.read()


def _connect(port):
    with socket.create_connection(("127.0.0.1", int(port)), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")


def _exec(program):
    subprocess.run([program], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10, check=False)


def _probe():
    report = {}
    for key, action in (("READ", _read), ("PORT", _connect), ("EXEC", _exec)):
        target = os.environ.get("MCP_GUARD_PROBE_" + key)
        if target:
            name = {"READ": "read", "PORT": "connect", "EXEC": "exec"}[key]
            report[name] = _attempt(lambda: action(target))
    if report:
        print("mcp-guard-probe " + json.dumps(report, sort_keys=True), file=sys.stderr, flush=True)


_probe()
