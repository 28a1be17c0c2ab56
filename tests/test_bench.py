"""`mnc bench`: the suite runs with faults and the naive chain beside it, and `mnc metrics`
reads the same figures from the bench's journal.

The fast tests run one golden workflow (`support/refund.mn`: every fault class has a
stated outcome there); the slow one runs the whole golden suite as the issue's "done
when" command does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnlang.bench.html import bench_html
from mnlang.bench.report import bench_json, bench_lines, targets
from mnlang.bench.runner import BenchResult, run_bench
from mnlang.bench.suite import SuiteError, load_suite
from mnlang.cli import main
from mnlang.metrics import compute_metrics
from mnlang.runtime.faults import FAULT_CLASSES
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


@pytest.mark.slow
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
    assert "<svg" in report.read_text("utf-8")
    shown = CliRunner().invoke(main, ["metrics", "--db", data["journal"], "--json"])
    assert json.loads(shown.output) == data["metrics"]
