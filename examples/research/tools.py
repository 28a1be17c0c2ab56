"""Python implementations of the research example's tools and effects.

`search` and `fetch_page` work offline on `pages.json` beside this file: a
search ranks pages by the words they share with the query. The effects append
each call as one JSON line to the ledger (`MNC_EXAMPLE_LEDGER`, default
`.ledger.jsonl` here) so that crash tests can count what the outside world saw.

Failures are raised as `mnlang.errors` kinds, which a workflow's `retry.on`
and `catch` name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mnlang.effect_log import record
from mnlang.errors import ToolError

HERE = Path(__file__).resolve().parent


def _ledger(effect: str, ctx: Any, args: dict[str, Any]) -> None:
    record(effect, ctx, args, HERE / ".ledger.jsonl")


def _pages() -> dict[str, dict[str, str]]:
    pages: dict[str, dict[str, str]] = json.loads((HERE / "pages.json").read_text("utf-8"))
    return pages


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9-]+", text.lower()) if len(w) > 3}


def search(query: str, max_results: int, *, ctx: Any = None) -> list[dict[str, Any]]:
    wanted = _words(query)
    scored = []
    for url, page in _pages().items():
        score = len(wanted & _words(page["title"] + " " + page["text"]))
        if score:
            scored.append((-score, url, page["title"]))
    scored.sort()
    return [
        {"url": url, "title": title, "rank": rank}
        for rank, (_, url, title) in enumerate(scored[:max_results], 1)
    ]


def merge_sources(
    results: list[list[dict[str, Any]]], max_sources: int, *, ctx: Any = None
) -> list[dict[str, Any]]:
    """Each url once, at its best rank over the searches, best first, then re-ranked."""
    best: dict[str, dict[str, Any]] = {}
    for hits in results:
        for hit in hits:
            known = best.get(hit["url"])
            if known is None or hit["rank"] < known["rank"]:
                best[hit["url"]] = hit
    ordered = sorted(best.values(), key=lambda h: (h["rank"], h["url"]))[:max_sources]
    return [{**hit, "rank": rank} for rank, hit in enumerate(ordered, 1)]


def fetch_page(url: str, *, ctx: Any = None) -> str:
    page = _pages().get(url)
    if page is None:
        raise ToolError(f"404 not found: {url}")
    return page["text"]


def publish_brief(question: str, brief: dict[str, Any], *, ctx: Any = None) -> str:
    _ledger("publish_brief", ctx, {"question": question, "brief": brief})
    slug = "-".join(sorted(_words(question)))[:60]
    return f"https://briefs.example.org/{slug}"


def post_message(channel: str, text: str, *, ctx: Any = None) -> bool:
    _ledger("post_message", ctx, {"channel": channel, "text": text})
    return True
