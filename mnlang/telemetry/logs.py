"""Log lines of the worker and the server, for people (time with its zone) or for log
pipelines (JSON, one object a line: UTC ISO 8601 time, level, message, and on a worker's
lines about one run its run id, worker id and trace id).

Every line is made here, and every line passes through the one redaction function
(`mnlang.redact`) before it is written: the worker's lines (`human_line`, `json_line`) and
the server's log records (uvicorn's and mnlang's, through `log_config`'s handler, which
has the `RedactingFilter` and `LogFormatter`).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mnlang.redact import redact, redact_json

RUN_LINE = re.compile(r"^run (?P<run>[^\s:]+): ")
"""How the worker starts a line about one run (`run <id>: ...`)."""


def human_line(line: str, at: float | None = None) -> str:
    """`HH:MM:SS+ZZZZ text`, in local time with its UTC offset, so a reader knows the zone."""
    stamp = time.strftime("%H:%M:%S%z", time.localtime(time.time() if at is None else at))
    return redact(f"{stamp} {line}")


def json_line(
    line: str,
    problem: bool,
    *,
    worker_id: str | None,
    trace_of: Callable[[str], int | None] | None = None,
    at: float | None = None,
    level: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """One JSON log object; `trace_of` finds a run's trace id (hex) for lines about a run.
    `level` overrides the one `problem` implies (`error` or `info`)."""
    when = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    record: dict[str, Any] = {
        "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level or ("error" if problem else "info"),
        "message": line,
        **(extra or {}),
    }
    if worker_id is not None:
        record["worker_id"] = worker_id
    about = RUN_LINE.match(line)
    if about is not None:
        run_id = about.group("run")
        record["run_id"] = run_id
        trace = trace_of(run_id) if trace_of is not None else None
        if trace is not None:
            record["trace_id"] = f"{trace:032x}"
    # Redacted before encoding: a secret with a quote in it is escaped in the JSON text.
    return json.dumps(redact_json(record), ensure_ascii=False)


class LogFormatter(logging.Formatter):
    """A log record as a line of `--log-format` `text` (`HH:MM:SS+ZZZZ level logger:
    message`) or `json` (the record's logger as `logger`), with its traceback, redacted."""

    def __init__(self, log_format: str = "text") -> None:
        super().__init__()
        self.log_format = log_format

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if self.log_format == "json":
            return json_line(
                message,
                record.levelno >= logging.ERROR,
                worker_id=None,
                at=record.created,
                level=record.levelname.lower(),
                extra={"logger": record.name},
            )
        return human_line(f"{record.levelname.lower()} {record.name}: {message}", record.created)


def log_config(log_format: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the server (uvicorn's `log_config`): uvicorn's and
    mnlang's records on stderr, each through the redaction filter and `LogFormatter`."""
    handler = ["mnlang"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "mnlang.redact.RedactingFilter"}},
        "formatters": {
            "mnlang": {"()": "mnlang.telemetry.logs.LogFormatter", "log_format": log_format}
        },
        "handlers": {
            "mnlang": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "mnlang",
                "filters": ["redact"],
            }
        },
        "loggers": {
            "uvicorn": {"handlers": handler, "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": handler, "level": "INFO", "propagate": False},
            "mnlang": {"handlers": handler, "level": "INFO", "propagate": False},
        },
    }
