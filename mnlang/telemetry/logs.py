"""Worker log lines for people (time with its zone) or for log pipelines (JSON, one object
a line: UTC ISO 8601 time, level, message, run id, worker id and the run's trace id)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

RUN_LINE = re.compile(r"^run (?P<run>[^\s:]+): ")
"""How the worker starts a line about one run (`run <id>: ...`)."""


def human_line(line: str, at: float | None = None) -> str:
    """`HH:MM:SS+ZZZZ text`, in local time with its UTC offset, so a reader knows the zone."""
    stamp = time.strftime("%H:%M:%S%z", time.localtime(time.time() if at is None else at))
    return f"{stamp} {line}"


def json_line(
    line: str,
    problem: bool,
    *,
    worker_id: str | None,
    trace_of: Callable[[str], int | None] | None = None,
    at: float | None = None,
) -> str:
    """One JSON log object; `trace_of` finds a run's trace id (hex) for lines about a run."""
    when = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    record: dict[str, object] = {
        "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": "error" if problem else "info",
        "message": line,
        "worker_id": worker_id,
    }
    about = RUN_LINE.match(line)
    if about is not None:
        run_id = about.group("run")
        record["run_id"] = run_id
        trace = trace_of(run_id) if trace_of is not None else None
        if trace is not None:
            record["trace_id"] = f"{trace:032x}"
    return json.dumps(record, ensure_ascii=False)
