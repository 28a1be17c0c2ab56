"""`[mcp.NAME]` in mnlang.toml (docs/tools.md, "Where a deployment reaches the server"):
the lock says what a server's tools look like, the project file where this deployment
reaches the server. Mistakes are named with FILE:LINE; a redirected server is the one
called (the filesystem reference server rooted elsewhere, a second ticket server over
HTTP); one whose schema differs from the lock is refused before anything is sent."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mnlang.mcp.config import KEYS, line_of
from mnlang.project import ProjectError, apply_defaults, load
from tests.test_mcp import ROOT, TICKETS, calls_seen, env_for, imported, mnc, npm_server, run_json


def project_error(tmp_path: Path, text: str) -> str:
    (tmp_path / "mnlang.toml").write_text(text, "utf-8")
    with pytest.raises(ProjectError) as caught:
        load(tmp_path / "mnlang.toml")
    return caught.value.message


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('[journal]\ndb = "j.db"\n\n[mcp.fs]\ncommand = "npx"\nurl = "http://h/mcp"\n', 6,
         "both `command` and `url`"),
        ('[mcp.fs]\ncommand = "npx"\n  timeout = 3\n', 3, "`mcp.fs.timeout` is not a key"),
        ('[mcp.fs]\nargs = ["/srv"]\n', 2, "`mcp.fs.args` without `command`"),
        ('[mcp.fs]\nurl = "tickets.internal/mcp"\n', 2, "http:// or https://"),
        ('[mcp.fs]\ncommand = "npx"\nenv = { FS_TOKEN = "s3cret" }\n', 3, "variable names"),
        ('[mcp.fs]\ncommand = "npx"\n\n[mcp.tickets]\n"url" = 7\n', 5, "`mcp.tickets.url`"),
        ("[mcp]\nfs = 3\n", 1, "`mcp` must be a table of tables"),
        ('[mcp.t]\nurl = "http://h/mcp"\ntoken = "s3cret"\n', 3, "never written"),
        ('[mcp.t]\ncommand = "srv"\ntoken_env = "T"\n', 3, "goes with a `url`"),
        ('[mcp.t]\nurl = "http://h/mcp"\ntoken_env = "s3cret value"\n', 3, "name of the variable"),
    ],
)  # fmt: skip
def test_a_wrong_table_is_named_with_its_file_and_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    message = project_error(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'mnlang.toml'}:{line}: "), message
    assert words in message
    assert "s3cret" not in message


def test_a_wrong_table_stops_every_command_and_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "mnlang.toml").write_text(
        '[journal]\ndb = "j.db"\n\n[mcp.fs]\ncommand = "npx"\nurl = "http://h/mcp"\n', "utf-8"
    )
    (tmp_path / "w.mn").write_text('workflow w() -> str {\n  return "x"\n}\n', "utf-8")
    done = mnc(tmp_path, "run", "w.mn")
    assert done.returncode == 1
    assert "mnlang.toml:6: `mcp.fs` has both" in done.stderr
    assert "help:" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "j.db").exists() and not (tmp_path / "journal.db").exists()


def test_the_tables_reach_runs_in_the_environment_which_wins(tmp_path: Path) -> None:
    (tmp_path / "mnlang.toml").write_text(
        '[mcp.fs]\ncommand = "npx"\nargs = ["-y", "fs", "/srv"]\nenv = ["FS_TOKEN"]\n\n'
        '[mcp.tickets]\nurl = "https://tickets.internal/mcp"\n',
        "utf-8",
    )
    environ: dict[str, str] = {}
    apply_defaults(environ, load(tmp_path / "mnlang.toml"))
    handed = json.loads(environ["MNC_MCP_SERVERS"])
    assert handed["fs"] == {
        "where": f"{tmp_path / 'mnlang.toml'}:1",
        "command": ["npx", "-y", "fs", "/srv"],
        "url": None,
        "env": ["FS_TOKEN"],
        "token_env": None,
    }
    assert handed["tickets"]["url"] == "https://tickets.internal/mcp"
    mine = {"MNC_MCP_SERVERS": '{"tickets": {"url": "http://127.0.0.1:9/mcp"}}'}
    apply_defaults(mine, load(tmp_path / "mnlang.toml"))
    assert json.loads(mine["MNC_MCP_SERVERS"]) == {"tickets": {"url": "http://127.0.0.1:9/mcp"}}


WRITE = """
import fs { write_file }

workflow save(path: str, text: str) -> str {
  w = write_file(path, text)
  return w.content
}
"""


@pytest.mark.slow
def test_the_project_points_the_filesystem_server_elsewhere(tmp_path: Path) -> None:
    """Imported against a filesystem server rooted at `staging/`; the project file starts
    it rooted at `prod/` instead (the same schema): the write lands there, and the
    staging server, which would refuse a path outside its root, is not started."""
    staging, prod = tmp_path / "staging", tmp_path / "prod"
    staging.mkdir()
    prod.mkdir()
    fs = npm_server("mcp-server-filesystem")
    app = tmp_path / "app"
    imported(app, "fs", fs, str(staging))
    (app / "main.mn").write_text(WRITE, "utf-8")
    target = prod / "note.txt"
    given = json.dumps({"path": str(target), "text": "to prod"})
    code, out, _ = run_json(app, "run", "main.mn", "--input", given)
    assert code == 1 and "outside allowed directories" in json.dumps(out)  # as locked
    (tmp_path / "mnlang.toml").write_text(
        f"[mcp.fs]\ncommand = {json.dumps(fs)}\nargs = [{json.dumps(str(prod))}]\n", "utf-8"
    )
    code, out, err = run_json(app, "run", "main.mn", "--input", given)
    assert code == 0, err
    assert target.read_text("utf-8") == "to prod"
    assert list(staging.iterdir()) == []


@pytest.mark.slow
def test_a_redirected_server_with_another_schema_is_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    """The ticket server imported over stdio; the project file sends the calls to a
    second instance over HTTP, in a folder of its own (its calls are written there); then
    to a third whose `lookup` wants one more argument: refused, nothing sent to it."""
    app = tmp_path / "app"
    imported(app, "tickets", *TICKETS)
    (app / "main.mn").write_text(
        """
import tickets { lookup }

workflow show(id: int) -> str {
  t = lookup(id)
  return t.title
}
""",
        "utf-8",
    )
    second, third = tmp_path / "second", tmp_path / "third"
    second.mkdir()
    third.mkdir()
    (third / "v2").touch()  # this instance's `lookup` requires a `tenant` too
    servers = [
        subprocess.Popen(
            [*TICKETS, "--http"],
            cwd=f,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for f in (second, third)
    ]
    try:
        urls = []
        for server in servers:
            assert server.stdout is not None
            urls.append(server.stdout.readline().strip())
        toml = tmp_path / "mnlang.toml"
        toml.write_text(f'[journal]\ndb = "j.db"\n\n[mcp.tickets]\nurl = "{urls[0]}"\n', "utf-8")
        code, out, err = run_json(app, "run", "main.mn", "--input", '{"id": 4}')
        assert code == 0, err
        assert out["result"] == "ticket 4"
        assert calls_seen(second / "calls.jsonl") == [{"tool": "lookup", "id": 4}]
        assert calls_seen(app / "calls.jsonl") == []  # the locked command was not started
        toml.write_text(f'[journal]\ndb = "j.db"\n\n[mcp.tickets]\nurl = "{urls[1]}"\n', "utf-8")
        code, out, err = run_json(app, "run", "main.mn", "--input", '{"id": 5}')
        assert code == 1
        message = json.dumps(out)
        assert "does not have the schema of `lookup`" in message
        assert f"{toml}:4" in message  # which table sent the call there
        assert "nothing was sent" in message
        assert calls_seen(third / "calls.jsonl") == []
    finally:
        for server in servers:
            server.kill()
            server.wait()


def test_a_broken_mnc_mcp_servers_is_refused_before_a_run_is_created(tmp_path: Path) -> None:
    imported_lock = {
        "version": 1,
        "servers": {
            "tickets": {
                "command": sys.executable,
                "args": [str(TICKETS[1])],
                "tools": {
                    "lookup": {
                        "sha256": "0" * 64,
                        "read_only": True,
                        "params": {"id": "id"},
                        "fields": None,
                        "inputSchema": {"type": "object", "properties": {"id": {"type": "integer"}},
                                        "required": ["id"]},
                    }
                },
            }
        },
    }  # fmt: skip
    (tmp_path / "mcp.lock.json").write_text(json.dumps(imported_lock), "utf-8")
    (tmp_path / "main.mn").write_text(
        """
tool lookup(id: int) -> json {
  impl: "mcp:tickets/lookup"
}

workflow show(id: int) -> json {
  t = lookup(id)
  return t
}
""",
        "utf-8",
    )
    env = env_for(tmp_path)
    env["MNC_MCP_SERVERS"] = '{"tickets": {"command": ["x"], "url": "http://h/mcp"}}'
    done = subprocess.run(
        [sys.executable, "-m", "mnlang.cli", "run", "main.mn", "--input", '{"id": 1}'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "both `command` and `url`" in done.stderr
    assert not (tmp_path / "journal.db").exists()


def test_the_docs_example_is_a_project_file_that_loads(tmp_path: Path) -> None:
    section = (
        (ROOT / "docs" / "tools.md")
        .read_text("utf-8")
        .split("**Where a deployment reaches the server.**", 1)[1]
    )
    found = re.search(r"```toml\n(.*?)```", section, re.S)
    assert found is not None
    (tmp_path / "mnlang.toml").write_text(found.group(1), "utf-8")
    project = load(tmp_path / "mnlang.toml")
    assert project.mcp["tickets"].url == "https://tickets.internal/mcp"
    assert project.mcp["tickets"].token_env == "TICKETS_TOKEN"
    assert project.mcp["fs"].command == (
        "npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv/prod-notes"
    )  # fmt: skip
    assert project.mcp["fs"].env == ("FS_AUDIT_TOKEN",)


def test_a_table_replaces_how_the_lock_reaches_the_server_as_a_whole() -> None:
    from mnlang.mcp.config import Reach
    from mnlang.mcp.lock import LockedServer

    locked = LockedServer("fs", ("npx", "fs", "/staging"), None, {}, env=("HOME_DIR",))
    by_url = Reach("fs", "mnlang.toml:3", url="http://h/mcp", env=("TOKEN",)).applied_to(locked)
    assert (by_url.command, by_url.url, by_url.env) == (None, "http://h/mcp", ("HOME_DIR", "TOKEN"))
    assert by_url.reached_by == "mnlang.toml:3"
    env_only = Reach("fs", "mnlang.toml:7", env=("HOME_DIR", "MORE")).applied_to(locked)
    assert env_only.command == ("npx", "fs", "/staging") and env_only.url is None
    assert env_only.env == ("HOME_DIR", "MORE")


_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)


@given(
    tables=st.dictionaries(
        _NAMES, st.lists(st.sampled_from(KEYS), unique=True, max_size=5), min_size=1, max_size=4
    ),
    blank=st.lists(st.booleans(), min_size=30, max_size=30),
)
def test_each_key_is_found_on_the_line_it_is_written(
    tables: dict[str, list[str]], blank: list[bool]
) -> None:
    """`line_of` (tomllib keeps no positions) finds every key of every `[mcp.NAME]`
    table on its own line, whatever the tables and blank lines around them."""
    lines: list[str] = ["[journal]", 'db = "j.db"']
    where: dict[tuple[str, str | None], int] = {}
    for i, (name, keys) in enumerate(tables.items()):
        if blank[i]:
            lines.append("")
        lines.append(f"[mcp.{name}]")
        where[(name, None)] = len(lines)
        for j, key in enumerate(keys):
            if blank[10 + i + j]:
                lines.append("# a comment")
            lines.append(f"{key} = 1")
            where[(name, key)] = len(lines)
    text = "\n".join(lines) + "\n"
    for (name, key), line in where.items():
        assert line_of(text, f"mcp.{name}", key) == line
