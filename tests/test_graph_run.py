"""`mnc graph --run`: a run's journal drawn over its workflow graph."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnlang import api
from mnlang.cli import main
from mnlang.graph.overlay import run_overlay
from mnlang.graph.render import GraphError
from mnlang.graph.runs import run_graph
from mnlang.runtime.run import start_run
from mnlang.stores import open_store

SOURCE = """
tool lookup(order_id: str) -> str {
  impl: "graphtools:lookup"
  retry: { attempts: 3, on: [transient] }
}

tool charge(order_id: str) -> str {
  impl: "graphtools:charge"
}

workflow pay(order_id: str) -> str {
  info = lookup(order_id)
  receipt = charge(info)
  return receipt
}
"""

# `lookup` succeeds on its second attempt; `charge` always fails with a tool error.
TOOLS = """
from mnlang.errors import ToolError, Transient

_seen: set[str] = set()


def lookup(order_id: str, *, ctx: object = None) -> str:
    if order_id not in _seen:
        _seen.add(order_id)
        raise Transient("busy")
    return "info-" + order_id


def charge(order_id: str, *, ctx: object = None) -> str:
    raise ToolError("card declined")
"""

DONE, FAILED = "#16a34a", "#dc2626"


@pytest.fixture
def journal(tmp_path: Path) -> tuple[Path, Path]:
    """A journal holding run `pay-1`, failed at `charge`, and the program's source."""
    source = tmp_path / "pay.mn"
    source.write_text(SOURCE, "utf-8")
    (tmp_path / "graphtools.py").write_text(TOOLS, "utf-8")
    db = tmp_path / "journal.db"
    with open_store(db) as store:
        outcome = start_run(
            store, api.load_program(source), "pay", {"order_id": "o1"}, run_id="pay-1"
        )
    assert outcome.status == "failed"
    return source, db


def node(dot: str, state_id: str) -> str:
    """The DOT line of the node whose label ends with `[state_id]` (and its overlay)."""
    found = [line for line in dot.splitlines() if f"\\n[{state_id}]" in line]
    assert len(found) == 1, dot
    return found[0]


def test_a_run_is_drawn_done_and_failed_on_the_right_states(journal: tuple[Path, Path]) -> None:
    source, db = journal
    result = CliRunner().invoke(main, ["graph", str(source), "--run", "pay-1", "--db", str(db)])
    assert result.exit_code == 0, result.output
    info, receipt = node(result.stdout, "info"), node(result.stdout, "receipt")
    assert f'color="{DONE}"' in info and "done, 2 attempts" in info
    assert f'color="{FAILED}"' in receipt and "\\nfailed" in receipt
    assert " color=" not in node(result.stdout, "return")  # never reached: no overlay


def test_without_a_file_the_journal_program_is_drawn(journal: tuple[Path, Path]) -> None:
    source, db = journal
    from_file = CliRunner().invoke(main, ["graph", str(source), "--run", "pay-1", "--db", str(db)])
    from_journal = CliRunner().invoke(main, ["graph", "--run", "pay-1", "--db", str(db)])
    assert from_journal.exit_code == 0, from_journal.output
    assert from_journal.stdout == from_file.stdout


def test_an_unknown_run_is_a_clear_error(journal: tuple[Path, Path]) -> None:
    _, db = journal
    result = CliRunner().invoke(main, ["graph", "--run", "nope", "--db", str(db)])
    assert result.exit_code == 2
    assert "error: no run `nope` in the journal" in result.stderr
    assert "help: `mnc runs` lists the runs" in result.stderr
    assert "Traceback" not in result.output


def test_a_changed_file_is_drawn_with_a_warning(journal: tuple[Path, Path]) -> None:
    source, db = journal
    source.write_text(SOURCE.replace("return receipt", 'log "paid"\n  return receipt'), "utf-8")
    result = CliRunner().invoke(main, ["graph", str(source), "--run", "pay-1", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert re.search(r"warning: run `pay-1` executed program \w{12}, but", result.stderr)
    assert f'color="{FAILED}"' in node(result.stdout, "receipt")


def test_the_run_names_its_workflow(journal: tuple[Path, Path]) -> None:
    _, db = journal
    with open_store(db) as store:
        with pytest.raises(GraphError, match="a run of workflow `pay`, not `other`"):
            run_graph(store, "pay-1", workflow="other")
        drawn = run_graph(store, "pay-1")
        record = store.get_run("pay-1")
        assert record is not None
        assert drawn.workflow == "pay" and drawn.overlay == run_overlay(store, record)


def test_graph_needs_a_file_or_a_run() -> None:
    result = CliRunner().invoke(main, ["graph"])
    assert result.exit_code == 2 and "give a FILE to draw, or --run RUN_ID" in result.output
    result = CliRunner().invoke(main, ["graph", "x.mn", "--db", "j.db"])
    assert result.exit_code == 2 and "--db names the journal of --run" in result.output
