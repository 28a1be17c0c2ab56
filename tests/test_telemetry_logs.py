"""Log lines of the worker and the server: the human format labels its time zone, the JSON
one is an object a line with UTC time, and a secret's value never appears in either (every
line passes through `mnlang.redact`), from a worker's line or a server's log record."""

from __future__ import annotations

import json
import logging
import logging.config
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnlang import redact
from mnlang.telemetry.logs import human_line, json_line, log_config
from tests.api.server import ADMIN_TOKEN, env_for

# A quote and a backslash: in JSON text they are escaped, so redacting the encoded line
# would miss them.
SECRET = 'sk-live-"quoted"\\value-0042'


@pytest.fixture
def secret() -> Iterator[str]:
    redact.register(SECRET)
    yield SECRET


def test_worker_lines_label_the_zone_and_lose_the_secret(secret: str) -> None:
    human = human_line(f"run r1: the tool said {secret}", at=0.0)
    assert re.fullmatch(r"\d\d:\d\d:\d\d[+-]\d{4} run r1: the tool said \[secret\]", human)
    line = json_line(f"run r1: the tool said {secret}", True, worker_id="w", trace_of=lambda _: 7)
    record = json.loads(line)
    assert record["message"] == "run r1: the tool said [secret]"
    assert record["level"] == "error" and record["run_id"] == "r1"
    assert record["trace_id"] == f"{7:032x}"
    assert re.search(r"T\d\d:\d\d:\d\d\.\d{3}Z$", record["time"])
    for text in (human, line):
        assert secret not in text and json.dumps(secret)[1:-1] not in text


@pytest.fixture
def server_logging() -> Iterator[None]:
    """The server's logging configuration, undone afterwards for the other tests."""
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "mnlang")
    kept = {
        name: (list(lg.handlers), lg.level, lg.propagate)
        for name in names
        for lg in [logging.getLogger(name)]
    }
    yield
    for name, (handlers, level, propagate) in kept.items():
        lg = logging.getLogger(name)
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_server_log_records_lose_the_secret(
    secret: str, log_format: str, server_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.config.dictConfig(log_config(log_format))
    log = logging.getLogger("mnlang.ui")
    log.warning("resuming run %s: %s", "r1", f"the store said {secret}")
    try:
        raise RuntimeError(f"a tool raised {secret}")
    except RuntimeError:
        log.exception("resuming run %s failed", "r1")
    logging.getLogger("uvicorn.error").error("bad request carrying %s", secret)
    written = capsys.readouterr().err
    assert secret not in written and json.dumps(secret)[1:-1] not in written
    assert written.count("[secret]") == 3
    lines = [line for line in written.splitlines() if line.strip()]
    if log_format == "json":
        records = [json.loads(line) for line in lines if line.startswith("{")]
        assert [r["level"] for r in records] == ["warning", "error", "error"]
        assert [r["logger"] for r in records] == ["mnlang.ui", "mnlang.ui", "uvicorn.error"]
        assert "RuntimeError: a tool raised [secret]" in records[1]["message"]
        assert all(r["time"].endswith("Z") for r in records)
    else:
        assert re.match(r"\d\d:\d\d:\d\d[+-]\d{4} warning mnlang.ui: resuming run r1", lines[0])


def test_mnc_serve_json_logs(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    command = [sys.executable, "-m", "mnlang.cli", "serve", "--db", str(db), "--port", "0"]
    command += ["--log-format", "json"]
    env = {**env_for(db), "MNC_UI_TOKEN": ADMIN_TOKEN}
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        records = []
        while not any("serving http://" in r["message"] for r in records):
            line = server.stderr.readline()
            assert line, "mnc serve ended before serving"
            records.append(json.loads(line))
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert all(r["time"].endswith("Z") and r["level"] == "info" for r in records)
