"""Tools of the human-interaction test workflows. Every effect call is appended to the
ledger file named by `MNC_EXAMPLE_LEDGER`, so a test can count what the outside world saw;
`flaky` fails on its first attempt of each tag, remembered in a file beside the ledger."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from mnlang.errors import Transient


def _ledger(effect: str, ctx: Any, args: dict[str, Any]) -> None:
    path = os.environ["MNC_EXAMPLE_LEDGER"]
    row = {
        "effect": effect,
        "key": ctx.key,
        "attempt": ctx.attempt,
        "run": ctx.run_id,
        "args": args,
    }
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")


def record(tag: str, text: str, *, ctx: Any) -> bool:
    _ledger("record", ctx, {"tag": tag, "text": text})
    return True


def record_part(tag: str, name: str, *, ctx: Any) -> bool:
    _ledger("tally", ctx, {"tag": tag, "name": name})
    return True


def launch(tag: str, *, ctx: Any) -> str:
    _ledger("launch", ctx, {"tag": tag})
    if tag == "slow" and ctx.attempt == 1 and len(_calls("launch")) == 1:
        time.sleep(0.6)
    return f"launch-{tag}"


def _calls(effect: str) -> list[dict[str, Any]]:
    path = Path(os.environ["MNC_EXAMPLE_LEDGER"])
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    return [r for r in rows if r["effect"] == effect]


def flaky(tag: str, *, ctx: Any) -> int:
    seen = Path(os.environ["MNC_EXAMPLE_LEDGER"] + f".flaky-{tag}")
    if not seen.exists():
        seen.write_text("failed once")
        raise Transient("busy, try again")
    return ctx.attempt


def nap(ms: int) -> int:
    time.sleep(ms / 1000)
    return ms
