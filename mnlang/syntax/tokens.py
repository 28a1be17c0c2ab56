"""The terminals of the grammar: keyword table and the names people see in messages."""

from __future__ import annotations

_RESERVED = """
    import type enum tool effect agent event policy schedule workflow scenario
    if else match for in parallel limit checkpoint wait try catch finally as
    return fail log yield while not and or true false null
"""
KEYWORDS: dict[str, str] = {word: word.upper() for word in _RESERVED.split()}
# Keywords only in one place (see the lexer), so they stay free as names elsewhere.
CONTEXTUAL: dict[str, str] = {
    "error": "ERROR",
    "on_failure": "ON_FAILURE",
    "select": "SELECT",
    "after": "AFTER",
    "first": "FIRST",
}

PUNCTUATION: dict[str, str] = {
    "{": "LBRACE",
    "}": "RBRACE",
    "(": "LPAR",
    ")": "RPAR",
    "[": "LSQB",
    "]": "RSQB",
    ",": "COMMA",
    ":": "COLON",
    ".": "DOT",
    "->": "ARROW",
    "=>": "FATARROW",
    "=": "ASSIGN",
    "==": "EQ",
    "!=": "NE",
    "<": "LT",
    ">": "GT",
    "<=": "LE",
    ">=": "GE",
    "+": "PLUS",
    "-": "MINUS",
    "*": "STAR",
    "/": "SLASH",
    "%": "PERCENT",
    "??": "QQ",
    "?": "QMARK",
}

DISPLAY: dict[str, str] = {
    "NAME": "a name",
    "TYPE_NAME": "a type name",
    "INT": "an integer",
    "FLOAT": "a number",
    "MONEY": "an amount of money",
    "DURATION": "a duration",
    "STRING": "a string",
    "LONG_STRING": "a string",
    "AT_ID": "a state id (`@name`)",
    "PUBLISH": "`publish`",
    "START": "`start`",
    "_NL": "a new line",
    "$END": "the end of the file",
    **{kind: f"`{word}`" for word, kind in KEYWORDS.items()},
    **{kind: f"`{word}`" for word, kind in CONTEXTUAL.items()},
    **{kind: f"`{text}`" for text, kind in PUNCTUATION.items()},
}


def display(terminal: str) -> str:
    """The human name of a terminal, e.g. `RBRACE` -> "`}`"."""
    return DISPLAY.get(terminal, terminal.lower())
