"""Secrets: a `secret` is journaled as its reference and revealed only to tool code.

End to end through real processes: a run whose tools receive a token (alone, inside
`"Bearer {token}"` in a list, and as an effect's argument), one of which echoes it back
and one of which fails once with it in its error message, is killed at a commit
(`MNC_CRASH_AT_COMMIT`) and finished by `mnc worker` after the token was rotated. The
effect is not a key conflict (the ledger hashes the reference), and neither token, nor
its base64, nor its sha256 appears in the journal file, `mnc show --json`,
`mnc log --json`, the console's pages or the worker's log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mnlang import redact
from mnlang.runtime.convert import ConversionError, Converter, to_tool
from mnlang.runtime.values import from_stored, to_plain, to_stored
from mnlang.secrets import Secret, SecretUnavailable, concat, reveal
from mnlang.stores import open_store
from mnlang.ui.app import create_app
from mnlang.ui.auth import Authenticator

FLOW = """
tool fetch(url: str, headers: list[str]) -> str {
  impl: "tools:fetch"
}

tool check(token: secret) -> str {
  impl: "tools:check"
  retry: { attempts: 3, backoff: 10ms, on: [tool_error] }
}

effect charge(order_id: str, token: secret) -> str {
  impl: "tools:charge"
  key: "charge:{order_id}"
  scope: global
}

workflow pay(order_id: str, token: secret) -> str {
  page = fetch("https://example.com/{order_id}", ["Authorization: Bearer {token}"])
  status = check(token)
  receipt = charge(order_id, token)
  return "{page} {status} {receipt}"
}
"""

TOOLS = """
import os
from pathlib import Path

FAILED = Path(os.environ["FAILED_ONCE"])


def fetch(url, headers):
    # Echoes what it was sent, the token included: the run sees `[secret]`.
    return url + " " + ";".join(headers)


def check(token):
    if not FAILED.exists():
        FAILED.write_text("x")
        raise RuntimeError(f"401 Unauthorized for token {token}")
    return "checked"


def charge(order_id, token):
    assert token.startswith("tok-"), "the effect got the revealed value"
    return "receipt-" + order_id
"""

FIRST = "tok-first-9f8e7d6c5b4a"
ROTATED = "tok-rotated-0a1b2c3d4e5f"


def forms(value: str) -> list[bytes]:
    raw = value.encode()
    return [raw, base64.b64encode(raw), hashlib.sha256(raw).hexdigest().encode()]


def mnc(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mnlang.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("crash_at", [2, 3])
def test_a_secret_appears_nowhere_after_a_crash_and_a_rotation(
    tmp_path: Path, crash_at: int
) -> None:
    (tmp_path / "flow.mn").write_text(FLOW)
    (tmp_path / "tools.py").write_text(TOOLS)
    db = tmp_path / "journal.db"
    base = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    env = {**base, "FAILED_ONCE": str(tmp_path / "failed"), "API_TOKEN": FIRST}
    args = '{"order_id": "o1", "token": "env:API_TOKEN"}'
    created = mnc(
        tmp_path, env, "run", "flow.mn", "--input", args, "--id", "r1", "--detach", "--db", str(db)
    )
    assert created.returncode == 0, created.stderr.decode()
    crashed = mnc(
        tmp_path,
        {**env, "MNC_CRASH_AT_COMMIT": str(crash_at)},
        "worker", "--until-idle", "--lease-ttl", "0.5", "--db", str(db),
    )  # fmt: skip
    assert crashed.returncode == 137, crashed.stderr.decode()
    # The dead worker's lease must expire before `--until-idle` sees the run as runnable:
    # a worker started within its 0.5 s would find nothing to do and stop.
    time.sleep(0.6)

    rotated = {**env, "API_TOKEN": ROTATED}
    # The second worker's own lease is long: a 0.5 s one can lapse on a loaded machine.
    worker = mnc(tmp_path, rotated, "worker", "--until-idle", "--lease-ttl", "10", "--db", str(db))
    assert worker.returncode == 0, worker.stderr.decode()
    show = mnc(tmp_path, rotated, "show", "r1", "--json", "--db", str(db))
    log = mnc(tmp_path, rotated, "log", "r1", "--json", "--db", str(db))
    shown = json.loads(show.stdout)["run"]
    assert shown["status"] == "completed", show.stdout.decode()
    result = shown["result"]
    assert "Bearer [secret]" in result and "checked receipt-o1" in result, result
    events = json.loads(log.stdout)
    kinds = [e["kind"] for e in events]
    assert "key_conflict" not in json.dumps(events)
    assert kinds.count("retry") >= 1  # the failure that carried the token was journaled

    with open_store(db) as store:
        auth = Authenticator(admin_token=None, tokens=None, loopback=True)
        client = TestClient(
            create_app(store, auth, execute=False), base_url="http://127.0.0.1:8737"
        )
        pages = [client.get(url).content for url in ("/runs", "/runs/r1", "/api/runs/r1")]
    assert all(b"r1" in page for page in pages)
    outputs = {
        "journal file": db.read_bytes(),
        "mnc show --json": show.stdout,
        "mnc log --json": log.stdout,
        "console": b"\n".join(pages),
        "worker log": worker.stdout + worker.stderr,
        "crashed worker's log": crashed.stdout + crashed.stderr,
    }
    for token in (FIRST, ROTATED):
        for form in forms(token):
            for where, data in outputs.items():
                assert form not in data, f"{form!r} of a token in the {where}"
    assert b"env:API_TOKEN" in db.read_bytes()  # the reference is what is kept


def test_a_secret_is_a_reference_in_every_stored_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_TOKEN", "s3cr3t-value")
    token = Secret.of("env:SOME_TOKEN")
    header = concat(["Bearer ", token, "!"])
    assert isinstance(header, Secret)
    assert header.shown() == "Bearer {env:SOME_TOKEN}!"
    assert to_plain([header]) == [{"$secret": "Bearer {env:SOME_TOKEN}!"}]
    assert from_stored(to_stored({"h": [header]})) == {"h": [header]}
    assert to_tool({"h": [header]}) == {"h": ["Bearer s3cr3t-value!"]}
    assert "s3cr3t-value" not in json.dumps(to_stored(header))


def test_input_takes_references_only_and_never_echoes_a_value() -> None:
    from mnlang.ir.base import TypeIR

    converter = Converter({})
    assert converter.inbound("file:api_token", TypeIR(kind="secret"), "token") == Secret.of(
        "file:api_token"
    )
    with pytest.raises(ConversionError) as refused:
        converter.inbound("sk-live-123456", TypeIR(kind="secret"), "token")
    assert "sk-live-123456" not in str(refused.value)


def test_file_references_read_the_secrets_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "db_password").write_text("hunter2-long\n")
    monkeypatch.setenv("MNC_SECRETS_DIR", str(tmp_path))
    assert reveal(Secret.of("file:db_password")) == "hunter2-long"
    with pytest.raises(SecretUnavailable) as missing:
        reveal(Secret.of("file:nope"))
    assert "file:nope" in str(missing.value)
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(SecretUnavailable):
        reveal(Secret.of("env:NOT_SET_ANYWHERE"))


def test_redaction_covers_text_json_and_log_records(caplog: pytest.LogCaptureFixture) -> None:
    value = "zq-redact-me-7781"
    redact.register(value)
    b64 = base64.b64encode(value.encode()).decode()
    digest = hashlib.sha256(value.encode()).hexdigest()
    assert redact.redact(f"a {value} b {b64} c {digest}") == "a [secret] b [secret] c [secret]"
    assert redact.redact_json({value: [value, 1]}) == {"[secret]": ["[secret]", 1]}
    logger = logging.getLogger("tests.secrets")
    logger.addFilter(redact.RedactingFilter())
    with caplog.at_level(logging.INFO, logger="tests.secrets"):
        logger.info("token %s", value)
    assert value not in caplog.text and "[secret]" in caplog.text
