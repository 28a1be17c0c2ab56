"""`mnc bench`: the suite runs with faults and the naive chain beside it, and `mnc metrics`
reads the same figures from the bench's journal.

The fast tests run one golden workflow (`support/refund.mn`: every fault class has a
stated outcome there); the slow one runs the whole golden suite as the issue's "done
when" command does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnlang.bench.duplicates import duplicate_costs
from mnlang.bench.html import bench_html
from mnlang.bench.naive import run_chain
from mnlang.bench.report import bench_json, bench_lines, targets
from mnlang.bench.runner import BenchResult, run_bench
from mnlang.bench.seeds import interval
from mnlang.bench.suite import Case, SuiteError, load_suite
from mnlang.cli import main
from mnlang.metrics import compute_metrics
from mnlang.metrics.facts import Rates
from mnlang.runtime.faults import FAULT_CLASSES, FaultPlan, FaultSpec
from mnlang.stores.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "examples" / "golden"
REFUND = GOLDEN / "support" / "refund.mn"


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> BenchResult:
    db = str(tmp_path_factory.mktemp("bench") / "journal.db")
    return run_bench(REFUND, seed=3, repeat=1, db=db)


def test_every_fault_class_is_injected_and_recovered(result: BenchResult) -> None:
    assert set(result.injected) == set(FAULT_CLASSES)
    total = result.report.total
    assert total.fault_recovery.numerator == total.fault_recovery.denominator > 0
    assert total.duplicate_commits == 0 and result.duplicates == 0
    assert total.journal_gaps == 0
    assert total.unsafe_actions.numerator == 0
    assert result.errors == []


def test_storms_stay_within_the_tool_limit(result: BenchResult) -> None:
    assert result.storms and all(s.held for s in result.storms)
    storm = result.storms[0]
    assert storm.tool == "fetch_order" and storm.limit_per_second == 25
    assert storm.calls == 3 * storm.runs  # one call and two failed attempts per run, no more


def test_the_naive_chain_runs_the_same_runs(result: BenchResult) -> None:
    naive = result.naive["all"]
    assert naive.chains == result.runs
    assert naive.duplicates > 0  # restarts performed effects again: no keys
    assert naive.model_calls > 0 and naive.cost.total > 0
    assert set(result.phases) == {"clean", "targeted", "chaos"}


def test_every_difference_in_outcome_is_listed(result: BenchResult) -> None:
    # Completion differs by exactly the runs listed, each with its reason.
    naive = result.naive["all"]
    ours_only = sum(1 for d in result.differences if d.runtime == "as expected")
    theirs_only = len(result.differences) - ours_only
    assert result.report.total.completion.numerator - naive.successful == ours_only - theirs_only
    assert all(d.why and d.run_id for d in result.differences)
    assert {d["run_id"] for d in bench_json(result)["differences"]} == {
        d.run_id for d in result.differences
    }
    assert any("where the two outcomes differ" in line for line in bench_lines(result))


def test_duplicates_are_priced(result: BenchResult) -> None:
    table = duplicate_costs(Decimal("0.75"))
    assert table.cost("refund_payment", {"amount": "240.00", "order_id": "o-1"}) == Decimal(240)
    assert table.cost("support.send_sms", {"phone": "1", "text": "hi"}) == Decimal("1.50")
    assert table.cost("create_rma", {"order_id": "o-1"}) == Decimal("7.50")
    assert table.cost("set_watermark", {"source": "a", "value": "b"}) == 0
    # The chain's restarts refund again: each extra refund costs its amount.
    naive = result.naive["all"]
    assert naive.duplicates > 0 and naive.duplicate_cost >= naive.duplicates * Decimal("1.50")
    assert naive.cost_per_successful_priced is not None and naive.cost_per_successful is not None
    assert naive.cost_per_successful_priced > naive.cost_per_successful
    assert result.duplicate_cost.get("all", Decimal(0)) == 0  # the runtime performed none twice
    assert bench_json(result)["naive"]["all"]["duplicate_cost"] == str(naive.duplicate_cost)


def test_mnc_metrics_agrees_with_the_bench(result: BenchResult) -> None:
    with SQLiteStore(result.db) as store:
        assert compute_metrics(store).to_json() == result.report.to_json()
    shown = CliRunner().invoke(main, ["metrics", "--db", result.db, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == bench_json(result)["metrics"]


def test_reports(result: BenchResult) -> None:
    text = "\n".join(bench_lines(result))
    for figure in ("workflow completion", "fault recovery", "tool selection accuracy"):
        assert figure in text
    assert "naive" in text and "targets:" in text
    page = bench_html(result)
    assert page.count("<svg") == 3 and "<script" not in page
    data = bench_json(result)
    assert {t["name"] for t in data["targets"]} == {t.name for t in targets(result)}
    assert data["metrics"]["total"]["fault_recovery_rate"]["denominator"] == sum(
        result.injected.values()
    )


def test_a_suite_needs_scenarios(tmp_path: Path) -> None:
    (tmp_path / "empty.mn").write_text("workflow w() -> int {\n  return 1\n}\n", "utf-8")
    with pytest.raises(SuiteError, match="no scenarios"):
        load_suite(tmp_path)
    bad = CliRunner().invoke(main, ["bench", str(tmp_path), "--faults", "meteor"])
    assert bad.exit_code == 2 and "unknown fault class" in bad.output


def test_a_users_own_suite_runs_and_a_failed_bench_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # examples/refund's tools record nothing in the bench's world: the bench still runs,
    # and says that effects performed twice are not measured.
    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples" / "refund", project)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    done = run_bench(project, faults=[], repeat=1, db=str(tmp_path / "journal.db"))
    assert done.errors == [] and done.runs > 0 and done.side_effects_recorded == 0
    assert any("not measured" in line for line in bench_lines(done))
    assert list(scratch.iterdir()) == []  # the world's folder is gone, the journal kept
    # A bench that fails (its journal is a folder) leaves no folder behind.
    with pytest.raises(Exception, match="cannot open journal"):
        run_bench(project, faults=[], repeat=1, db=str(project))
    assert list(scratch.iterdir()) == []


def test_intervals_over_seeds() -> None:
    # Values 1, 2, 3: mean 2, standard deviation 1, t(2) = 4.303: 2 ± 4.303 / sqrt(3).
    spread = interval([1.0, 2.0, 3.0])
    assert spread.mean == 2.0 and spread.half_width is not None
    assert abs(spread.half_width - 4.303 / 3**0.5) < 1e-9
    assert interval([0.5]).half_width is None and interval([0.5]).show(True) == "50.0%"


def test_mnc_bench_over_two_seeds(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples" / "refund", project)
    args = ["bench", str(project), "--repeat", "1", "--seeds", "2", "--json"]
    shown = CliRunner().invoke(main, [*args, "--db", str(tmp_path / "j.db")])
    assert shown.exit_code in (0, 1), shown.output
    over = json.loads(shown.output)["over_seeds"]
    assert over["seeds"] == [0, 1]
    assert len(over["completion (runtime)"]["values"]) == 2
    assert (tmp_path / "j.db").exists() and (tmp_path / "j.db.seed1").exists()


# A hand-built case for the naive chain: an agent that looks an order up with a tool, a
# person's review, then a payment. Every call may be tried 3 times (the chain's attempts).
CHAIN_FLOW = """
import std.policies { model_retry, quick_retry }

type Order {
  id: str
  total: money
}

type Verdict {
  refund: bool
  reason: str
}

tool fetch_order(order_id: str) -> Order {
  impl: "tools:fetch_order"
  cost: $0.01
  retry: quick_retry
}

agent judge(order_id: str) -> Verdict {
  model: "gpt-5.4-mini"
  prompt: "Look up order {order_id} and say whether to refund it."
  tools: [fetch_order]
  max_turns: 3
  retry: model_retry
}

effect pay(order_id: str) -> str {
  impl: "tools:pay"
  key: "pay:{order_id}"
  cost: $0.02
  retry: quick_retry
}

workflow refund_flow(order_id: str) -> str {
  class: "support"

  v = judge(order_id)
  d = checkpoint review {
    ask: "Refund {order_id}? {v.reason}"
    timeout: 1h
    on_timeout: reject
  }
  if not d.approved {
    fail "refund of {order_id} rejected"
  }
  receipt = pay(order_id)
  return receipt
}

scenario approved {
  run: refund_flow("o-1")
  replies: { judge: [fetch_order("o-1"), Verdict { refund: true, reason: "broken" }] }
  decisions: { review: approve }
  expect: { status: completed, output: "paid-o-1" }
}

scenario rejected {
  run: refund_flow("o-2")
  replies: { judge: [fetch_order("o-2"), Verdict { refund: false, reason: "used" }] }
  decisions: { review: reject }
  expect: { status: failed, message: "rejected" }
}
"""
CHAIN_TOOLS = """
from typing import Any

from mnlang.bench.world import perform


def fetch_order(order_id: str, *, ctx: Any = None) -> dict[str, Any]:
    return {"id": order_id, "total": "10.00"}


def pay(order_id: str, *, ctx: Any = None) -> str:
    return perform("pay", {"order_id": order_id}, ctx, lambda: f"paid-{order_id}")
"""
REVIEW = Decimal("1.50")  # a decision: 2 minutes at $0.75
RATES = Rates(Decimal(0), Decimal("0.75"), Decimal(2))


@pytest.fixture(scope="module")
def chain_cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    folder = tmp_path_factory.mktemp("chain")
    (folder / "flow.mn").write_text(CHAIN_FLOW, "utf-8")
    (folder / "tools.py").write_text(CHAIN_TOOLS, "utf-8")
    return {case.name: case for case in load_suite(folder / "flow.mn")}


def _fault(fault: str, at: str) -> FaultPlan:
    return FaultPlan((FaultSpec(fault, at, 1, "same"),), crash="raise")


def test_the_naive_chain_pays_every_attempt(chain_cases: dict[str, Case]) -> None:
    case = chain_cases["approved"]
    clean = run_chain(case, "clean", RATES, None)
    assert (clean.attempts, clean.successful, clean.model_calls) == (1, True, 2)
    assert clean.cost.tool == Decimal("0.03") and clean.cost.human_review == REVIEW
    assert clean.cost.model > 0
    # The payment fails after the review: the chain starts again, asks the model twice
    # and the person once more, and looks the order up again.
    paid_late = run_chain(case, "pay", RATES, None, _fault("network_failure", "pay"))
    assert (paid_late.attempts, paid_late.successful, paid_late.model_calls) == (2, True, 4)
    assert paid_late.cost.human_review == 2 * REVIEW
    assert paid_late.cost.tool == Decimal("0.01") + Decimal("0.03")
    assert paid_late.cost.model == 2 * clean.cost.model


def test_a_failed_tool_call_inside_an_agent_restarts_the_chain(
    chain_cases: dict[str, Case],
) -> None:
    case = chain_cases["approved"]
    clean = run_chain(case, "clean", RATES, None)
    # The lookup fails: the runtime would retry it; the chain stops before asking the
    # model again (one reply paid), then runs whole: 1 + 2 model calls, one review.
    lookup = run_chain(case, "fetch", RATES, None, _fault("network_failure", "fetch_order"))
    assert (lookup.attempts, lookup.successful, lookup.model_calls) == (2, True, 3)
    assert lookup.cost.human_review == REVIEW and lookup.cost.tool == Decimal("0.03")
    assert clean.cost.model < lookup.cost.model < 2 * clean.cost.model
    # The model's tool call comes back cut in half: a malformed reply ends the attempt.
    cut = run_chain(case, "cut", RATES, None, _fault("malformed_output", "judge"))
    assert (cut.attempts, cut.successful, cut.model_calls) == (2, True, 3)


def test_a_chain_that_keeps_failing_stops_after_its_attempts(
    chain_cases: dict[str, Case],
) -> None:
    # Rejected, as expected: the chain cannot tell, so it asks again, three times in all.
    rejected = run_chain(chain_cases["rejected"], "rejected", RATES, None)
    assert (rejected.attempts, rejected.status, rejected.successful) == (3, "failed", True)
    assert rejected.cost.human_review == 3 * REVIEW and rejected.model_calls == 6
    assert rejected.cost.tool == 3 * Decimal("0.01")


def test_a_late_person_is_late_on_every_attempt_of_the_chain(
    chain_cases: dict[str, Case],
) -> None:
    # The review's timeout decides (reject), as it does for the runtime: restarting the
    # chain does not make the person answer in time, so the chain fails as well.
    late = FaultPlan((FaultSpec("approval_delay", "review", 1, "failed"),))
    chain = run_chain(chain_cases["approved"], "late", RATES, None, late, "past", "review")
    assert (chain.attempts, chain.status, chain.successful) == (3, "failed", False)
    assert chain.cost.human_review == 0  # the timeout decided, never a person
    # Just before the timeout, the person's decision still counts: one attempt.
    near = run_chain(chain_cases["approved"], "near", RATES, None, late, "near", "review")
    assert (near.attempts, near.successful) == (1, True)


@pytest.mark.slow
@pytest.mark.serial
def test_mnc_bench_on_the_golden_suite(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mnlang.cli",
            "bench",
            str(GOLDEN),
            "--faults",
            "all",
            "--seed",
            "7",
            "--report",
            str(report),
            "--json",
        ],
        capture_output=True,
        check=False,
        timeout=600,
    )
    assert done.returncode in (0, 1), done.stderr
    data = json.loads(done.stdout)
    met = {t["name"]: t["met"] for t in data["targets"]}
    assert met["fault recovery"], data["targets"]
    assert met["duplicated committed effects"] and met["lost journal entries"]
    assert met["unsafe action rate"] and met["tool limits under retry storms"]
    assert sum(data["faults_injected"].values()) >= 1000
    assert data["errors"] == []
    page = report.read_text("utf-8")
    assert "<svg" in page and "outcomes differ" in page
    # Every run judged differently is listed: they account for the completion gap.
    ours = data["metrics"]["total"]["workflow_completion_rate"]["numerator"]
    ours_only = sum(d["runtime"] == "as expected" for d in data["differences"])
    naive_only = len(data["differences"]) - ours_only
    assert ours - data["naive"]["all"]["successful"] == ours_only - naive_only
    shown = CliRunner().invoke(main, ["metrics", "--db", data["journal"], "--json"])
    assert json.loads(shown.output) == data["metrics"]


def test_live_mode_asks_a_real_provider_and_prices_its_usage(tmp_path: Path) -> None:
    """`mnc bench --models openai`: the agents are answered by an OpenAI-compatible server
    (here the local chat server), not by the scenarios' replies; its usage is priced as
    the agent's model. Without a key the bench is refused before anything runs."""
    from tests.chat_server import Answer, chat_server, completion

    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples" / "refund", project)
    verdict = {"category": "damaged", "confidence": 0.9, "summary": "cracked mug"}
    args = ["bench", str(project), "--repeat", "1", "--faults", "network_failure"]
    args += ["--chaos", "0", "--models", "openai", "--json"]
    refused = subprocess.run(
        [sys.executable, "-m", "mnlang.cli", *args],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if "OPENAI" not in k},
        cwd=tmp_path,
    )
    assert refused.returncode == 2 and "MNC_OPENAI_API_KEY" in refused.stderr
    assert "Traceback" not in refused.stderr
    with chat_server() as server:
        server.respond = lambda body: Answer(200, completion(json.dumps(verdict)))
        env = {**os.environ, "MNC_OPENAI_BASE_URL": server.base_url, "MNC_OPENAI_API_KEY": "k"}
        shown = subprocess.run(
            [sys.executable, "-m", "mnlang.cli", *args, "--db", str(tmp_path / "j.db")],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        )
    assert shown.returncode in (0, 1), shown.stderr
    data = json.loads(shown.stdout)
    assert data["live_provider"] == "openai"
    asked = [r.body for r in server.requests if r.path.endswith("/chat/completions")]
    assert asked and all(body["model"] == "gpt-5.4-mini" for body in asked)
    total = data["metrics"]["total"]
    # Every request the runtime's runs made was answered with 100 + 20 tokens, and paid.
    runtime = compute_metrics(SQLiteStore(tmp_path / "j.db")).total
    assert runtime.tokens == total["tokens"] and runtime.tokens % 120 == 0 and runtime.tokens
    assert Decimal(total["cost"]["model"]) > 0


def test_the_bench_shows_what_reply_caching_and_model_fallback_change(tmp_path: Path) -> None:
    """`--cache-replies` and `--fallback-model` go to the runtime's agents only: repeated
    requests are answered from the cache at no cost, a failed model request is asked of the
    fallback model in the same attempt, and the naive chain calls its model as before."""
    faults = ["malformed_output"]  # model calls only: each hits an agent's request
    plain = run_bench(REFUND, faults=faults, repeat=2, chaos=0.0)
    tuned = run_bench(
        REFUND, faults=faults, repeat=2, chaos=0.0, cache_ms=3_600_000, fallback="gpt-5.4-nano"
    )
    before, after = plain.report.total, tuned.report.total
    assert plain.model_options is None and before.cached_replies == before.fallbacks == 0
    assert tuned.model_options is not None and "gpt-5.4-nano" in tuned.model_options
    assert after.cached_replies > 0 and after.cost.model < before.cost.model
    assert after.fallbacks > 0  # a malformed reply: the next model answers, same attempt
    assert after.completion.numerator >= before.completion.numerator

    def chain(result: BenchResult) -> tuple[object, ...]:  # compute time aside
        n = result.naive["all"]
        return (n.chains, n.successful, n.attempts, n.model_calls, n.cost.model, n.duplicates)

    assert chain(tuned) == chain(plain)  # the chain is the same chain
    assert any("gpt-5.4-nano" in line for line in bench_lines(tuned))
    shown = CliRunner().invoke(main, ["bench", str(REFUND), "--fallback-model", "nope-1"])
    assert shown.exit_code == 2 and "not in the price table" in shown.output
