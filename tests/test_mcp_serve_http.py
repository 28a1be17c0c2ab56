"""`mnc mcp serve FILE --http` (docs/tools.md, "Serving workflows to MCP clients"), driven
by the official MCP client SDK over streamable HTTP: the same tools and resources as over
stdio, every request refused (401) without the bearer token, a workflow started twice
with the same id (one after the other, and at once from two sessions) run once, and
decisions still behind `--allow-decisions` and the operator's token."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Implementation

from mnlang.api import get_run, list_runs, run_journal
from tests.test_mcp_serve import SOURCE, structured

ROOT = Path(__file__).resolve().parent.parent
BEARER = "bearer-token-0123456789abcdef"
OPERATOR = "operator-token-0123456789"

FLOWS = (
    SOURCE
    + """
effect record(order: str) -> str {
  impl: "effects:record"
  key: "record:{order}"
}

workflow book(order: str) -> str {
  r = record(order)
  return r
}
"""
)

EFFECTS = '''
import json
import time
from pathlib import Path


def record(order: str, key: str) -> str:
    """What the receiving system saw: one line per call; slow enough for two
    starts of the same run to overlap."""
    with (Path(__file__).parent / "received.jsonl").open("a") as f:
        f.write(json.dumps({"order": order, "key": key}) + "\\n")
    time.sleep(0.5)
    return f"recorded {order}"
'''


def env_without_mnc(**more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    env.update(PYTHONPATH=str(ROOT), MNC_COMMIT_MS="0", **more)
    return env


@contextmanager
def http_server(folder: Path, *flags: str, **env: str) -> Iterator[tuple[str, list[str]]]:
    """`mnc mcp serve --http --port 0`: its URL and the lines it printed on stderr."""
    (folder / "flows.mn").write_text(FLOWS, "utf-8")
    (folder / "effects.py").write_text(EFFECTS, "utf-8")
    server = subprocess.Popen(
        [sys.executable, "-m", "mnlang.cli", "mcp", "serve", str(folder / "flows.mn"),
         "--db", str(folder / "journal.db"), "--http", "--port", "0", *flags],
        cwd=folder, env=env_without_mnc(**env), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not lines or "http://" not in lines[0]:
            assert time.monotonic() < deadline, "the server never said where it listens"
            line = server.stderr.readline()
            assert line, f"the server ended: {lines}"
            lines.append(line)
        if "bearer token for this start" not in lines[0] and "MNC_MCP_TOKEN" not in lines[0]:
            lines.append(server.stderr.readline())
        found = re.search(r"http://\S+/mcp", lines[0])
        assert found is not None, lines
        yield found.group(0), lines
    finally:
        server.kill()
        server.wait()


def client(url: str, token: str | None, name: str = "desk-bot") -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0, read=300.0))
    transport = streamable_http_client(url, http_client=http)
    return Client(transport, mode="legacy", client_info=Implementation(name=name, version="1"))


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "curl", "version": "1"},
    },
}


def test_tools_resources_idempotent_starts_and_decisions_over_http(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    with http_server(
        tmp_path, "--allow-decisions", MNC_MCP_TOKEN=BEARER, MNC_MCP_OPERATOR_TOKEN=OPERATOR
    ) as (url, said):
        assert "from MNC_MCP_TOKEN" in said[0] and BEARER not in "".join(said)
        # without the token, or with another, nothing is answered (nor created)
        accept = {"accept": "application/json, text/event-stream"}
        for headers in ({}, {"authorization": "Bearer guess-guess-guess-guess"},
                        {"authorization": f"Basic {BEARER}"}):  # fmt: skip
            refused = httpx2.post(url, json=INITIALIZE, headers={**accept, **headers}, timeout=60)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Bearer")

        async def refused_client() -> None:
            async with client(url, None) as c:
                await c.list_tools()

        with pytest.raises(ExceptionGroup) as caught:  # the SDK's client fails on the 401
            asyncio.run(refused_client())
        assert caught.group_contains(MCPError)
        assert not (tmp_path / "journal.db").exists() or list_runs(db=db) == []

        async def go() -> None:
            async with client(url, BEARER) as c:
                tools = {t.name: t for t in (await c.list_tools()).tools}
                assert sorted(tools) == ["book", "decide", "hello", "ship"]
                assert tools["ship"].input_schema["required"] == ["order"]
                first = structured(await c.call_tool("hello", {"name": "Ana", "run_id": "h-1"}))
                again = structured(await c.call_tool("hello", {"name": "Ana", "run_id": "h-1"}))
                assert first["result"] == "hello Ana" and first["created"] is True
                assert again["run_id"] == "h-1" and again["created"] is False
                # the same id at once from two sessions: one run, one effect call
                async with client(url, BEARER, "other-bot") as d:
                    both = await asyncio.gather(
                        c.call_tool("book", {"order": "o-9", "run_id": "b-1"}),
                        d.call_tool("book", {"order": "o-9", "run_id": "b-1"}),
                    )
                answers = [structured(r) for r in both]  # neither is an error
                assert {a["run_id"] for a in answers} == {"b-1"}
                assert "completed" in {a["status"] for a in answers}
                for a in answers:  # the other, while the first executes it: as it stands
                    if a["status"] == "running":
                        assert a["created"] is False and "mnrun://runs/b-1" in a["warnings"][0]
                    else:
                        assert a["result"] == "recorded o-9"
                conflict = await c.call_tool("book", {"order": "o-10", "run_id": "b-1"})
                assert conflict.is_error  # the same id with other input: refused
                started = structured(
                    await c.call_tool("ship", {"order": {"id": "o-2", "qty": 1}, "run_id": "s-2"})
                )
                assert started["status"] == "waiting"
                read = await c.read_resource("mnrun://runs/s-2")
                assert json.loads(read.contents[0].text)["run"]["status"] == "waiting"
                listed = json.loads((await c.read_resource("mnrun://runs")).contents[0].text)
                assert {r["run_id"] for r in listed} == {"h-1", "b-1", "s-2"}
                wrong = await c.call_tool(
                    "decide",
                    {"run_id": "s-2", "checkpoint": "ship_it", "approve": True, "token": BEARER},
                )
                assert wrong.is_error  # the bearer token is not the operator's
                decided = structured(
                    await c.call_tool(
                        "decide",
                        {
                            "run_id": "s-2",
                            "checkpoint": "ship_it",
                            "approve": True,
                            "token": OPERATOR,
                        },
                    )
                )
                assert decided["decided"]["by"] == "mcp:desk-bot"

        asyncio.run(go())
    booked = get_run("b-1", db=db).run
    assert booked.status == "completed"
    received = [
        json.loads(line) for line in (tmp_path / "received.jsonl").read_text().split("\n") if line
    ]
    assert received == [{"order": "o-9", "key": "record:o-9"}]  # called once
    assert sorted(r.run_id for r in list_runs(db=db)) == ["b-1", "h-1", "s-2"]
    [decision] = [e for e in run_journal("s-2", db=db) if e.kind == "decided"]
    assert decision.data["by"] == "mcp:desk-bot"


def test_on_loopback_without_a_token_one_is_made_and_needed(tmp_path: Path) -> None:
    with http_server(tmp_path) as (url, said):
        made = re.search(r"bearer token for this start \(set MNC_MCP_TOKEN to choose one\): (\S+)",
                         "".join(said))  # fmt: skip
        assert made is not None, said
        assert httpx2.post(url, json=INITIALIZE, timeout=60).status_code == 401

        async def go() -> None:
            async with client(url, made.group(1)) as c:
                hello = structured(await c.call_tool("hello", {"name": "Bo"}))
                assert hello["result"] == "hello Bo"

        asyncio.run(go())


def serve_refused(tmp_path: Path, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "flows.mn").write_text(FLOWS, "utf-8")
    return subprocess.run(
        [sys.executable, "-m", "mnlang.cli", "mcp", "serve", str(tmp_path / "flows.mn"),
         "--db", str(tmp_path / "journal.db"), *flags],
        env=env_without_mnc(**env), capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip


def test_starts_that_would_be_unsafe_are_refused(tmp_path: Path) -> None:
    cases: list[tuple[tuple[str, ...], dict[str, Any], str]] = [
        (("--http", "--host", "0.0.0.0"), {}, "not a loopback address"),
        (("--http",), {"MNC_MCP_TOKEN": "short"}, "16 characters"),
        (("--http", "--allow-decisions"),
         {"MNC_MCP_TOKEN": BEARER, "MNC_MCP_OPERATOR_TOKEN": BEARER}, "must differ"),
        (("--port", "0"), {}, "go with --http"),
    ]  # fmt: skip
    for flags, env, words in cases:
        done = serve_refused(tmp_path, *flags, **env)
        assert done.returncode == 2, (flags, done.stderr)
        assert words in done.stderr, (flags, done.stderr)
        assert BEARER not in done.stderr
    assert not (tmp_path / "journal.db").exists()


@pytest.mark.slow
def test_a_program_calls_served_workflows_with_the_token_and_a_project_redirects_it(
    tmp_path: Path,
) -> None:
    """Program A imports program B's workflows from `mnc mcp serve --http` (the bearer
    token named by `--token-env`, locked by name) and starts them as keyed effects, the
    served `run_id` carrying the key; its project file then sends the calls to a second
    server with a token of its own: the runs land in that server's journal."""
    from tests.test_mcp import mnc as mnc_in

    one, two, app = tmp_path / "one", tmp_path / "two", tmp_path / "app"
    for folder in (one, two, app):
        folder.mkdir()
    second = "second-bearer-token-abcdef0123"
    with (
        http_server(one, MNC_MCP_TOKEN=BEARER) as (url_one, _),
        http_server(two, MNC_MCP_TOKEN=second) as (url_two, _),
    ):
        command = ("mcp", "import", "flows", "--url", url_one, "--token-env", "FLOWS_TOKEN",
                   "-o", "flows.mn", "--key", "hello=run_id")  # fmt: skip
        refused = mnc_in(app, *command)
        assert refused.returncode == 1 and "FLOWS_TOKEN" in refused.stderr
        assert not (app / "flows.mn").exists() and not (app / "mcp.lock.json").exists()
        os.environ["FLOWS_TOKEN"] = BEARER
        try:
            done = mnc_in(app, *command)
        finally:
            del os.environ["FLOWS_TOKEN"]
        assert done.returncode == 0, done.stderr
        lock = json.loads((app / "mcp.lock.json").read_text("utf-8"))
        assert lock["servers"]["flows"]["token_env"] == "FLOWS_TOKEN"
        assert BEARER not in (app / "mcp.lock.json").read_text("utf-8")
        (app / "main.mn").write_text(
            """
import flows { hello }

workflow greet(name: str) -> str {
  h = hello(name, "greet-{name}")
  return "{h["result"]}"
}
""",
            "utf-8",
        )

        def run(name: str, **env: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "mnlang.cli", "run", "main.mn", "--json",
                 "--input", json.dumps({"name": name})],
                cwd=app, env={**env_without_mnc(**env), "MNC_DB": str(app / "journal.db")},
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip

        done = run("Ana", FLOWS_TOKEN=BEARER)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["result"] == "hello Ana"
        assert get_run("greet-Ana", db=one / "journal.db").run.status == "completed"
        (tmp_path / "mnlang.toml").write_text(
            f'[mcp.flows]\nurl = "{url_two}"\ntoken_env = "SECOND_TOKEN"\n', "utf-8"
        )
        done = run("Bo", FLOWS_TOKEN=BEARER)  # the first server's token: not this one's
        assert done.returncode == 2 and "SECOND_TOKEN" in done.stderr + done.stdout, done
        done = run("Bo", SECOND_TOKEN=second)
        assert done.returncode == 0, done.stderr
        assert get_run("greet-Bo", db=two / "journal.db").run.status == "completed"
        assert [r.run_id for r in list_runs(db=one / "journal.db")] == ["greet-Ana"]
