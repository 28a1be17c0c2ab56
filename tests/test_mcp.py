"""MCP servers as typed tools (docs/tools.md, "MCP servers"): `mnc mcp import` against the
MCP project's reference servers (npm, pinned in tests/mcp_servers/package-lock.json, installed by
`npm ci` in tests/mcp_servers/) and a server on the official Python SDK (tests/mcp_servers/ticket_server.py,
over stdio and streamable HTTP); typed calls and results; `mnc check` from the lock alone;
a changed live schema refused; a session reopened after its server died; and a real
`kill -9` during the filesystem server's `write_file` that opens a repair, never a
second write."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mnlang.api import check_files
from mnlang.mcp.generate import RESERVED
from mnlang.mcp.lock import mn_name
from mnlang.stores.sqlite import SQLiteStore
from mnlang.syntax.parser import parse

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ROOT / "tests" / "mcp_servers"
TICKETS = [sys.executable, str(SERVERS / "ticket_server.py")]


def npm_server(name: str) -> str:
    """A reference server that `npm ci` in tests/mcp_servers/ installed (CI installs them)."""
    path = SERVERS / "node_modules" / ".bin" / name
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must run `npm ci` in tests/mcp_servers/ before the tests")
        pytest.skip(f"`npm ci` in tests/mcp_servers/ installs {name}")
    return str(path)


def mnc(folder: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mnlang.cli", *args],
        cwd=folder,
        env=env_for(folder),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def env_for(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    env.update(PYTHONPATH=str(ROOT), MNC_DB=str(folder / "journal.db"), MNC_COMMIT_MS="0")
    return env


def run_json(folder: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    done = mnc(folder, *args, "--json")
    try:
        out: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"no JSON from mnc {args}: {done.stdout}\n{done.stderr}") from None
    return done.returncode, out, done.stderr


def imported(folder: Path, server: str, *command: str, extra: tuple[str, ...] = ()) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    done = mnc(folder, "mcp", "import", server, "-o", f"{server}.mn", *extra, "--", *command)
    assert done.returncode == 0, done.stderr
    return (folder / f"{server}.mn").read_text("utf-8")


def calls_seen(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_the_everything_server_imports_checks_and_answers_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = imported(
        tmp_path, "everything", npm_server("mcp-server-everything"), extra=("--env", "PASSED_ON")
    )
    lock = json.loads((tmp_path / "mcp.lock.json").read_text("utf-8"))
    echo = lock["servers"]["everything"]["tools"]["echo"]
    assert len(echo["sha256"]) == 64 and echo["read_only"] is True
    # read-only tools are tools; the others once effects; an output schema is a record
    assert "tool get_sum(a: float, b: float) -> json {" in source
    assert "effect toggle_simulated_logging() -> json {" in source
    assert "once: true" in source.split("effect toggle_simulated_logging")[1].split("}")[0]
    assert "type GetStructuredContentResult {\n  temperature: float\n" in source
    assert (
        'description: "Echoes back the input string. Parameters: message: Message to echo."'
        in source
    )
    assert mnc(tmp_path, "check", "everything.mn").returncode == 0
    (tmp_path / "main.mn").write_text(
        """
import everything { echo, get_sum, get_structured_content, get_env }

workflow demo(city: str) -> str {
  e = echo("hello")
  s = get_sum(2, 3.5)
  w = get_structured_content(city)
  env = get_env()
  return "{e["text"]} | {s["text"]} | {w.conditions} | {w.temperature > -100.0} | {env["text"]}"
}
""",
        "utf-8",
    )
    assert mnc(tmp_path, "check", "main.mn").returncode == 0
    monkeypatch.setenv("PASSED_ON", "passed-on value")
    code, out, err = run_json(tmp_path, "run", "main.mn", "--input", '{"city": "Chicago"}')
    assert code == 0, err
    echoed, summed, conditions, plausible, env = out["result"].split(" | ")
    assert '"PASSED_ON": "passed-on value"' in env  # the server got the variable named
    assert echoed == "Echo: hello"
    assert "5.5" in summed
    assert conditions and plausible == "true"


def test_filesystem_write_then_read_as_the_docs_show(tmp_path: Path) -> None:
    """docs/tools.md's MCP example, as written there, checks against the lock that the
    import of the real filesystem server writes, and runs."""
    data = tmp_path / "data"
    data.mkdir()
    source = imported(tmp_path, "fs", npm_server("mcp-server-filesystem"), str(data))
    assert "effect write_file(path: str, content: str) -> WriteFileResult {" in source
    assert "tool read_text_file(path: str, tail: float?, head: float?)" in source
    section = (ROOT / "docs" / "tools.md").read_text("utf-8").split("## MCP servers", 1)[1]
    example = re.search(r"```mn\n(.*?)```", section, re.S)
    assert example is not None
    (tmp_path / "main.mn").write_text(example.group(1), "utf-8")
    checked = mnc(tmp_path, "check", "main.mn")
    assert checked.returncode == 0, checked.stderr
    target = data / "note.txt"
    code, out, err = run_json(
        tmp_path, "run", "main.mn", "--input", json.dumps({"path": str(target), "text": "hi ✓"})
    )
    assert code == 0, err
    assert out["result"] == "hi ✓"
    assert target.read_text("utf-8") == "hi ✓"  # what the server wrote


@pytest.mark.slow
def test_kill_9_during_write_file_opens_a_repair_never_a_second_write(tmp_path: Path) -> None:
    """The relay (tests/mcp_servers/hold_proxy.py) passes `write_file` to the real filesystem
    server and keeps its answer back; once the server has written, `mnc run` is killed
    with SIGKILL. The resumed run waits on a repair and writes nothing more."""
    data = tmp_path / "data"
    data.mkdir()
    fs = npm_server("mcp-server-filesystem")
    proxy = [sys.executable, str(SERVERS / "hold_proxy.py")]
    imported(tmp_path, "fs", *proxy, fs, str(data))
    (tmp_path / "main.mn").write_text(
        """
import fs { write_file }

workflow save(path: str, text: str) -> str {
  w = write_file(path, text)
  return w.content
}
""",
        "utf-8",
    )
    target = data / "once.txt"
    (tmp_path / "hold").touch()
    run = subprocess.Popen(
        [sys.executable, "-m", "mnlang.cli", "run", "main.mn", "--id", "save-1", "--json",
         "--input", json.dumps({"path": str(target), "text": "written once"})],
        cwd=tmp_path, env=env_for(tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (tmp_path / "held").exists():
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "the write never reached the server"
        time.sleep(0.02)
    assert target.read_text("utf-8") == "written once"  # the server acted ...
    run.send_signal(signal.SIGKILL)  # ... and the run dies before it hears so
    run.communicate()
    target.rename(data / "seen.txt")  # a second write would bring the file back
    (tmp_path / "hold").unlink()
    code, out, err = run_json(tmp_path, "resume", "save-1")
    assert code == 3, err
    assert out["status"] == "waiting"
    with SQLiteStore(tmp_path / "journal.db") as store:
        [cp] = store.open_checkpoints("save-1")
    assert cp.checkpoint_id.startswith("repair:")
    assert not target.exists()
    writes = [c for c in calls_seen(tmp_path / "proxy_calls.jsonl") if c["name"] == "write_file"]
    assert len(writes) == 1


@pytest.mark.slow
def test_kill_9_during_a_keyed_mcp_effect_calls_it_again_with_its_key(tmp_path: Path) -> None:
    """`--key close_ticket=request_id`: after a kill -9 while `close_ticket` is in flight,
    the process that resumes the run opens its own session and calls it again with the
    same `request_id`, for the server to deduplicate."""
    proxy = [sys.executable, str(SERVERS / "hold_proxy.py")]
    imported(tmp_path, "tickets", *proxy, *TICKETS, extra=("--key", "close_ticket=request_id"))
    (tmp_path / "main.mn").write_text(
        """
import tickets { close_ticket }

workflow close(id: int) -> str {
  c = close_ticket(id, "req-{id}", null)
  return c.result
}
""",
        "utf-8",
    )
    (tmp_path / "hold").touch()
    run = subprocess.Popen(
        [sys.executable, "-m", "mnlang.cli", "run", "main.mn", "--id", "close-1", "--json",
         "--input", '{"id": 5}'],
        cwd=tmp_path, env=env_for(tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (tmp_path / "held").exists():
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "the call never reached the server"
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.communicate()
    (tmp_path / "hold").unlink()
    code, out, err = run_json(tmp_path, "resume", "close-1")
    assert code == 0, err
    assert out["result"] == "closed 5"
    seen = [c for c in calls_seen(tmp_path / "calls.jsonl") if c["tool"] == "close_ticket"]
    assert [c["request_id"] for c in seen] == ["req-5", "req-5"]  # the same key again


@pytest.mark.slow
def test_a_changed_live_schema_is_refused_and_check_never_starts_a_server(
    tmp_path: Path,
) -> None:
    imported(tmp_path, "tickets", *TICKETS)
    (tmp_path / "main.mn").write_text(
        """
import tickets { lookup }

workflow show(id: int) -> str {
  t = lookup(id)
  return "{t.title} open={t.open} p={t.priority}"
}
""",
        "utf-8",
    )
    code, out, err = run_json(tmp_path, "run", "main.mn", "--input", '{"id": 7}')
    assert code == 0, err
    assert out["result"] == "ticket 7 open=true p=1"
    (tmp_path / "v2").touch()  # the server's `lookup` now requires a `tenant`
    code, out, err = run_json(tmp_path, "run", "main.mn", "--input", '{"id": 8}')
    assert code == 1
    message = json.dumps(out)
    assert "changed the schema of `lookup`" in message
    assert "mnc mcp import tickets" in message
    assert [c["id"] for c in calls_seen(tmp_path / "calls.jsonl")] == [7]  # nothing sent
    # `mnc check` reads the lock only: a server that cannot start changes nothing
    lock = json.loads((tmp_path / "mcp.lock.json").read_text("utf-8"))
    lock["servers"]["tickets"]["command"] = str(tmp_path / "no-such-server")
    (tmp_path / "mcp.lock.json").write_text(json.dumps(lock), "utf-8")
    assert mnc(tmp_path, "check", "main.mn").returncode == 0


@pytest.mark.slow
def test_streamable_http_and_a_keyed_effect(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    server = subprocess.Popen(
        [*TICKETS, "--http"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        done = mnc(
            tmp_path, "mcp", "import", "tickets", "--url", url, "-o", "tickets.mn",
            "--key", "close_ticket=request_id",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        source = (tmp_path / "tickets.mn").read_text("utf-8")
        assert 'key: "{request_id}"' in source
        assert "effect close_ticket(id: int, request_id: str, note: str?)" in source
        (tmp_path / "main.mn").write_text(
            """
import tickets { lookup, close_ticket }

workflow close(id: int) -> str {
  t = lookup(id)
  c = close_ticket(id, "req-{id}", null)
  return "{t.title}: {c.result}"
}
""",
            "utf-8",
        )
        code, out, err = run_json(tmp_path, "run", "main.mn", "--input", '{"id": 3}')
        assert code == 0, err
        assert out["result"] == "ticket 3: closed 3"
        seen = calls_seen(tmp_path / "calls.jsonl")
        assert seen == [
            {"tool": "lookup", "id": 3},
            {"tool": "close_ticket", "id": 3, "request_id": "req-3", "note": None},
        ]
    finally:
        server.kill()
        server.wait()


@pytest.mark.slow
def test_a_session_reopens_after_its_server_died(tmp_path: Path) -> None:
    imported(tmp_path, "tickets", *TICKETS)
    (tmp_path / "main.mn").write_text(
        """
import tickets { lookup, halt }

workflow survive() -> str {
  a = lookup(1)
  try {
    halt()
  } catch timeout as e {
    log "the server died: {e.message}"
  }
  b = lookup(2)
  return "{a.title}, {b.title}"
}
""",
        "utf-8",
    )
    code, out, err = run_json(tmp_path, "run", "main.mn")
    assert code == 0, err
    assert out["result"] == "ticket 1, ticket 2"
    assert [c["tool"] for c in calls_seen(tmp_path / "calls.jsonl")] == ["lookup", "halt", "lookup"]


@pytest.mark.slow
def test_a_server_that_died_between_calls_is_restarted_before_the_next(tmp_path: Path) -> None:
    """The session pings a server idle for a second before calling it: a server killed
    between two calls costs a new session, not an effect call of unknown outcome."""
    import asyncio

    from mnlang.mcp.lock import read_lock
    from mnlang.mcp.sessions import call_tool

    imported(tmp_path, "tickets", *TICKETS)
    server = read_lock(tmp_path / "mcp.lock.json")["tickets"]
    first = asyncio.run(call_tool(tmp_path, server, server.tools["lookup"], {"id": 4}))
    assert first["title"] == "ticket 4"
    os.kill(int((tmp_path / "server.pid").read_text()), signal.SIGKILL)
    time.sleep(1.5)
    args = {"id": 4, "request_id": "r-4", "note": None}
    closed = asyncio.run(call_tool(tmp_path, server, server.tools["close_ticket"], args))
    assert closed == {"result": "closed 4"}
    assert [c["tool"] for c in calls_seen(tmp_path / "calls.jsonl")] == ["lookup", "close_ticket"]


LOCK = {
    "version": 1,
    "servers": {
        "tickets": {
            "command": "python",
            "args": ["ticket_server.py"],
            "tools": {
                "lookup": {
                    "sha256": "0" * 64,
                    "read_only": True,
                    "params": {"id": "id"},
                    "fields": None,
                    "inputSchema": {"type": "object", "properties": {"id": {"type": "integer"}},
                                    "required": ["id"]},
                },
                "close_ticket": {
                    "sha256": "1" * 64,
                    "read_only": False,
                    "params": {"id": "id", "request_id": "request_id"},
                    "fields": None,
                    "inputSchema": {"type": "object", "required": ["id", "request_id"],
                                    "properties": {"id": {"type": "integer"},
                                                   "request_id": {"type": "string"}}},
                },
            },
        }
    },
}  # fmt: skip


def codes_of(tmp_path: Path, source: str, lock: Any = LOCK) -> list[tuple[str, int]]:
    (tmp_path / "main.mn").write_text(source, "utf-8")
    if lock is not None:
        (tmp_path / "mcp.lock.json").write_text(json.dumps(lock), "utf-8")
    report = check_files([str(tmp_path / "main.mn")])
    return [(d.code, d.span.line if d.span else 0) for f in report.files for d in f.diagnostics]


@pytest.mark.parametrize(
    ("source", "lock", "expected"),
    [
        ('tool lookup(id: int) -> json {\n  impl: "mcp:tickets/lookup"\n}\n', LOCK, []),
        ('tool lookup(id: int) -> json {\n  impl: "mcp:tickets/lookup"\n}\n', None, [("E170", 2)]),
        ('tool lookup(id: int) -> json {\n  impl: "mcp:tickets/lookup"\n}\n', "{", [("E170", 2)]),
        ('tool lookup(id: int) -> json {\n  impl: "mcp:tickets/find"\n}\n', LOCK, [("E171", 2)]),
        ('tool lookup(id: int) -> json {\n  impl: "mcp:other/lookup"\n}\n', LOCK, [("E171", 2)]),
        ('tool lookup(id: int) -> json {\n  impl: "mcp:tickets"\n}\n', LOCK, [("E171", 2)]),
        ('tool lookup(key2: int) -> json {\n  impl: "mcp:tickets/lookup"\n}\n', LOCK,
         [("E172", 1), ("E172", 2)]),
        ('tool close_ticket(id: int, request_id: str) -> json {\n  impl: "mcp:tickets/close_ticket"\n}\n',
         LOCK, [("E173", 1)]),
        ('effect close_ticket(id: int, request_id: str) -> json {\n  impl: "mcp:tickets/close_ticket"\n'
         '  once: true\n}\n', LOCK, []),
        ('tool lookup(id: int) -> json {\n  impl: "mcp:tickets/lookup"\n  isolation: process\n}\n',
         LOCK, [("E174", 2)]),
    ],
)  # fmt: skip
def test_check_against_the_lock(
    tmp_path: Path, source: str, lock: Any, expected: list[tuple[str, int]]
) -> None:
    if isinstance(lock, str):
        (tmp_path / "mcp.lock.json").write_text(lock, "utf-8")
        lock = None
    assert sorted(codes_of(tmp_path, source, lock)) == expected


def test_import_refuses_a_server_that_does_not_start(tmp_path: Path) -> None:
    done = mnc(tmp_path, "mcp", "import", "x", "-o", "x.mn", "--", str(tmp_path / "nope"))
    assert done.returncode == 1
    assert "cannot list the tools of MCP server `x`" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.mn").exists() and not (tmp_path / "mcp.lock.json").exists()


def test_the_reference_servers_are_pinned() -> None:
    lock = json.loads((SERVERS / "package-lock.json").read_text("utf-8"))
    wanted = json.loads((SERVERS / "package.json").read_text("utf-8"))["dependencies"]
    for name, version in wanted.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    assert shutil.which("node") or not os.environ.get("CI")


@given(st.text(max_size=30), st.sets(st.sampled_from(["type", "key", "ctx", "x", "a_b"])))
def test_every_mcp_name_becomes_an_mnlang_parameter_name(name: str, taken: set[str]) -> None:
    """Whatever a server calls a parameter, the generated name parses as one."""
    made = mn_name(name, frozenset(taken) | RESERVED)
    assert made not in taken and made not in RESERVED
    source = f'tool t({made}: str) -> str {{\n  impl: "tools:t"\n}}\n'
    module, problems = parse(source, "t.mn")
    assert module is not None and not problems, (made, problems)
