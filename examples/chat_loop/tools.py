"""Python implementation of the chat loop's effect: posting a reply to the chat.

Each call is appended as one JSON line to the ledger (`MNC_EXAMPLE_LEDGER`, default
`.ledger.jsonl` here), so that tests can count what the chat's users saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mnlang.effect_log import record

HERE = Path(__file__).resolve().parent


def post_reply(conv: str, turn: int, text: str, *, ctx: Any = None) -> bool:
    record("post_reply", ctx, {"conv": conv, "turn": turn, "text": text}, HERE / ".ledger.jsonl")
    return True
