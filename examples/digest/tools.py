"""Python implementations of the digest example's tools and effects.

`fetch_articles` reads `articles.json` beside this file; the weather and the
news are fixed. `publish` pretends to post the digest; each call is appended
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
from mnlang.errors import ToolError

HERE = Path(__file__).resolve().parent


def _ledger(effect: str, ctx: Any, args: dict[str, Any]) -> None:
    record(effect, ctx, args, HERE / ".ledger.jsonl")


def fetch_articles(feed: str, max_items: int, *, ctx: Any = None) -> list[dict[str, Any]]:
    feeds: dict[str, list[dict[str, Any]]] = json.loads((HERE / "articles.json").read_text("utf-8"))
    if feed not in feeds:
        raise ToolError(f"unknown feed {feed}")
    return feeds[feed][:max_items]


def get_weather(day: str, *, ctx: Any = None) -> dict[str, Any]:
    return {"outlook": "sunny spells, a breeze from the west", "high_c": 19.5}


def get_news(day: str, *, ctx: Any = None) -> list[str]:
    return ["Council approves the new tram line", "Marathon closes the riverside on Sunday"]


def publish(
    day: str,
    summaries: list[dict[str, Any]],
    weather: dict[str, Any],
    news: list[str],
    *,
    ctx: Any = None,
) -> str:
    _ledger(
        "publish",
        ctx,
        {"day": day, "summaries": summaries, "weather": weather, "news": news},
    )
    return f"https://digest.example.org/{day}"
