#!/usr/bin/env python3
"""MCP client driver built on the official Python SDK (`stdio_client` + `ClientSession`).

    .venv/bin/python py_client.py SCENARIO [--handshake auto|legacy] [--dir DIR] [--env K=V]... -- CMD ARGS...

Launches CMD (a server, or `mcp-guard run ... -- server ...`), runs SCENARIO against it and prints
ONE JSON document on stdout. Values that change from run to run (the current time) are normalised,
so a direct run and a guarded run of the same scenario print identical documents. Exits non-zero
with a message on stderr when anything fails.

Scenarios: basic, time, git, consent.

consent calls server-everything's `echo` with the form elicitation capability declared, answering
every question with --elicit (accept, which ticks every boolean, decline or cancel); it prints the
questions asked and the call's result.

--handshake auto (the default) does what the SDK's own `Client` does by default: probe
`server/discover` (the 2026-07-28 sessionless era) and fall back to the `initialize` handshake when
the server does not know it. --handshake legacy sends `initialize` only.

The child environment is the SDK's default (HOME, PATH, ...) plus every --env pair and every
variable of ours whose name starts with MCP_GUARD_ or is RUST_LOG / RUST_BACKTRACE.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client
from mcp.shared.exceptions import MCPError

OVERALL_TIMEOUT_S = float(os.environ.get("PEER_DRIVER_TIMEOUT_MS", "90000")) / 1000
REQUEST_TIMEOUT_S = 30.0


class CheckFailed(Exception):
    pass


def check(cond: Any, msg: str) -> None:
    if not cond:
        raise CheckFailed(f"check failed: {msg}")


def sha256(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def dump(model: Any) -> Any:
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


# -------------------------------------------------------------------------------------------------
# Session plumbing


async def negotiate(session: ClientSession, handshake: str) -> dict[str, Any]:
    """Negotiate like the SDK's `Client(mode=...)`, and summarise what was agreed."""
    if handshake == "legacy":
        await session.initialize()
    else:
        try:
            await session.discover()
        except MCPError as e:
            # The SDK's auto mode falls back on any JSON-RPC error but an incompatible -32022.
            if e.code == types.UNSUPPORTED_PROTOCOL_VERSION:
                raise
            await session.initialize()
    era = "modern" if session.discover_result is not None else "legacy"
    check(session.protocol_version, "no protocol version negotiated")
    info = session.server_info
    check(info is not None and info.name, "the server reported no serverInfo.name")
    caps = session.server_capabilities
    instructions = session.instructions
    return {
        "era": era,
        "protocolVersion": session.protocol_version,
        "serverInfo": dump(info),
        "capabilities": dump(caps) if caps is not None else None,
        "instructionsSha256": None if instructions is None else sha256(instructions),
    }


async def list_all_tools(session: ClientSession) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.extend(dump(t) for t in page.tools)
        cursor = page.next_cursor
        if not cursor:
            return sorted(tools, key=lambda t: t["name"])


def page_fields(result: Any) -> dict[str, Any]:
    """The non-list fields of a result (2026-07-28 adds resultType / ttlMs / cacheScope)."""
    return {k: v for k, v in dump(result).items() if k not in ("tools", "nextCursor")}


# -------------------------------------------------------------------------------------------------
# Scenarios: each gets a negotiated session and returns the JSON-able result document.


async def scenario_basic(session: ClientSession, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"initialize": await negotiate(session, args.handshake)}
    out["tools"] = await list_all_tools(session)
    check(out["tools"], "tools/list returned no tools")
    return out


ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def normalised(doc: Any, replacements: dict[str, str]) -> Any:
    """`doc` with every occurrence of each key replaced, inside strings too (text content is JSON)."""
    text = json.dumps(doc, sort_keys=True)
    for old, new in replacements.items():
        text = text.replace(old, new)
    return json.loads(text)


async def scenario_time(session: ClientSession, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"initialize": await negotiate(session, args.handshake)}
    out["tools"] = await list_all_tools(session)
    names = [t["name"] for t in out["tools"]]
    check(names == ["convert_time", "get_current_time"], f"unexpected tools {names}")

    now = await session.call_tool("get_current_time", {"timezone": "Europe/Paris"})
    check(not now.is_error, f"get_current_time failed: {text_of(now)}")
    sc = now.structured_content or json.loads(text_of(now))
    check(sc["timezone"] == "Europe/Paris", f"timezone {sc['timezone']}")
    check(ISO_DATETIME.match(sc["datetime"]), f"datetime {sc['datetime']!r} is not ISO 8601")
    check(sc["datetime"][-6:] in ("+01:00", "+02:00"), f"Paris offset in {sc['datetime']}")
    check(sc["day_of_week"] in DAYS, f"day_of_week {sc['day_of_week']}")
    out["currentTime"] = normalised(
        dump(now),
        {sc["datetime"]: "<datetime>", sc["day_of_week"]: "<day>"},
    )

    # Two zones without daylight saving time: only the date (today) varies.
    conv = await session.call_tool(
        "convert_time", {"source_timezone": "Asia/Tokyo", "time": "16:30", "target_timezone": "Asia/Kolkata"}
    )
    check(not conv.is_error, f"convert_time failed: {text_of(conv)}")
    sc = conv.structured_content or json.loads(text_of(conv))
    check(sc["time_difference"] == "-3.5h", f"time_difference {sc['time_difference']}")
    check(sc["target"]["datetime"].endswith("T13:00:00+05:30"), f"target {sc['target']['datetime']}")
    repl = {sc["source"]["datetime"][:10]: "<date>", sc["source"]["day_of_week"]: "<day>"}
    repl[sc["target"]["datetime"][:10]] = "<date>"
    repl[sc["target"]["day_of_week"]] = "<day>"
    out["convertTime"] = normalised(dump(conv), repl)

    bad = await session.call_tool("get_current_time", {"timezone": "Mars/Olympus_Mons"})
    check(bad.is_error, "an unknown timezone did not fail")
    out["badTimezone"] = dump(bad)

    try:
        await session.call_tool("no_such_tool", {})
        raise CheckFailed("calling an unknown tool succeeded")
    except MCPError as e:
        out["unknownTool"] = {"code": e.code}
    return out


async def scenario_git(session: ClientSession, args: argparse.Namespace) -> dict[str, Any]:
    if not args.dir:
        raise CheckFailed("the git scenario needs --dir DIR (a git repository)")
    out: dict[str, Any] = {"initialize": await negotiate(session, args.handshake)}
    out["tools"] = [t["name"] for t in await list_all_tools(session)]
    status = await session.call_tool("git_status", {"repo_path": args.dir})
    check(not status.is_error, f"git_status failed: {text_of(status)}")
    out["status"] = text_of(status)
    log = await session.call_tool("git_log", {"repo_path": args.dir, "max_count": 1})
    check(not log.is_error, f"git_log failed: {text_of(log)}")
    check("initial commit" in text_of(log), f"git_log: {text_of(log)}")
    out["logHasInitialCommit"] = True
    return out


async def scenario_consent(session: ClientSession, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"initialize": await negotiate(session, args.handshake)}
    result = await session.call_tool("echo", {"message": "consent please"})
    out["call"] = {"isError": bool(result.is_error), "text": text_of(result)}
    out["elicitations"] = args.asked
    return out


def elicitation_answer(args: argparse.Namespace):
    """The callback for --elicit: records each question, answers with the chosen action."""

    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        args.asked.append(dump(params))
        if args.elicit != "accept":
            return types.ElicitResult(action=args.elicit)
        schema = getattr(params, "requested_schema", None) or {}
        content = {k: True for k, v in schema.get("properties", {}).items() if v.get("type") == "boolean"}
        return types.ElicitResult(action="accept", content=content)

    return answer


SCENARIOS = {"basic": scenario_basic, "time": scenario_time, "git": scenario_git, "consent": scenario_consent}


# -------------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    if "--" not in argv:
        sys.exit("py_client: missing `--` before the server command")
    sep = argv.index("--")
    parser = argparse.ArgumentParser(prog="py_client.py")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--handshake", choices=["auto", "legacy"], default="auto")
    parser.add_argument("--dir")
    parser.add_argument("--elicit", choices=["accept", "decline", "cancel"])
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv[:sep])
    args.cmd = argv[sep + 1 :]
    args.asked = []
    if not args.cmd:
        sys.exit("py_client: missing server command after `--`")
    return args


def child_env(extra: list[str]) -> dict[str, str]:
    env = get_default_environment()
    for k, v in os.environ.items():
        if k.startswith("MCP_GUARD_") or k in ("RUST_LOG", "RUST_BACKTRACE"):
            env[k] = v
    for kv in extra:
        k, eq, v = kv.partition("=")
        if not eq or not k:
            sys.exit(f"py_client: bad --env {kv!r}")
        env[k] = v
    return env


async def run(args: argparse.Namespace) -> dict[str, Any]:
    params = StdioServerParameters(command=args.cmd[0], args=args.cmd[1:], env=child_env(args.env))
    with anyio.fail_after(OVERALL_TIMEOUT_S):
        async with stdio_client(params) as (read, write):
            async with ClientSession(
                read,
                write,
                read_timeout_seconds=REQUEST_TIMEOUT_S,
                client_info=types.Implementation(name="mcp-guard-py-driver", version="1.0.0"),
                elicitation_callback=elicitation_answer(args) if args.elicit else None,
            ) as session:
                return await SCENARIOS[args.scenario](session, args)


def leaves(e: BaseException) -> list[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaves(sub)]
    return [e]


def main() -> None:
    args = parse_args(sys.argv[1:])
    try:
        doc = anyio.run(run, args)
    except BaseException as e:  # noqa: BLE001 - report anything, including timeouts and groups
        if isinstance(e, SystemExit):
            raise
        detail = "; ".join(repr(x) for x in leaves(e))
        if isinstance(e, TimeoutError):
            detail = f"did not finish within {OVERALL_TIMEOUT_S} s"
        print(f"py_client: FAILED: scenario {args.scenario} against {args.cmd}: {detail}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"driver": "py", "scenario": args.scenario, **doc}, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
