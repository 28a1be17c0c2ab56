"""The worst case of a model call, shared by the checker's estimate and the runtime's budget.

The checker knows a prompt only as a template, so it estimates its tokens from the
literal text and the number of interpolated values; the runtime knows the exact text it
sends. Both then use `conversation_worst_case`: every turn resends the conversation so
far (the prompt and the earlier replies) and may answer with `max_tokens`.
"""

from __future__ import annotations

import math
from decimal import Decimal

from mnlang.models.prices import ModelPrice

DEFAULT_MAX_TOKENS = 4096
"""Output tokens assumed for an agent without `max_tokens`."""
CHARS_PER_TOKEN = 4
"""Characters per token of prompt text (a rough rule for English and code)."""
TOKENS_PER_VALUE = 250
"""Tokens assumed for each `{value}` a prompt template interpolates (checker only)."""
PROMPT_OVERHEAD_TOKENS = 200
"""The instructions and output schema the runtime adds to every prompt."""


def text_tokens(chars: int) -> int:
    """Tokens of this many characters of text."""
    return math.ceil(chars / CHARS_PER_TOKEN)


def template_tokens(literal_chars: int, values: int) -> int:
    """A template's input tokens: its literal text, each interpolated value, the overhead."""
    return text_tokens(literal_chars) + values * TOKENS_PER_VALUE + PROMPT_OVERHEAD_TOKENS


def conversation_tokens(prompt_tokens: int, max_tokens: int, turns: int) -> tuple[int, int]:
    """Input and output tokens of `turns` turns at worst: each turn resends the prompt and
    every earlier reply, and each reply is `max_tokens` long."""
    input_tokens = turns * prompt_tokens + max_tokens * turns * (turns - 1) // 2
    return input_tokens, turns * max_tokens


def conversation_worst_case(
    price: ModelPrice | None, prompt_tokens: int, max_tokens: int, turns: int = 1
) -> Decimal:
    """The most `turns` turns of a conversation can cost ($0 for an unpriced model)."""
    if price is None:
        return Decimal(0)
    input_tokens, output_tokens = conversation_tokens(prompt_tokens, max_tokens, turns)
    return price.cost(input_tokens, output_tokens)
