"""Traces from the journal: spans exported over OTLP/HTTP to a real receiver (an HTTP
server on localhost decoding the requests with the OpenTelemetry proto package), across a
run crashed at every commit and resumed, with an export pass after every crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mnlang.runtime.config import RuntimeConfig
from mnlang.stores.sqlite import SQLiteStore
from mnlang.telemetry.export import JournalExporter
from mnlang.telemetry.spans import TraceParent, journal_spans, run_span_id
from tests.test_crash import (
    RUN_ID,
    SCENARIOS,
    CrashingStore,
    SimulatedCrash,
    _break_lease,
    _settle_threads,
    answer_waits,
    program_of,
    workflow_of,
)


@dataclass(frozen=True)
class Received:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    start: int
    end: int


@dataclass
class Receiver:
    url: str
    spans: list[Received] = field(default_factory=list)
    refuse: bool = False


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    state = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if state.refuse:
                self.send_response(400)
                self.end_headers()
                return
            request = ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        state.spans.append(
                            Received(
                                span.trace_id.hex(),
                                span.span_id.hex(),
                                span.parent_span_id.hex(),
                                span.name,
                                span.start_time_unix_nano,
                                span.end_time_unix_nano,
                            )
                        )
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def exporter_to(store: SQLiteStore, receiver: Receiver, cursor: str) -> JournalExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return JournalExporter(store, cursor, OTLPSpanExporter(endpoint=receiver.url, timeout=5))


def crash_and_export(tmp: Path, at: int | None, receiver: Receiver) -> tuple[SQLiteStore, int]:
    """Run crashflow, stopped at commit `at` once, exporting after the crash and at the end."""

    scenario = next(s for s in SCENARIOS if s.name == "crashflow")
    tmp.mkdir(parents=True)
    os.environ["MNC_EXAMPLE_LEDGER"] = str(tmp / "ledger.jsonl")
    store = SQLiteStore(tmp / "journal.db")
    exporter = exporter_to(store, receiver, "traces")
    config = RuntimeConfig(commit_every=4, commit_ms=0, slow_call_ms=1e9, models="scripted")
    program = program_of(scenario)
    given = json.loads(scenario.input.read_text("utf-8"))
    crashing = CrashingStore(store, at, "before")
    for execution in range(20):
        try:
            outcome = crashing.start_or_resume(
                execution, program, workflow_of(scenario), given, RUN_ID, config
            )
        except SimulatedCrash:
            _settle_threads()
            _break_lease(store, RUN_ID)
            exporter.export_once()
            continue
        if outcome.status != "waiting":
            break
        answer_waits(store, RUN_ID, scenario, tmp / "ledger.jsonl")
    exporter.export_once()
    exporter.export_once()  # nothing new: sends nothing
    exporter.close()
    return store, crashing.commits


def test_every_span_arrives_once_with_its_parent_across_crashes(
    receiver: Receiver, tmp_path: Path
) -> None:
    _, commits = crash_and_export(tmp_path / "ref", None, receiver)
    assert commits >= 3
    for at in range(1, commits + 1):
        receiver.spans.clear()
        store, _ = crash_and_export(tmp_path / f"at{at}", at, receiver)
        counts = Counter(s.span_id for s in receiver.spans)
        assert all(n == 1 for n in counts.values()), f"crash at {at}: duplicated spans"
        ids = set(counts)
        run = store.get_run(RUN_ID)
        assert run is not None and run.status == "completed"
        root = f"{run_span_id(RUN_ID):016x}"
        assert root in ids, f"crash at {at}: no run span"
        for span in receiver.spans:
            if span.span_id != root:
                assert span.parent_id in ids, f"crash at {at}: {span.name} has no parent"
            assert span.start <= span.end
        events = store.read_journal(RUN_ID)
        steps = [e for e in events if e.kind in ("tool", "effect")]
        step_spans = [s for s in receiver.spans if s.name.split()[0] in ("tool", "effect")]
        assert len(step_spans) == len(steps), f"crash at {at}: a step span is missing"
        # Each effect call in flight (its intent committed, again after a crash) is a short
        # span of its own, exported once, before the span of the attempt's outcome.
        begun = [e for e in events if e.kind in ("intent", "reattempt")]
        started = [s for s in receiver.spans if s.name.startswith("attempt started ")]
        assert len(started) == len(begun) > 0, f"crash at {at}: an in-flight span is missing"
        assert all(s.start == s.end for s in started)
        assert not {s.span_id for s in started} & {s.span_id for s in step_spans}
        order = [s.name for s in receiver.spans]  # as they arrived
        for i, name in enumerate(order):
            if name.startswith("effect "):
                began = f"attempt started {name.removeprefix('effect ')}"
                assert began in order[:i], f"crash at {at}: {name} arrived before it began"
        # What arrived is what the journal holds: the same ids from a second reading.
        expected = {f"{s.span_id:016x}" for s in journal_spans(run, events)}
        assert ids == expected
        store.close()


def test_two_exports_of_one_journal_send_identical_ids(receiver: Receiver, tmp_path: Path) -> None:
    store, _ = crash_and_export(tmp_path / "run", 5, receiver)
    first = sorted(receiver.spans, key=lambda s: s.span_id)
    receiver.spans.clear()
    again = exporter_to(store, receiver, "second")
    again.export_once()
    again.close()
    assert sorted(receiver.spans, key=lambda s: s.span_id) == first
    assert len({s.trace_id for s in first}) == 1


def test_a_refused_export_keeps_the_cursor_and_is_sent_again(
    receiver: Receiver, tmp_path: Path
) -> None:
    from mnlang.telemetry.export import ExportFailed

    store, _ = crash_and_export(tmp_path / "run", None, receiver)
    sent = len(receiver.spans)
    receiver.spans.clear()
    receiver.refuse = True
    exporter = exporter_to(store, receiver, "fresh")
    with pytest.raises(ExportFailed):
        exporter.export_once()
    assert store.export_cursor("fresh") == {}
    receiver.refuse = False
    assert exporter.export_once() == sent
    exporter.close()


def test_a_traceparent_given_at_start_is_the_runs_trace() -> None:
    header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    parsed = TraceParent.parse(header)
    assert parsed is not None and parsed.header() == header
    assert parsed.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    for bad in ("", "01-" + header[3:], header[:-1], "00-" + "0" * 32 + "-00f067aa0ba902b7-01"):
        assert TraceParent.parse(bad) is None


def mnc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mnlang.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_mnc_run_traceparent_and_export_traces(receiver: Receiver, tmp_path: Path) -> None:
    scenario = next(s for s in SCENARIOS if s.name == "crashflow")
    db = str(tmp_path / "journal.db")
    common = [str(scenario.source), "--input-file", str(scenario.input), "--db", db]
    refused = mnc("run", *common, "--id", "r0", "--traceparent", "00-nope")
    assert refused.returncode == 2 and "traceparent" in refused.stderr
    assert not (tmp_path / "journal.db").exists(), "a refused run created a journal"
    header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    env = {"MNC_EXAMPLE_LEDGER": str(tmp_path / "ledger.jsonl")}
    ran = mnc("run", *common, "--id", "r1", "--traceparent", header, env=env)
    assert ran.returncode == 0, ran.stderr
    cursor = "to-the-receiver"
    exported = mnc(
        "export",
        "traces",
        "--db",
        db,
        "--cursor",
        cursor,
        env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url},
    )
    assert exported.returncode == 0, exported.stderr
    assert receiver.spans
    assert {s.trace_id for s in receiver.spans} == {"4bf92f3577b34da6a3ce929d0e0e4736"}
    run_span = next(s for s in receiver.spans if s.name.startswith("run "))
    assert run_span.parent_id == "00f067aa0ba902b7"
    sent = len(receiver.spans)
    again = mnc(
        "export",
        "traces",
        "--db",
        db,
        "--cursor",
        cursor,
        env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url},
    )
    assert again.returncode == 0 and len(receiver.spans) == sent


def test_worker_json_logs_name_the_run_worker_and_trace(tmp_path: Path) -> None:
    import re

    from mnlang.telemetry.spans import derived_id

    scenario = next(s for s in SCENARIOS if s.name == "crashflow")
    db = str(tmp_path / "journal.db")
    env = {"MNC_EXAMPLE_LEDGER": str(tmp_path / "ledger.jsonl")}
    common = [str(scenario.source), "--input-file", str(scenario.input), "--db", db]
    assert mnc("run", *common, "--id", "w1", "--detach", env=env).returncode == 0
    worked = mnc("worker", "--db", db, "--until-idle", "--log-format", "json", env=env)
    assert worked.returncode == 0, worked.stderr
    lines = [json.loads(line) for line in worked.stderr.splitlines()]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", x["time"]) for x in lines)
    about = [x for x in lines if x.get("run_id") == "w1"]
    assert about and about[0]["level"] == "info" and about[0]["worker_id"]
    assert about[0]["trace_id"] == f"{derived_id(128, 'trace', 'w1'):032x}"
    human = mnc("worker", "--db", db, "--until-idle", env=env)
    assert re.match(r"\d\d:\d\d:\d\d[+-]\d{4} ", human.stderr), human.stderr


def test_worker_metrics_are_scraped_during_a_run(tmp_path: Path) -> None:
    import shutil
    import time
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    scenario = next(s for s in SCENARIOS if s.name == "crashflow")
    db = str(tmp_path / "journal.db")
    env = {**os.environ, "MNC_EXAMPLE_LEDGER": str(tmp_path / "ledger.jsonl")}
    common = [str(scenario.source), "--input-file", str(scenario.input), "--db", db]
    assert mnc("run", *common, "--id", "m1", "--detach", env=env).returncode == 0
    worker = subprocess.Popen(
        [sys.executable, "-m", "mnlang.cli", "worker", "--db", db, "--metrics-port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert worker.stderr is not None
        url = ""
        while not url:
            line = worker.stderr.readline()
            assert line, "the worker ended before serving /metrics"
            if "metrics at " in line:
                url = line.split("metrics at ")[1].strip()
        deadline = time.monotonic() + 60
        while True:
            text = urllib.request.urlopen(url, timeout=10).read().decode()
            families = {f.name: f for f in text_string_to_metric_families(text)}
            ended = {
                s.labels["status"]: s.value
                for s in families["mnlang_worker_runs_ended"].samples
                if s.name.endswith("_total")
            }
            if ended.get("completed") == 1:
                break
            assert time.monotonic() < deadline, ended
            time.sleep(0.2)
        claimed = families["mnlang_worker_runs_claimed"].samples[0].value
        assert claimed >= 1
        # Only the worker's own figures: the journal's are `mnc serve`'s.
        assert "mnlang_runs" not in families and "mnlang_queue_depth" not in families
        steps = {
            s.labels["kind"]: s.value
            for s in families["mnlang_worker_step_duration_seconds"].samples
            if s.name.endswith("_count")
        }
        with SQLiteStore(db) as store:
            journaled = [e.kind for e in store.read_journal("m1")]
        assert steps.get("effect", 0) + steps.get("tool", 0) >= journaled.count("effect") > 0
        promtool = shutil.which("promtool")
        assert promtool is not None, "promtool (Debian's prometheus) is installed by .ci/run"
        checked = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_the_docs_try_it_block_runs(receiver: Receiver, tmp_path: Path) -> None:
    """docs/observability.md's "Try it" commands, as written, from a copy of the repository's
    examples, against the receiver: the spans arrive once, in the caller's trace."""
    import re
    import shutil

    root = Path(__file__).resolve().parent.parent
    text = (root / "docs" / "observability.md").read_text("utf-8")
    section = text[text.index("## Try it") :]
    block = re.search(r"^```sh\n(.*?)^```", section, re.M | re.S)
    assert block is not None
    shutil.copytree(root / "examples" / "refund", tmp_path / "examples" / "refund")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MNC_", "OTEL_"))}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.url.removesuffix("/v1/traces")
    env["MNC_EXAMPLE_LEDGER"] = str(tmp_path / "ledger.jsonl")
    done = subprocess.run(
        ["bash", "-ec", block.group(1)], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    ids = [s.span_id for s in receiver.spans]
    assert ids and len(ids) == len(set(ids)), "a span arrived twice"
    assert {s.trace_id for s in receiver.spans} == {"4bf92f3577b34da6a3ce929d0e0e4736"}
    logs = [line for line in done.stderr.splitlines() if line.startswith("{")]
    assert logs and all(json.loads(line)["time"].endswith("Z") for line in logs)
