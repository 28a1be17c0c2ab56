"""The price table: the shipped defaults, `MNC_PRICES` overrides, and clear errors (E094)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from mnlang.checker import check
from mnlang.models.prices import PRICES_ENV, PriceTableError, load_prices


def test_default_table_prices_the_documented_models() -> None:
    table = load_prices({})
    for name in (
        "gpt-5.4",
        "gpt-5.4-mini",
        "gpt-5.4-nano",
        "claude-sonnet-4.5",
        "claude-haiku-4.5",
        "llama-3.3-70b",
    ):
        price = table.model(name)
        assert price is not None, name
        assert price.output_per_million > price.input_per_million > 0
    assert table.model("scripted") is not None
    assert table.model("scripted").cost(10_000, 10_000) == 0  # type: ignore[union-attr]
    assert table.compute_per_cpu_second > 0
    assert table.human_per_minute > 0


def test_cost_is_exact_decimal_per_million_tokens() -> None:
    mini = load_prices({}).model("gpt-5.4-mini")
    assert mini is not None
    expected = (1000 * mini.input_per_million + 400 * mini.output_per_million) / Decimal(1_000_000)
    assert mini.cost(1000, 400) == expected
    assert isinstance(mini.cost(1, 1), Decimal)


def test_override_merges_model_by_model_and_price_by_price(tmp_path: Path) -> None:
    override = tmp_path / "prices.json"
    override.write_text(
        """{
          "models": {
            "gpt-5.4": { "output_per_million": 20 },
            "house-model": { "input_per_million": 0.1, "output_per_million": 0.2 }
          },
          "human_per_minute": 1.5
        }""",
        "utf-8",
    )
    default = load_prices({})
    table = load_prices({PRICES_ENV: str(override)})
    big = table.model("gpt-5.4")
    assert big is not None and default.model("gpt-5.4") is not None
    assert big.output_per_million == Decimal(20)
    assert big.input_per_million == default.model("gpt-5.4").input_per_million  # type: ignore[union-attr]
    assert table.model("house-model") is not None
    assert table.model("claude-haiku-4.5") == default.model("claude-haiku-4.5")
    assert table.human_per_minute == Decimal("1.5")
    assert table.compute_per_cpu_second == default.compute_per_cpu_second
    assert table.files[-1] == str(override)


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ('{\n  "models": {\n    "x": {\n  }', "not valid JSON", 4),
        ('["gpt-5.4"]', "must hold a JSON object", 1),
        ('{\n  "modles": {}\n}', "unknown key `modles`", 2),
        (
            '{\n  "models": {\n    "gpt-5.4": { "input_per_million": "cheap" }\n  }\n}',
            "must be a number",
            3,
        ),
        (
            '{\n  "models": {\n    "gpt-5.4": { "input_per_million": -1 }\n  }\n}',
            "must not be negative",
            3,
        ),
        (
            '{\n  "models": {\n    "new-model": { "input_per_million": 1 }\n  }\n}',
            "has no `output_per_million`",
            3,
        ),
        ('{\n  "models": {\n    "gpt-5.4": { "input": 1 }\n  }\n}', "unknown key `input`", 3),
        ('{ "human_per_minute": true }', "must be a number", 1),
        ('{ "currency": "EUR" }', "must be in `USD`", 1),
    ],
)
def test_malformed_override_is_a_positioned_error(
    tmp_path: Path, text: str, message: str, line: int
) -> None:
    override = tmp_path / "prices.json"
    override.write_text(text, "utf-8")
    with pytest.raises(PriceTableError) as info:
        load_prices({PRICES_ENV: str(override)})
    assert message in info.value.message
    assert info.value.path == str(override)
    assert info.value.line == line


def test_missing_override_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PriceTableError, match="cannot read the price file"):
        load_prices({PRICES_ENV: str(tmp_path / "nope.json")})


def test_checker_reports_a_bad_price_file_as_e094(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    override = tmp_path / "prices.json"
    override.write_text('{ "models": { "gpt-5.4": 3 } }', "utf-8")
    monkeypatch.setenv(PRICES_ENV, str(override))
    source = tmp_path / "main.mn"
    source.write_text(
        'workflow hello(name: str) -> str {\n  budget: $0.10\n  return "hi {name}"\n}\n', "utf-8"
    )
    result = check(source)
    codes = [d.code for d in result.diagnostics]
    assert codes == ["E094"]
    diag = result.diagnostics[0]
    assert diag.span is not None and diag.span.file == str(override)
    assert "gpt-5.4" in diag.message
    assert diag.help is not None and PRICES_ENV in diag.help


def test_override_changes_the_estimate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "main.mn"
    source.write_text(
        "agent greet(name: str) -> str {\n"
        '  model: "gpt-5.4-nano"\n'
        '  prompt: "Greet {name}"\n'
        "  max_tokens: 100\n"
        "}\n"
        "workflow hello(name: str) -> str {\n"
        "  budget: $0.01\n"
        "  g = greet(name)\n"
        "  return g\n"
        "}\n",
        "utf-8",
    )
    assert [d.code for d in check(source).diagnostics] == []
    override = tmp_path / "prices.json"
    override.write_text('{ "models": { "gpt-5.4-nano": { "output_per_million": 1000 } } }', "utf-8")
    monkeypatch.setenv(PRICES_ENV, str(override))
    assert [d.code for d in check(source).diagnostics] == ["W601"]


def test_the_table_says_where_its_prices_come_from_and_when(tmp_path: Path) -> None:
    table = load_prices({})
    assert table.as_of and table.as_of[:2] == "20"
    # Every model and rate of the default table has a source (a family pattern counts).
    named = set(table.sources)
    for name in (*table.models, "compute_per_cpu_second", "human_per_minute"):
        assert name in named or any(p.endswith("*") and name.startswith(p[:-1]) for p in named), (
            name
        )
    override = tmp_path / "prices.json"
    override.write_text('{"as_of": "2026-12-01", "sources": {"my-model": "our contract"}}')
    merged = load_prices({PRICES_ENV: str(override)})
    assert merged.as_of == "2026-12-01"
    assert merged.sources["my-model"] == "our contract" and "gpt-*" in merged.sources
    override.write_text('{"as_of": 20261201}')
    with pytest.raises(PriceTableError, match="`as_of` must be a string"):
        load_prices({PRICES_ENV: str(override)})
