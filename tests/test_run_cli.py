"""The run commands: `mnc run`, `resume`, `runs`, `show`, `log`, `cancel`.

Exit codes: 0 completed, 1 failed, 3 waiting, 4 cancelled, 2 when the command could not
do its work (usage, compile errors, bad input, an unknown run, a damaged or locked
journal); each of those prints an `error:` line and a `help:` line, never a traceback.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mnlang import api
from mnlang.cli import main
from mnlang.stores import JournalNotFound, open_store

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTED_REFUND = f"scripted:{EXAMPLES / 'refund' / 'replies.json'}"

SOURCE = """
type Receipt {
  id: str
  amount: money
}

tool lookup(order: str) -> money {
  impl: "tools:lookup"
}

effect pay(order: str, amount: money) -> Receipt {
  impl: "tools:pay"
  key: "pay:{order}"
  scope: global
}

workflow shop(order: str, amount: money) -> str {
  price = lookup(order)
  r = pay(order, amount)
  d = checkpoint confirm {
    ask: "Confirm {r.id}?"
    timeout: never
  }
  if not d.approved {
    fail "not confirmed"
  }
  return "{r.id} {r.amount} {price}"
}
"""

TOOLS = """
from decimal import Decimal
from pathlib import Path

def lookup(order):
    if order == "weird":
        return 12.5
    return Decimal("3.00")

def pay(order, amount, *, ctx):
    with open(Path(__file__).with_name("paid.txt"), "a") as f:
        f.write(ctx.key + "\\n")
    return {"id": "rc-" + order, "amount": amount}
"""


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MNC_DB", str(tmp_path / "journal.db"))
    monkeypatch.setenv("MNC_COMMIT_MS", "0")
    (tmp_path / "shop.mn").write_text(textwrap.dedent(SOURCE), "utf-8")
    (tmp_path / "tools.py").write_text(textwrap.dedent(TOOLS), "utf-8")
    return tmp_path


def mnc(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def run_json(*args: str) -> tuple[int, dict[str, Any]]:
    result = mnc(*args, "--json")
    return result.exit_code, json.loads(result.output)


def paid(folder: Path) -> list[str]:
    path = folder / "paid.txt"
    return path.read_text().split() if path.exists() else []


def test_run_waits_then_resume_completes(shop: Path) -> None:
    code, out = run_json(
        "run", str(shop / "shop.mn"), "--input", '{"order": "o1", "amount": "5.00"}', "--id", "r1"
    )
    assert code == 3 and out["status"] == "waiting" and out["run_id"] == "r1" and out["created"]
    with open_store() as store:
        store.decide_checkpoint("r1", "d", {"choice": "approve"}, by="ana")
    code, out = run_json("resume", "r1")
    assert code == 0 and out["result"] == "rc-o1 $5.00 $3.00"
    result = mnc("resume", "r1")  # an ended run only reports its outcome
    assert result.exit_code == 0 and "completed: run r1" in result.output
    assert paid(shop) == ["pay:o1"]


def test_the_same_id_with_the_same_input_returns_the_existing_run(shop: Path) -> None:
    args = [
        "run",
        str(shop / "shop.mn"),
        "--input",
        '{"order": "o2", "amount": "1.00"}',
        "--id",
        "same",
    ]
    first = run_json(*args)
    second = run_json(*args)
    assert first[0] == second[0] == 3
    assert first[1]["created"] and not second[1]["created"]
    assert paid(shop) == ["pay:o2"]
    other = mnc(*args[:3], '{"order": "o2", "amount": "1.01"}', *args[4:])
    assert other.exit_code == 2 and "already exists with other input" in other.output
    assert '"1.01"' in other.output and paid(shop) == ["pay:o2"]


def test_cancel_exits_4(shop: Path) -> None:
    run_json(
        "run", str(shop / "shop.mn"), "--input", '{"order": "o3", "amount": "1.00"}', "--id", "c"
    )
    result = mnc("cancel", "c")
    assert result.exit_code == 4 and "cancelled: run c" in result.output
    assert mnc("cancel", "c").exit_code == 4  # already cancelled: reported again


def test_runs_show_and_log(shop: Path) -> None:
    run_json(
        "run", str(shop / "shop.mn"), "--input", '{"order": "o4", "amount": "2.50"}', "--id", "s"
    )
    listing = mnc("runs")
    assert listing.exit_code == 0 and "s " in listing.output and "waiting" in listing.output
    assert json.loads(mnc("runs", "--status", "completed", "--json").output) == []
    shown = mnc("show", "s")
    assert shown.exit_code == 0
    for expected in (
        "status    waiting",
        "main: checkpoint confirm (d)",
        "checkpoint confirm (d): Confirm rc-o4?",
        "lookup ->",
        'in:  {"order": "o4"}',
    ):
        assert expected in shown.output
    details = json.loads(mnc("show", "s", "--json").output)
    assert [s["kind"] for s in details["steps"]] == ["tool", "effect"]
    log = mnc("log", "s")
    kinds = [line.split()[3] for line in log.output.splitlines()]
    assert kinds[:4] == ["started", "tool", "intent", "effect"] and "checkpoint" in kinds
    assert "confirm (d): Confirm rc-o4?" in log.output
    assert json.loads(mnc("log", "s", "--json").output)[0]["kind"] == "started"


def test_a_failed_run_exits_1_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNC_DB", str(tmp_path / "journal.db"))
    monkeypatch.setenv("MNC_EXAMPLE_LEDGER", str(tmp_path / "ledger.jsonl"))
    result = mnc(
        "run",
        str(EXAMPLES / "refund" / "refund.mn"),
        "--input",
        '{"order_id": "o-1003", "complaint": "x"}',
        "--models",
        "scripted",
    )
    assert result.exit_code == 1
    assert "failed: run" in result.output and "order o-1003 was never paid" in result.output


def test_a_tool_returning_the_wrong_type_fails_the_run_naming_the_field(shop: Path) -> None:
    code, out = run_json(
        "run", str(shop / "shop.mn"), "--input", '{"order": "weird", "amount": "1.00"}'
    )
    assert code == 1
    assert out["error"]["kind"] == "tool_error" and out["error"]["step"] == "price"
    assert "`result`" in out["error"]["message"] and "float 12.5" in out["error"]["message"]


def test_a_reused_key_with_other_arguments_fails_with_key_conflict(shop: Path) -> None:
    run_json("run", str(shop / "shop.mn"), "--input", '{"order": "k", "amount": "1.00"}')
    code, out = run_json(
        "run", str(shop / "shop.mn"), "--input", '{"order": "k", "amount": "2.00"}'
    )
    assert code == 1 and out["error"]["kind"] == "key_conflict"
    assert paid(shop) == ["pay:k"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            '{"order": "o1", "amount": ',
            "error[E096]: --input is not JSON: expecting value at line 1",
        ),
        ('["o1"]', "error: the input must be a JSON object"),
        (
            '{"order": "o1", "amount": 5.5}',
            "error: input `input.amount`: expected money, got the float 5.5",
        ),
        ('{"order": "o1"}', "error: the input has no `amount` (a money)"),
        ('{"order": "o1", "amount": "1", "colour": 1}', "error: `shop` has no parameter `colour`"),
    ],
)
def test_bad_input_exits_2_and_creates_nothing(shop: Path, given: str, message: str) -> None:
    result = CliRunner().invoke(
        main, ["run", str(shop / "shop.mn"), "--input", given], catch_exceptions=False
    )
    assert result.exit_code == 2
    assert message in result.output and "help:" in result.output
    with pytest.raises(JournalNotFound):  # not even an empty journal was created
        api.list_runs()


def test_input_file_errors(shop: Path) -> None:
    (shop / "input.json").write_text("{not json")
    result = mnc("run", str(shop / "shop.mn"), "--input-file", str(shop / "input.json"))
    assert result.exit_code == 2 and "is not JSON" in result.output
    result = mnc("run", str(shop / "shop.mn"), "--input-file", str(shop / "missing.json"))
    assert result.exit_code == 2 and "cannot read" in result.output
    both = mnc(
        "run", str(shop / "shop.mn"), "--input", "{}", "--input-file", str(shop / "input.json")
    )
    assert both.exit_code == 2 and "not both" in both.output


def test_a_compile_error_exits_2_with_its_diagnostic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNC_DB", str(tmp_path / "journal.db"))
    (tmp_path / "bad.mn").write_text("workflow w() -> int {\n  return x\n}\n")
    result = mnc("run", str(tmp_path / "bad.mn"))
    assert result.exit_code == 2 and "E101" in result.output


def test_unknown_runs_exit_2(shop: Path) -> None:
    assert mnc("db", "migrate").exit_code == 0  # a journal, without the run asked for
    for command in ("resume", "show", "log", "cancel"):
        result = mnc(command, "nope")
        assert result.exit_code == 2, command
        assert "error: no run `nope`" in result.output and "help: `mnc runs`" in result.output


def test_a_corrupted_journal_is_reported(shop: Path) -> None:
    (shop / "journal.db").write_bytes(b"this is not a database" * 100)
    result = mnc("run", str(shop / "shop.mn"), "--input", '{"order": "o1", "amount": "1.00"}')
    assert result.exit_code == 2 and "not a usable journal" in result.output
    assert mnc("runs").exit_code == 2


def test_a_locked_journal_is_reported_and_nothing_is_lost(
    shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_json(
        "run", str(shop / "shop.mn"), "--input", '{"order": "o5", "amount": "1.00"}', "--id", "lk"
    )
    from mnlang import stores

    real = stores.open_store
    monkeypatch.setattr(
        stores,
        "open_store",
        lambda db=None, durability="full", existing=False: real(
            db, durability, busy_timeout=0.2, existing=existing
        ),
    )
    holder = sqlite3.connect(shop / "journal.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = mnc("cancel", "lk")
        assert result.exit_code == 2 and "is locked by another process" in result.output
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with open_store() as store:
        record = store.get_run("lk")
        assert record is not None and record.status == "waiting"
    assert mnc("cancel", "lk").exit_code == 4


def test_several_workflows_need_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNC_DB", str(tmp_path / "journal.db"))
    (tmp_path / "two.mn").write_text(
        "workflow a() -> int {\n  return 1\n}\n\nworkflow b() -> int {\n  return 2\n}\n"
    )
    result = mnc("run", str(tmp_path / "two.mn"))
    assert result.exit_code == 2 and "several workflows" in result.output
    assert "`a`, `b`" in result.output
    assert mnc("run", str(tmp_path / "two.mn"), "-w", "b").exit_code == 0
    result = mnc("run", str(tmp_path / "two.mn"), "-w", "c")
    assert result.exit_code == 2 and "no workflow `c`" in result.output


def test_run_an_ir_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNC_DB", str(tmp_path / "journal.db"))
    monkeypatch.setenv("MNC_EXAMPLE_LEDGER", str(tmp_path / "ledger.jsonl"))
    ir = tmp_path / "refund.json"
    assert mnc("compile", str(EXAMPLES / "refund" / "refund.mn"), "-o", str(ir)).exit_code == 0
    code, out = run_json(
        "run",
        str(ir),
        "--input-file",
        str(EXAMPLES / "refund" / "input.json"),
        "--models",
        SCRIPTED_REFUND,
    )
    assert code == 0 and out["result"] == {"refund_id": "rf-o-1001", "amount": "42.50"}
    ir.write_text(ir.read_text().replace('"refund:"', '"refunds:"'))
    result = mnc(
        "run",
        str(ir),
        "--input-file",
        str(EXAMPLES / "refund" / "input.json"),
        "--models",
        "scripted",
    )
    assert result.exit_code == 2 and "error: content hash mismatch" in result.output


# --- who answers the agents: never a silent fake -------------------------------------------

REFUND_INPUT = '{"order_id": "o-1001", "complaint": "x"}'


@pytest.fixture
def no_model_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MNC_MODELS", "MNC_REPLIES", "MNC_OPENAI_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("MNC_OPENAI_BASE_URL", raising=False)
    db = tmp_path / "journal.db"
    monkeypatch.setenv("MNC_DB", str(db))
    monkeypatch.setenv("MNC_EXAMPLE_LEDGER", str(tmp_path / "ledger.jsonl"))
    return db


def test_replies_beside_the_program_are_not_used_unless_asked(no_model_env: Path) -> None:
    """refund.mn ships a replies.json; without --models and without a key the public
    OpenAI API is refused before any run exists."""
    result = mnc("run", str(EXAMPLES / "refund" / "refund.mn"), "--input", REFUND_INPUT)
    assert result.exit_code == 2, result.output
    assert "cannot answer the agents of `refund`" in result.output
    assert "no API key for the OpenAI API" in result.output
    assert "no run was created" in result.output
    assert not Path(no_model_env).exists()  # nor a journal


def test_a_local_server_needs_no_key(no_model_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNC_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens
    monkeypatch.setenv("MNC_OPENAI_RETRIES", "0")
    result = mnc("run", str(EXAMPLES / "refund" / "refund.mn"), "--input", REFUND_INPUT)
    assert "models: openai (http://127.0.0.1:9/v1)" in result.output
    assert result.exit_code == 1 and "cannot reach 127.0.0.1" in result.output
    assert len(api.list_runs(db=no_model_env)) == 1


def test_run_says_which_provider_answers(no_model_env: Path) -> None:
    replies = EXAMPLES / "refund" / "replies.json"
    result = mnc(
        "run",
        str(EXAMPLES / "refund" / "refund.mn"),
        "--input",
        REFUND_INPUT,
        "--models",
        "scripted",
    )
    assert result.exit_code == 0, result.output
    assert f"models: scripted (replies from {replies})" in result.output


def test_models_env_and_detach(no_model_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refund = str(EXAMPLES / "refund" / "refund.mn")
    monkeypatch.setenv("MNC_REPLIES", str(EXAMPLES / "refund" / "replies.json"))
    assert mnc("run", refund, "--input", REFUND_INPUT).exit_code == 0
    monkeypatch.delenv("MNC_REPLIES")
    monkeypatch.setenv("MNC_MODELS", "bogus")
    bad = mnc("run", refund, "--input", REFUND_INPUT)
    assert bad.exit_code == 2 and "unknown model setup `bogus`" in bad.output
    monkeypatch.delenv("MNC_MODELS")
    # only created: the worker that executes it checks with its own environment
    assert mnc("run", refund, "--input", REFUND_INPUT, "--detach").exit_code == 0
    assert len(api.list_runs(db=no_model_env)) == 2


def test_a_workflow_without_agents_needs_no_model(
    shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MNC_MODELS", "MNC_REPLIES", "MNC_OPENAI_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    result = mnc("run", str(shop / "shop.mn"), "--input", '{"order": "a", "amount": "1.00"}')
    assert result.exit_code == 3 and "models:" not in result.output
