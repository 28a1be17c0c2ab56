"""Wire keys: what an effect sends the receiving system as its idempotency key, checked
at a real idempotent HTTP receiver on localhost (`tests/wire/receiver.py`, Stripe-style)
through `mnc` as a user runs it: two runs of one order are two performances, a run
killed inside the call and resumed is one, any template text gives a valid header, and
an intent committed before wire keys resumes sending the key that release sent."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mnlang.runtime.effects import MAX_WIRE_KEY, new_wire_nonce, wire_key
from tests.wire.receiver import Receiver, Server

WIRE = Path(__file__).parent / "wire"
MIRROR = WIRE / "mirror.mn"


def env_for(server: Server) -> dict[str, str]:
    """`mirror.mn` posts to a fixed URL: the receiver takes it as the HTTP proxy."""
    env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    env.pop("MNC_DB", None)
    return {**env, "HTTP_PROXY": server.url}


def mnc(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mnlang.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def run_mirror(db: Path, run_id: str, order_id: str, env: dict[str, str]) -> None:
    args = ["run", str(MIRROR), "--db", str(db), "--id", run_id]
    done = mnc([*args, "--input", json.dumps({"order_id": order_id})], env)
    assert done.returncode == 0, done.stdout + done.stderr


def is_header_safe(key: str) -> bool:
    return len(key) <= MAX_WIRE_KEY and key.isascii() and key.isprintable()


@given(st.text(max_size=400), st.sampled_from(["run", "global"]))
def test_a_wire_key_is_printable_ascii_of_at_most_255_characters(key: str, scope: str) -> None:
    nonce = "0" * 32
    wire = wire_key(key, scope, nonce)
    assert is_header_safe(wire) and wire == wire.strip()
    assert wire == wire_key(key, scope, nonce)  # a function of its inputs only
    assert (nonce in wire) == (scope == "run")


@given(st.text(max_size=300), st.text(max_size=300))
def test_different_keys_are_different_wire_keys(a: str, b: str) -> None:
    nonce = new_wire_nonce()
    if a != b:
        assert wire_key(a, "run", nonce) != wire_key(b, "run", nonce)
        assert wire_key(a, "global", nonce) != wire_key(b, "global", nonce)


def test_a_global_key_is_sent_as_it_is_and_a_run_key_with_the_runs_nonce() -> None:
    assert wire_key("refund:o-1", "global", "n" * 32) == "refund:o-1"
    assert wire_key("refund:o-1", "run", "n" * 32) == f"run-{'n' * 32}:refund:o-1"
    assert new_wire_nonce() != new_wire_nonce()


def test_two_runs_of_one_order_are_two_performances(tmp_path: Path) -> None:
    with Server() as server:
        env = env_for(server)
        run_mirror(tmp_path / "journal.db", "run-A", "o-1", env)
        run_mirror(tmp_path / "journal.db", "run-B", "o-1", env)
        # The same run id in another journal is another run too.
        run_mirror(tmp_path / "other.db", "run-A", "o-1", env)
    performed = server.receiver.performed
    assert len(server.receiver.requests) == 3 and len(performed) == 3
    assert len({r.key for r in performed}) == 3
    assert all(r.key is not None and r.key.endswith(":http_post:mirror:o-1") for r in performed)


def test_a_run_killed_inside_the_call_and_resumed_is_one_performance(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    with Server(Receiver(answer_delay_s=30)) as server:
        env = env_for(server)
        args = ["run", str(MIRROR), "--db", str(db), "--id", "killed"]
        args += ["--input", json.dumps({"order_id": "o-1"})]
        process = subprocess.Popen(
            [sys.executable, "-m", "mnlang.cli", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while not server.receiver.requests and time.monotonic() < deadline:
                time.sleep(0.02)
            assert server.receiver.requests, "the run never sent its request"
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        assert process.returncode == -signal.SIGKILL
        server.receiver.answer_delay_s = 0
        resumed = mnc(["resume", "killed", "--db", str(db)], env)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    first, again = server.receiver.requests
    assert first.key == again.key and again.replayed
    assert len(server.receiver.performed) == 1


def test_any_template_text_gives_a_valid_header(tmp_path: Path) -> None:
    order = ("Zürich-東京-😀 " * 30)[:300]
    with Server() as server:
        run_mirror(tmp_path / "journal.db", "long", order, env_for(server))
    (request,) = server.receiver.requests
    assert not request.replayed  # the receiver refuses a key that is not a valid one
    assert request.key is not None and is_header_safe(request.key)
    assert "sha256-" in request.key


def test_an_intent_committed_before_wire_keys_resumes_sending_the_same_key(
    tmp_path: Path,
) -> None:
    """`tests/wire/make_legacy_fixture.py` made the journal with the release before wire
    keys: the request was performed, then the process died before the result's commit."""
    seen = json.loads((WIRE / "legacy_open_intent.json").read_text("utf-8"))
    db = tmp_path / "journal.db"
    with sqlite3.connect(db) as conn:
        conn.executescript((WIRE / "legacy_open_intent.sql").read_text("utf-8"))
    with Server() as server:
        for key in seen["sent_keys"]:
            server.receiver.seed(key)  # what that release's request performed
        resumed = mnc(["resume", seen["run_id"], "--db", str(db)], env_for(server))
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    (request,) = server.receiver.requests
    assert [request.key] == seen["sent_keys"] and request.replayed
    assert server.receiver.performed == []
