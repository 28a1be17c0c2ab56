"""Agent calls, answered for now by a scripted stand-in for the model providers.

`ScriptedReplies` reads `replies.json` beside the program (`{"agent": [reply, ...]}`,
or the file named by `MNC_REPLIES`) and gives each agent its replies in call order;
the interpreter keeps the count in the run's state, so a resumed run continues where
it stopped. The model providers (an OpenAI-compatible HTTP provider and the real
`scripted` one) replace this class behind the same two methods, and `estimate` /
`cost` are where token prices enter the budget.
"""

from __future__ import annotations

import json
import os
import threading
from decimal import Decimal
from pathlib import Path

from mnlang.errors import ToolError
from mnlang.ir.model import AgentIR
from mnlang.stores.base import Json

REPLIES_FILE = "replies.json"
REPLIES_ENV = "MNC_REPLIES"


class ScriptedReplies:
    def __init__(self, folder: str | Path) -> None:
        override = os.environ.get(REPLIES_ENV, "").strip()
        self.path = Path(override) if override else Path(folder) / REPLIES_FILE
        self._replies: dict[str, list[Json]] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, list[Json]]:
        with self._lock:
            if self._replies is None:
                try:
                    data = json.loads(self.path.read_text("utf-8"))
                except FileNotFoundError:
                    raise ToolError(
                        f"no model provider yet and no scripted replies: `{self.path}` not found"
                    ) from None
                except (OSError, ValueError) as e:
                    raise ToolError(f"cannot read scripted replies `{self.path}`: {e}") from None
                if not isinstance(data, dict) or not all(
                    isinstance(v, list) for v in data.values()
                ):
                    raise ToolError(f"`{self.path}` must map agent names to lists of replies")
                self._replies = data
            return self._replies

    def reply(self, agent: AgentIR, index: int) -> Json:
        """The agent's `index`-th reply (from 0)."""
        replies = self._load()
        short = agent.name.rsplit(".", 1)[-1]
        script = replies.get(agent.name, replies.get(short))
        if script is None:
            raise ToolError(f"`{self.path}` has no replies for agent `{short}`")
        if index >= len(script):
            raise ToolError(
                f"`{self.path}` has {len(script)} replies for agent `{short}`; "
                f"call {index + 1} has none"
            )
        return script[index]

    def estimate(self, agent: AgentIR) -> Decimal:
        """The most one attempt of this agent may cost (reserved against the budget)."""
        return Decimal(0)

    def cost(self, agent: AgentIR, reply: Json) -> Decimal:
        """What one answered attempt cost."""
        return Decimal(0)
