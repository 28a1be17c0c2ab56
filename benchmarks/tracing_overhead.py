"""Tracing overhead: the 1,000-step tool chain with traces exported and without.

Run: `python benchmarks/tracing_overhead.py [--steps 1000] [--rounds 3]`. Prints figures
beside the target; asserts nothing. In one run, on one disk, rounds alternate:

- off: the tool chain of benchmarks/step_throughput.py on a fresh journal;
- on: the same, once `mnc export traces --follow` (another process) has exported a first
  run of the journal, and while it exports the chain's spans
  over OTLP/HTTP to a receiver in a third process, which decodes every request with the
  OpenTelemetry proto package and counts the spans.

Target (issue 22): tracing on at most 15% slower. Figures on a shared, loaded machine are
noisy: compare the medians, and the spans received (every step and the run, once).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from step_throughput import program  # noqa: E402

from mnlang.ir.model import IRProgram  # noqa: E402
from mnlang.runtime.config import RuntimeConfig  # noqa: E402
from mnlang.runtime.run import start_run  # noqa: E402
from mnlang.stores.sqlite import SQLiteStore  # noqa: E402

RECEIVER = """
import sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)
count = 0
lock = threading.Lock()
class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global count
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        n = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        with lock:
            count += n
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
    def do_GET(self):
        body = str(count).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def received(port: int) -> int:
    import urllib.request

    return int(urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read())


def chain(ir: IRProgram, db: Path, steps: int) -> float:
    store = SQLiteStore(db)
    start = time.perf_counter()
    outcome = start_run(
        store, ir, "tool_chain", {"items": list(range(steps))}, config=RuntimeConfig()
    )
    elapsed = time.perf_counter() - start
    assert outcome.status == "completed", outcome.status
    store.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ir = program(folder)
        receiver = subprocess.Popen(
            [sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True
        )
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        env = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{port}/v1/traces",
        }
        off: list[float] = []
        on: list[float] = []
        try:
            for round_ in range(args.rounds):
                off.append(chain(ir, folder / f"off{round_}.db", args.steps))
                db = folder / f"on{round_}.db"
                chain(ir, db, 1)  # a first run, whose spans say the exporter is live
                before = received(port)
                exporter = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "mnlang.cli",
                        "export",
                        "traces",
                        "--follow",
                        "--interval",
                        "0.2",
                        "--db",
                        str(db),
                        "--cursor",
                        f"c{round_}",
                    ],
                    env=env,
                )
                try:
                    while received(port) - before < 2:
                        time.sleep(0.05)
                    before = received(port)
                    on.append(chain(ir, db, args.steps))
                    deadline = time.monotonic() + 60
                    while received(port) - before < args.steps + 1 and time.monotonic() < deadline:
                        time.sleep(0.1)
                    spans = received(port) - before
                finally:
                    exporter.terminate()
                    exporter.wait(timeout=30)
                print(
                    f"round {round_ + 1}: off {off[-1]:.3f}s, on {on[-1]:.3f}s, "
                    f"spans received {spans} (expected {args.steps + 1})"
                )
        finally:
            receiver.terminate()
            receiver.wait(timeout=30)
    slower = statistics.median(on) / statistics.median(off) - 1
    print(
        json.dumps(
            {
                "steps": args.steps,
                "off_median_s": round(statistics.median(off), 3),
                "on_median_s": round(statistics.median(on), 3),
                "slower": f"{slower:.1%}",
                "target": "<= 15%",
            }
        )
    )


if __name__ == "__main__":
    main()
