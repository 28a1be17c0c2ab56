"""`mnc mcp serve` (docs/tools.md, "Serving workflows to MCP clients"), driven by the
official MCP client SDK over stdio: workflows as tools with typed input schemas, runs
and their status as resources, and deciding checkpoints only with `--allow-decisions`
and the operator's token, recorded `by: "mcp:CLIENT"` and not counted as people's."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.types import Implementation

from mnlang.api import get_run, run_journal

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "operator-token-0123456789"

SOURCE = """
type Order {
  id: str
  qty: int
}

workflow ship(order: Order, note: str?) -> str {
  ok = checkpoint ship_it {
    ask: "ship {order.qty} of {order.id}?"
    timeout: never
  }
  if ok.approved {
    return "shipped {order.id} by {ok.by}"
  }
  return "held {order.id}"
}

workflow hello(name: str) -> str {
  return "hello {name}"
}
"""


def session(folder: Path, *flags: str, token: str | None = None) -> Client:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    env["PYTHONPATH"] = str(ROOT)
    if token is not None:
        env["MNC_MCP_OPERATOR_TOKEN"] = token
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mnlang.cli", "mcp", "serve", str(folder / "flows.mn"),
              "--db", str(folder / "journal.db"), *flags],
        env=env,
    )  # fmt: skip
    return Client(params, mode="legacy", client_info=Implementation(name="desk-bot", version="1"))


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    found: dict[str, Any] = result.structured_content
    return found


def test_workflows_are_typed_tools_and_runs_are_resources(tmp_path: Path) -> None:
    (tmp_path / "flows.mn").write_text(SOURCE, "utf-8")

    async def go() -> None:
        async with session(tmp_path) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert sorted(tools) == ["hello", "ship"]  # no `decide` without the flag
            schema = tools["ship"].input_schema
            assert schema["required"] == ["order"]
            order = schema["properties"]["order"]
            assert order == {"$ref": "#/$defs/Order"}
            assert schema["$defs"]["Order"]["properties"]["qty"] == {"type": "integer"}
            hello = structured(await client.call_tool("hello", {"name": "Ana", "run_id": "h-1"}))
            assert hello["status"] == "completed" and hello["result"] == "hello Ana"
            again = structured(await client.call_tool("hello", {"name": "Ana", "run_id": "h-1"}))
            assert again["created"] is False  # the same id and input: the same run
            refused = await client.call_tool("hello", {"name": 3})
            assert refused.is_error
            started = structured(
                await client.call_tool("ship", {"order": {"id": "o-1", "qty": 2}, "run_id": "s-1"})
            )
            assert started["status"] == "waiting"
            uris = [str(r.uri) for r in (await client.list_resources()).resources]
            assert "mnrun://runs" in uris and "mnrun://runs/s-1" in uris
            read = await client.read_resource("mnrun://runs/s-1")
            details = json.loads(read.contents[0].text)
            assert details["run"]["status"] == "waiting"
            assert [c["name"] for c in details["checkpoints"]] == ["ship_it"]
            listed = json.loads((await client.read_resource("mnrun://runs")).contents[0].text)
            assert {r["run_id"] for r in listed} == {"h-1", "s-1"}

    asyncio.run(go())


def test_deciding_needs_the_flag_and_the_token_and_is_not_a_persons(tmp_path: Path) -> None:
    (tmp_path / "flows.mn").write_text(SOURCE, "utf-8")

    async def go() -> None:
        async with session(tmp_path) as client:
            structured(
                await client.call_tool("ship", {"order": {"id": "o-2", "qty": 1}, "run_id": "s-2"})
            )
            refused = await client.call_tool(
                "decide",
                {"run_id": "s-2", "checkpoint": "ship_it", "approve": True, "token": TOKEN},
            )
            assert refused.is_error  # not served without --allow-decisions
        async with session(tmp_path, "--allow-decisions", token=TOKEN) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert "decide" in tools
            wrong = await client.call_tool(
                "decide",
                {"run_id": "s-2", "checkpoint": "ship_it", "approve": True, "token": "guess"},
            )
            assert wrong.is_error and "token" in wrong.content[0].text
            assert get_run("s-2", db=tmp_path / "journal.db").run.status == "waiting"
            decided = structured(
                await client.call_tool(
                    "decide",
                    {"run_id": "s-2", "checkpoint": "ship_it", "approve": True, "token": TOKEN},
                )
            )
            assert decided["decided"]["by"] == "mcp:desk-bot"
            assert decided["runs"][0]["result"] == "shipped o-2 by mcp:desk-bot"

    asyncio.run(go())
    events = run_journal("s-2", db=tmp_path / "journal.db")
    [decision] = [e for e in events if e.kind == "decided"]
    assert decision.data["by"] == "mcp:desk-bot"
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "mnlang.cli", "metrics", "--json", "--db", str(tmp_path / "journal.db")],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    rates = list(_values_of(json.loads(done.stdout), "human_intervention_rate"))
    assert rates and all(r["numerator"] == 0 for r in rates)  # a client's decision
    assert any(r["denominator"] >= 1 for r in rates)  # ... of a run that was counted


def _values_of(tree: Any, key: str) -> Any:
    if isinstance(tree, dict):
        for k, v in tree.items():
            if k == key:
                yield v
            else:
                yield from _values_of(v, key)
    elif isinstance(tree, list):
        for item in tree:
            yield from _values_of(item, key)


def test_allow_decisions_without_a_token_is_refused(tmp_path: Path) -> None:
    import subprocess

    (tmp_path / "flows.mn").write_text(SOURCE, "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    done = subprocess.run(
        [sys.executable, "-m", "mnlang.cli", "mcp", "serve", str(tmp_path / "flows.mn"),
         "--allow-decisions"],
        env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "MNC_MCP_OPERATOR_TOKEN" in done.stderr
