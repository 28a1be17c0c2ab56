"""The Jinja2 environment of the console: autoescaping on, and the filters the pages use.

Autoescaping is what keeps a `<script>` in a tool's output or a model's reply as text;
nothing from a run is ever marked safe. The only markup passed through unescaped is
what the console itself draws (graphs from Graphviz, charts from `charts.py`).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape

from mnlang.metrics.render import money
from mnlang.run_output import event_summary
from mnlang.stores.base import Json

TEMPLATES = Path(__file__).parent / "templates"


def when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(at: float | None, now: float | None = None) -> str:
    """`3m ago`, `in 2h`: a time relative to now, for deadlines and ages."""
    if at is None:
        return "-"
    delta = (now if now is not None else time.time()) - at
    future = delta < 0
    seconds = abs(delta)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            text = f"{int(seconds // size)}{unit}"
            break
    else:
        text = f"{int(seconds)}s"
    return f"in {text}" if future else f"{text} ago"


def pretty(value: Json) -> str:
    """A value as indented JSON (strings as they are)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False)


def short(value: Json, width: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def path_quote(text: str) -> str:
    """A run id or workflow name as one URL path segment."""
    return quote(text, safe="")


def query(params: dict[str, str | None]) -> str:
    kept = {k: v for k, v in params.items() if v}
    return "?" + urlencode(kept) if kept else ""


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "svg"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when,
        ago=ago,
        pretty=pretty,
        short=short,
        seconds=seconds,
        money=money,
        percent=percent,
        q=path_quote,
        summary=lambda e: event_summary(e.kind, e.data),
    )
    env.globals["query"] = query
    return env
