"""Python implementations of the pipeline example's tools and effects (both `.mn` files).

The export is `rows.json` beside this file, one list of rows per dataset. The
effects pretend to write to a warehouse and a dashboard; each call is appended
as one JSON line to the ledger (`MNC_EXAMPLE_LEDGER`, default `.ledger.jsonl`
here) so that crash tests can count what the outside world saw.

Failures are raised as `mnlang.errors` kinds, which a workflow's `retry.on`
and `catch` name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mnlang.effect_log import record
from mnlang.errors import InvalidValue, ToolError

HERE = Path(__file__).resolve().parent


def _ledger(effect: str, ctx: Any, args: dict[str, Any]) -> None:
    record(effect, ctx, args, HERE / ".ledger.jsonl")


def _rows(dataset: str) -> list[dict[str, Any]]:
    exports: dict[str, list[dict[str, Any]]] = json.loads((HERE / "rows.json").read_text("utf-8"))
    if dataset not in exports:
        raise ToolError(f"no export for dataset {dataset}")
    return exports[dataset]


def export_status(dataset: str, day: str, *, ctx: Any = None) -> dict[str, Any]:
    return {"ready": True, "rows": len(_rows(dataset))}


def fetch_batches(dataset: str, day: str, size: int, *, ctx: Any = None) -> list[dict[str, Any]]:
    if size < 1:
        raise InvalidValue(f"batch size must be at least 1, got {size}")
    rows = _rows(dataset)
    return [
        {"index": index, "rows": rows[start : start + size]}
        for index, start in enumerate(range(0, len(rows), size))
    ]


def validate_row(dataset: str, row: dict[str, Any], *, ctx: Any = None) -> dict[str, Any]:
    values = row["values"]
    if row["kind"] == "delete":
        return {"ok": True, "reason": ""}
    if not str(values.get("customer", "")).strip():
        return {"ok": False, "reason": "no customer"}
    amount = values.get("amount")
    if not isinstance(amount, int | float) or amount < 0:
        return {"ok": False, "reason": f"bad amount {amount!r}"}
    return {"ok": True, "reason": ""}


def normalise_row(row: dict[str, Any], *, ctx: Any = None) -> dict[str, Any]:
    values = {
        name: value.strip().lower() if isinstance(value, str) else value
        for name, value in row["values"].items()
    }
    return {**row, "values": values}


def quarantine_row(dataset: str, row_id: str, reason: str, *, ctx: Any = None) -> bool:
    _ledger("quarantine_row", ctx, {"dataset": dataset, "row_id": row_id, "reason": reason})
    return True


def upsert_row(dataset: str, row_id: str, values: dict[str, Any], *, ctx: Any = None) -> bool:
    _ledger("upsert_row", ctx, {"dataset": dataset, "row_id": row_id, "values": values})
    return True


def delete_row(dataset: str, row_id: str, *, ctx: Any = None) -> bool:
    _ledger("delete_row", ctx, {"dataset": dataset, "row_id": row_id})
    return True


def refresh_dashboard(dataset: str, *, ctx: Any = None) -> bool:
    _ledger("refresh_dashboard", ctx, {"dataset": dataset})
    return True
