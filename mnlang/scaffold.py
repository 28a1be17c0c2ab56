"""`mnc init`: the files of a new project that `mnc check`, `mnc test` and `mnc run`
accept at once: the project file, a workflow with its scenarios, and its tools."""

from __future__ import annotations

from pathlib import Path

PROJECT_FILE = """\
# The project file: mnc finds it by walking up from the current folder (docs/deploy.md).
[journal]
db = ".mnc/journal.db"        # a path (relative to this file) or a postgresql:// URL

[modules]
path = []                     # more folders for `.mn` imports and tool code

[models]
default = "scripted"          # who answers agents when neither --models nor MNC_MODELS says
"""

WORKFLOW = """\
# A first workflow: look an order up, then send one confirmation per order.
type Order {
  id: str
  email: str
}

tool find_order(order_id: str) -> Order {
  impl: "tools:find_order"
  retry: { attempts: 3, on: [transient] }
}

effect send_confirmation(order: Order) -> str {
  impl: "tools:send_confirmation"
  key: "confirm:{order.id}"
}

workflow confirm(order_id: str) -> str {
  order = find_order(order_id)
  receipt = send_confirmation(order)
  return receipt
}

scenario confirms_once {
  run: confirm("o-1")
  tools: {
    find_order: [Order { id: "o-1", email: "ana@example.com" }]
    send_confirmation: ["sent-o-1"]
  }
  expect: { status: completed, output: "sent-o-1" }
  expect_calls: [find_order("o-1"), send_confirmation(Order { id: "o-1", email: "ana@example.com" })]
}
"""

TOOLS = '''\
"""The tools of confirm.mn: plain Python functions, called with the declared arguments."""


def find_order(order_id: str) -> dict[str, str]:
    return {"id": order_id, "email": f"{order_id}@example.com"}


def send_confirmation(order: dict[str, str], key: str) -> str:
    # `key` is the effect's idempotency key: pass it on to the receiving system.
    return f"sent-{order['id']}"
'''

GITIGNORE = ".mnc/\n"

FILES = {
    "mnlang.toml": PROJECT_FILE,
    "confirm.mn": WORKFLOW,
    "tools.py": TOOLS,
    ".gitignore": GITIGNORE,
}


def scaffold(folder: Path) -> list[Path]:
    """Write the project's files into `folder`; refuses (FileExistsError) to overwrite any."""
    existing = [folder / name for name in FILES if (folder / name).exists()]
    if existing:
        raise FileExistsError(", ".join(str(p) for p in existing))
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in FILES.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
