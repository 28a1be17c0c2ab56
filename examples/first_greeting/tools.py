"""The greeting activity of Temporal's HelloCancellationScope sample, made deterministic:
each greeting takes a fixed time (the sample draws 5 to 30 s at random), short enough for
`mnc test`, so that "Hola" always answers first and "Bye" second."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mnlang.effect_log import record

HERE = Path(__file__).resolve().parent

TAKES_MS = {"Hello": 900, "Bye": 250, "Hola": 40, "Привет": 700, "Oi": 1200, "Hallo": 800}


def compose_greeting(greeting: str, name: str, *, ctx: Any = None) -> str:
    time.sleep(TAKES_MS.get(greeting, 1000) / 1000)
    return f"{greeting} {name}!"


def send_greeting(name: str, text: str, *, ctx: Any = None) -> bool:
    """Appends one line to the ledger (`MNC_EXAMPLE_LEDGER`): what the outside world saw."""
    record("send_greeting", ctx, {"name": name, "text": text}, HERE / ".ledger.jsonl")
    return True
