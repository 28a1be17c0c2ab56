"""The price table: model prices per million tokens, and the compute and human-time rates.

The default table ships beside this module (`prices.json`); a file named by
the `MNC_PRICES` environment variable is merged over it, model by model and
price by price, so it can correct one price or add a model. Amounts are exact
decimals. A malformed file raises `PriceTableError` with its position.

`ModelPrice` and `PriceTable` are frozen `msgspec.Struct`s rather than dataclasses because
`mnc check` imports this module for its cost estimates (E3xx budgets): 0.02 ms a class
against about 0.4 ms, at start-up.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

DEFAULT_PRICES = Path(__file__).with_name("prices.json")
PRICES_ENV = "MNC_PRICES"

_MODEL_KEYS = ("input_per_million", "output_per_million")
# Optional: a prompt cache's reads and writes; without them, cached tokens cost as input.
_CACHE_KEYS = ("cache_read_per_million", "cache_write_per_million")
_RATE_KEYS = ("compute_per_cpu_second", "human_per_minute")
_TOP_KEYS = ("currency", "note", "as_of", "sources", "models", *_RATE_KEYS)
_MILLION = Decimal(1_000_000)


class PriceTableError(Exception):
    """A price file that cannot be read or does not have the expected shape."""

    def __init__(self, path: str, message: str, line: int = 1, col: int = 1) -> None:
        super().__init__(f"{path}:{line}:{col}: {message}")
        self.path = path
        self.message = message
        self.line = line
        self.col = col


class ModelPrice(msgspec.Struct, frozen=True):
    input_per_million: Decimal
    output_per_million: Decimal
    cache_read_per_million: Decimal | None = None
    cache_write_per_million: Decimal | None = None

    def cost(
        self, input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0
    ) -> Decimal:
        """The price of one exchange of this many tokens (cache reads and writes at their
        own prices, else as input)."""
        read = self.cache_read_per_million
        write = self.cache_write_per_million
        return (
            input_tokens * self.input_per_million
            + output_tokens * self.output_per_million
            + cache_read * (self.input_per_million if read is None else read)
            + cache_write * (self.input_per_million if write is None else write)
        ) / _MILLION


class PriceTable(msgspec.Struct, frozen=True):
    models: Mapping[str, ModelPrice]
    compute_per_cpu_second: Decimal
    human_per_minute: Decimal
    files: tuple[str, ...]  # the files merged into this table, the default first
    as_of: str = ""
    """The date the prices were read from their sources (the last file that gives one)."""
    sources: Mapping[str, str] = msgspec.field(default_factory=dict)
    """Where each price comes from (a model, a family such as `gpt-*`, or a rate)."""

    def model(self, name: str) -> ModelPrice | None:
        return self.models.get(name)


def priced_as(model: str, provider: str | None) -> str:
    """The table entry a model call is priced by: the `scripted` provider replays recorded
    replies, so its calls cost nothing whatever the model is called."""
    return "scripted" if provider == "scripted" else model


def load_prices(environ: Mapping[str, str] | None = None) -> PriceTable:
    """The default table, with the file named by `MNC_PRICES` (in `environ`) merged over it."""
    env = os.environ if environ is None else environ
    files = [str(DEFAULT_PRICES)]
    override = env.get(PRICES_ENV, "").strip()
    if override:
        files.append(override)
    models: dict[str, dict[str, Decimal]] = {}
    rates: dict[str, Decimal] = {}
    as_of = ""
    sources: dict[str, str] = {}
    origin: dict[str, _Source] = {}  # which file last named each model, for errors
    for path in files:
        source = _Source(path)
        data = source.load()
        for key in _RATE_KEYS:
            if key in data:
                rates[key] = source.amount(data[key], key, key)
        as_of = source.text_of(data, "as_of") or as_of
        sources.update(source.sources(data))
        for name, prices in source.models(data).items():
            models.setdefault(name, {}).update(prices)
            origin[name] = source
    complete: dict[str, ModelPrice] = {}
    for name, prices in models.items():
        missing = [k for k in _MODEL_KEYS if k not in prices]
        if missing:
            raise origin[name].error(
                f"model `{name}` has no `{missing[0]}` (it is not in the default table)", name
            )
        complete[name] = ModelPrice(
            prices["input_per_million"],
            prices["output_per_million"],
            prices.get("cache_read_per_million"),
            prices.get("cache_write_per_million"),
        )
    for key in _RATE_KEYS:
        if key not in rates:
            raise PriceTableError(str(DEFAULT_PRICES), f"no `{key}` in the default price table")
    return PriceTable(
        complete,
        rates["compute_per_cpu_second"],
        rates["human_per_minute"],
        tuple(files),
        as_of,
        sources,
    )


class _Source:
    """One price file being read; errors point at the key they are about."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.text = ""

    def error(self, message: str, near: str | None = None) -> PriceTableError:
        line, col = 1, 1
        at = self.text.find(f'"{near}"') if near is not None else -1
        if at >= 0:
            line = self.text.count("\n", 0, at) + 1
            col = at - (self.text.rfind("\n", 0, at) + 1) + 1
        return PriceTableError(self.path, message, line, col)

    def load(self) -> dict[str, Any]:
        try:
            self.text = Path(self.path).read_text("utf-8")
        except UnicodeDecodeError as exc:
            raise self.error("cannot read the price file: it is not UTF-8 text") from exc
        except OSError as exc:
            reason = (exc.strerror or "unreadable").lower()
            raise self.error(f"cannot read the price file: {reason}") from exc
        try:
            data = json.loads(self.text, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise PriceTableError(
                self.path, f"not valid JSON: {exc.msg.lower()}", exc.lineno, exc.colno
            ) from exc
        if not isinstance(data, dict):
            raise self.error("the price file must hold a JSON object")
        for key in data:
            if key not in _TOP_KEYS:
                known = ", ".join(f"`{k}`" for k in _TOP_KEYS)
                raise self.error(f"unknown key `{key}` (known keys: {known})", key)
        if data.get("currency", "USD") != "USD":
            raise self.error("prices must be in `USD`", "currency")
        return data

    def models(self, data: dict[str, Any]) -> dict[str, dict[str, Decimal]]:
        raw = data.get("models", {})
        if not isinstance(raw, dict):
            raise self.error("`models` must map model names to prices", "models")
        out: dict[str, dict[str, Decimal]] = {}
        for name, entry in raw.items():
            if not isinstance(entry, dict):
                raise self.error(
                    f"model `{name}` must be an object with `input_per_million` and "
                    "`output_per_million`",
                    name,
                )
            prices: dict[str, Decimal] = {}
            for key, value in entry.items():
                if key not in (*_MODEL_KEYS, *_CACHE_KEYS):
                    known = ", ".join(f"`{k}`" for k in (*_MODEL_KEYS, *_CACHE_KEYS))
                    raise self.error(
                        f"unknown key `{key}` for model `{name}` (known keys: {known})", key
                    )
                prices[key] = self.amount(value, f"{name}.{key}", name)
            out[name] = prices
        return out

    def text_of(self, data: dict[str, Any], key: str) -> str:
        value = data.get(key, "")
        if not isinstance(value, str):
            raise self.error(f"`{key}` must be a string", key)
        return value

    def sources(self, data: dict[str, Any]) -> dict[str, str]:
        raw = data.get("sources", {})
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise self.error("`sources` must map names to where their prices come from", "sources")
        return dict(raw)

    def amount(self, value: object, what: str, near: str) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise self.error(f"`{what}` must be a number", near)
        amount = Decimal(value)
        if amount < 0:
            raise self.error(f"`{what}` must not be negative", near)
        return amount
