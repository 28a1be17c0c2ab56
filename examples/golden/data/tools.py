"""Tools of the golden data workflows: datasets, a customer table, database tables with
samples, business metrics, time series with baselines and source systems to sync
(`data.json`); writes go through `mnlang.bench.world` (the warehouse and the incident
tracker take idempotency keys, the schema migrator does not).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from mnlang.bench.world import calling, find, perform
from mnlang.errors import ToolError

HERE = Path(__file__).resolve().parent


@functools.cache
def _data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / "data.json").read_text("utf-8"))
    return data


def _table(name: str, key: str, what: str) -> Any:
    found = _data()[name].get(key)
    if found is None:
        raise ToolError(f"no {what} {key}")
    return found


def load_rows(dataset: str, *, ctx: Any = None) -> list[dict[str, Any]]:
    with calling("load_rows", ctx):
        return [dict(r) for r in _table("datasets", dataset, "dataset")]


def fetch_customers(segment: str, *, ctx: Any = None) -> list[dict[str, Any]]:
    with calling("fetch_customers", ctx):
        return [dict(c) for c in _table("customers", segment, "customer segment")]


def describe_table(table: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("describe_table", ctx):
        t = _table("tables", table, "table")
        return {"table": table, "columns": list(t["columns"]), "rows": t["rows"]}


def sample_rows(table: str, limit: int, *, ctx: Any = None) -> list[list[str]]:
    with calling("sample_rows", ctx):
        return [list(r) for r in _table("samples", table, "table")[:limit]]


def query_metric(metric: str, period: str, *, ctx: Any = None) -> str:
    with calling("query_metric", ctx):
        values = _table("metrics", metric, "metric")
        if period not in values:
            raise ToolError(f"no {metric} for {period}")
        return str(values[period])


def fetch_series(metric: str, *, ctx: Any = None) -> list[int]:
    with calling("fetch_series", ctx):
        return list(_table("series", metric, "series"))


def get_baseline(metric: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("get_baseline", ctx):
        return {"metric": metric, **_table("baselines", metric, "baseline for")}


def extract_batch(source: str, since: str, *, ctx: Any = None) -> list[dict[str, Any]]:
    with calling("extract_batch", ctx):
        rows = _table("sources", source, "source")
        return [dict(r) for r in rows if r["placed"] >= since]


def write_rows(dataset: str, rows: list[dict[str, Any]], *, ctx: Any = None) -> int:
    with calling("write_rows", ctx):
        args = {"dataset": dataset, "rows": rows}
        return int(perform("write_rows", args, ctx, lambda: len(rows)))


def merge_records(keep: str, drop: str, *, ctx: Any = None) -> bool:
    with calling("merge_records", ctx):
        return bool(perform("merge_records", {"keep": keep, "drop": drop}, ctx, lambda: True))


def apply_migration(table: str, statement: str, *, ctx: Any = None) -> str:
    """The migrator takes no idempotency key: every call runs the statement. It records the
    version it is given (`ctx.wire_key`) in its history table, as Flyway and Alembic do."""
    with calling("apply_migration", ctx):
        args = {"table": table, "statement": statement}
        return str(
            perform(
                "apply_migration",
                args,
                ctx,
                lambda: f"mig-{table}",
                idempotent=False,
                referenced=True,
            )
        )


def applied_migration(table: str, *, ctx: Any = None) -> str | None:
    """The migration history's row for this version (`ctx.wire_key`), if it was applied."""
    with calling("applied_migration", ctx):
        found = find("apply_migration", ctx)
        return None if found is None else str(found)


def render_report(title: str, body: str, *, ctx: Any = None) -> str:
    with calling("render_report", ctx):
        slug = "-".join(title.lower().split())
        args = {"title": title, "body": body}
        return str(
            perform("render_report", args, ctx, lambda: f"https://reports.example.com/{slug}.pdf")
        )


def email_report(to: str, link: str, *, ctx: Any = None) -> bool:
    with calling("email_report", ctx):
        return bool(perform("email_report", {"to": to, "link": link}, ctx, lambda: True))


def open_incident(metric: str, summary: str, *, ctx: Any = None) -> str:
    with calling("open_incident", ctx):
        args = {"metric": metric, "summary": summary}
        return str(perform("open_incident", args, ctx, lambda: f"INC-{metric}"))


def load_batch(table: str, batch_id: str, rows: list[dict[str, Any]], *, ctx: Any = None) -> int:
    with calling("load_batch", ctx):
        args = {"table": table, "batch_id": batch_id, "rows": rows}
        return int(perform("load_batch", args, ctx, lambda: len(rows)))


def set_watermark(source: str, value: str, *, ctx: Any = None) -> bool:
    with calling("set_watermark", ctx):
        return bool(perform("set_watermark", {"source": source, "value": value}, ctx, lambda: True))
