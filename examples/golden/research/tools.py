"""Tools of the golden research workflows: a paper index, web and news search, source
pages, a patent index, census and industry statistics, and company filings
(`data.json`); publishing goes through `mnlang.bench.world` (the CMS takes keys).
"""

from __future__ import annotations

import functools
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from mnlang.bench.world import calling, find, perform
from mnlang.errors import ToolError

HERE = Path(__file__).resolve().parent


@functools.cache
def _data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / "data.json").read_text("utf-8"))
    return data


def _matches(item: dict[str, Any], query: str) -> bool:
    words = set(query.lower().split())
    return bool(words & set(f"{item.get('topic', '')} {item['title']}".lower().split()))


def search_papers(query: str, *, ctx: Any = None) -> list[dict[str, Any]]:
    with calling("search_papers", ctx):
        hits = [p for p in _data()["papers"] if _matches(p, query)]
        return [{"id": p["id"], "title": p["title"], "year": p["year"]} for p in hits]


def fetch_abstract(paper_id: str, *, ctx: Any = None) -> str:
    with calling("fetch_abstract", ctx):
        for paper in _data()["papers"]:
            if paper["id"] == paper_id:
                return str(paper["abstract"])
        raise ToolError(f"no paper {paper_id}")


def search_web(query: str, *, ctx: Any = None) -> list[dict[str, Any]]:
    with calling("search_web", ctx):
        hits = [w for w in _data()["web"] if _matches(w, query)]
        return [{"url": w["url"], "title": w["title"]} for w in hits]


def search_news(query: str, *, ctx: Any = None) -> list[dict[str, Any]]:
    with calling("search_news", ctx):
        hits = [n for n in _data()["news"] if _matches(n, query)]
        return [{k: n[k] for k in ("id", "title", "source", "date")} for n in hits]


def get_source(news_id: str, *, ctx: Any = None) -> str:
    with calling("get_source", ctx):
        text = _data()["sources"].get(news_id)
        if text is None:
            raise ToolError(f"no article {news_id}")
        return str(text)


def list_competitors(market: str, *, ctx: Any = None) -> list[dict[str, Any]]:
    with calling("list_competitors", ctx):
        found = _data()["competitors"].get(market)
        if found is None:
            raise ToolError(f"no market {market}")
        return [dict(c) for c in found]


def fetch_page(url: str, *, ctx: Any = None) -> str:
    with calling("fetch_page", ctx):
        page = _data()["pages"].get(url)
        if page is None:
            raise ToolError(f"404 {url}")
        return str(page)


def search_patents(query: str, *, ctx: Any = None) -> list[dict[str, Any]]:
    with calling("search_patents", ctx):
        hits = [p for p in _data()["patents"] if _matches(p, query)]
        return [{"id": p["id"], "title": p["title"], "year": p["year"]} for p in hits]


def get_patent(patent_id: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("get_patent", ctx):
        for patent in _data()["patents"]:
            if patent["id"] == patent_id:
                return {k: patent[k] for k in ("id", "title", "year", "claims")}
        raise ToolError(f"no patent {patent_id}")


def get_census(country: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("get_census", ctx):
        row = _data()["census"].get(country)
        if row is None:
            raise ToolError(f"no census for {country}")
        return {"country": country, **row}


def get_industry_stats(category: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("get_industry_stats", ctx):
        row = _data()["industry"].get(category)
        if row is None:
            raise ToolError(f"no statistics for {category}")
        return {"category": category, **row}


def get_filing(company: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("get_filing", ctx):
        row = _data()["filings"].get(company)
        if row is None:
            raise ToolError(f"no filing for {company}")
        return {"company": company, **row}


def _publish(effect: str, kind: str, title: str, args: dict[str, Any], ctx: Any) -> str:
    slug = "-".join(title.lower().split())[:40]
    url = f"https://intranet.example.com/{kind}/{slug}"
    return str(perform(effect, args, ctx, lambda: url))


def publish_review(title: str, text: str, *, ctx: Any = None) -> str:
    with calling("publish_review", ctx):
        return _publish("publish_review", "review", title, {"title": title, "text": text}, ctx)


def post_verdict(claim: str, verdict: str, evidence: str, *, ctx: Any = None) -> str:
    with calling("post_verdict", ctx):
        args = {"claim": claim, "verdict": verdict, "evidence": evidence}
        return _publish("post_verdict", "verdict", claim, args, ctx)


def publish_report(title: str, body: str, *, ctx: Any = None) -> str:
    with calling("publish_report", ctx):
        return _publish("publish_report", "report", title, {"title": title, "body": body}, ctx)


def file_memo(matter: str, text: str, *, ctx: Any = None) -> str:
    with calling("file_memo", ctx):
        return _publish("file_memo", "memo", matter, {"matter": matter, "text": text}, ctx)


def save_estimate(product: str, region: str, value: Decimal, *, ctx: Any = None) -> str:
    with calling("save_estimate", ctx):
        args = {"product": product, "region": region, "value": value}
        return _publish("save_estimate", "estimate", f"{product} {region}", args, ctx)


def post_message(channel: str, text: str, *, ctx: Any = None) -> bool:
    """The chat API takes no idempotency key: every call posts a message. The message
    carries our reference (`ctx.wire_key`) in its metadata, as Slack's `metadata` does."""
    with calling("post_message", ctx):
        args = {"channel": channel, "text": text}
        return bool(
            perform("post_message", args, ctx, lambda: True, idempotent=False, referenced=True)
        )


def find_message(channel: str, *, ctx: Any = None) -> bool | None:
    """The channel's history searched for a message with our reference in its metadata."""
    with calling("find_message", ctx):
        found = find("post_message", ctx)
        return None if found is None else bool(found)
