"""`mnc lsp` driven over stdio as an editor drives it: a small JSON-RPC client starts the
server in a subprocess, opens documents and asks for diagnostics, hovers, definitions,
completions, symbols and formatting. (`test_lsp_references.py` drives references,
renaming and the debounced checks with the same client.)"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest

from mnlang.checker import check

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 30.0

Message = dict[str, Any]


class Client:
    """The editor's side of the Language Server Protocol, over a subprocess's pipes."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mnlang.cli", "lsp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        self.next_id = 0
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.notifications: list[Message] = []
        self.capabilities: Message = {}
        assert self.process.stdout is not None
        self.reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self.reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        while True:
            length = 0
            while True:
                line = stream.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
            self.inbox.put(json.loads(stream.read(length)))

    def send(self, message: Message) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.process.stdin is not None
        self.process.stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode("ascii") + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: Any) -> Any:
        reply = self._reply(method, params)
        assert "error" not in reply, reply["error"]
        return reply.get("result")

    def request_error(self, method: str, params: Any) -> Message:
        """The error a request is answered with (it must be answered with one)."""
        reply = self._reply(method, params)
        assert "error" in reply, reply
        error: Message = reply["error"]
        return error

    def _reply(self, method: str, params: Any) -> Message:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        return self._wait(lambda m: m.get("id") == self.next_id and "method" not in m)

    def quiet_notifications(self, method: str, seconds: float) -> list[Any]:
        """The params of every notification `method` that arrives within `seconds` (and of
        those received before and not yet consumed); they are consumed."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            if "method" in message and "id" not in message:
                self.notifications.append(message)
        found = [m["params"] for m in self.notifications if m["method"] == method]
        self.notifications = [m for m in self.notifications if m["method"] != method]
        return found

    def notification(self, method: str, where: Callable[[Any], bool] = lambda p: True) -> Any:
        """The params of the first notification `method` (already received or next) that
        satisfies `where`; it is consumed."""
        for i, m in enumerate(self.notifications):
            if m["method"] == method and where(m["params"]):
                return self.notifications.pop(i)["params"]
        return self._wait(lambda m: m.get("method") == method and where(m["params"]))["params"]

    def _wait(self, wanted: Callable[[Message], bool]) -> Message:
        while True:
            message = self.inbox.get(timeout=TIMEOUT)
            if wanted(message):
                return message
            if "method" in message and "id" not in message:
                self.notifications.append(message)

    def close(self) -> None:
        self.request("shutdown", None)
        self.notify("exit", None)
        self.process.wait(timeout=TIMEOUT)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def session(
    capabilities: Message | None = None, options: Message | None = None
) -> Iterator[Client]:
    """A started and initialised server, shut down cleanly at the end."""
    c = Client()
    result = c.request(
        "initialize",
        {
            "processId": None,
            "rootUri": ROOT.as_uri(),
            "capabilities": capabilities or {},
            "initializationOptions": options,
        },
    )
    c.capabilities = result["capabilities"]
    c.notify("initialized", {})
    yield c
    c.close()
    assert c.process.returncode == 0


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with session() as c:
        yield c


def open_document(client: Client, path: Path, text: str | None = None) -> str:
    uri = path.as_uri()
    client.notify(
        "textDocument/didOpen",
        {
            "textDocument": {
                "uri": uri,
                "languageId": "mn",
                "version": 1,
                "text": path.read_text("utf-8") if text is None else text,
            }
        },
    )
    return uri


def diagnostics_of(client: Client, uri: str) -> list[Message]:
    params = client.notification("textDocument/publishDiagnostics", lambda p: p["uri"] == uri)
    items: list[Message] = params["diagnostics"]
    return items


def position(text: str, needle: str, shift: int = 0) -> dict[str, int]:
    """The LSP position (UTF-16) of `needle`'s first character (plus `shift`) in `text`."""
    offset = text.index(needle) + shift
    line = text.count("\n", 0, offset)
    column = offset - (text.rfind("\n", 0, offset) + 1)
    prefix = text[offset - column : offset]
    return {"line": line, "character": len(prefix.encode("utf-16-le")) // 2}


# ---- the tests ------------------------------------------------------------------------


def test_initialize_announces_the_features(client: Client) -> None:
    caps = client.capabilities
    for feature in (
        "hoverProvider",
        "definitionProvider",
        "completionProvider",
        "documentSymbolProvider",
        "documentFormattingProvider",
        "referencesProvider",
        "renameProvider",
        "textDocumentSync",
    ):
        assert caps.get(feature), feature


def test_open_publishes_the_checkers_diagnostics_with_their_ranges(client: Client) -> None:
    path = ROOT / "tests" / "cases" / "durability_effect_no_key.mn"
    uri = open_document(client, path)
    got = diagnostics_of(client, uri)
    expected = check(path).diagnostics
    assert [d["code"] for d in got] == [d.code for d in expected] == ["E301", "E301"]
    for item, diag in zip(got, expected, strict=True):
        span = diag.span
        assert span is not None
        assert item["range"] == {
            "start": {"line": span.line - 1, "character": span.col - 1},
            "end": {"line": span.end_line - 1, "character": span.end_col - 1},
        }
        assert item["severity"] == 1
        assert item["source"] == "mnc"
        assert diag.message in item["message"]
        assert "help: " in item["message"]


def test_change_and_save_publish_again(tmp_path: Path, client: Client) -> None:
    path = tmp_path / "flow.mn"
    broken = 'workflow w() -> int {\n  return "text"\n}\n'
    path.write_text(broken)
    uri = open_document(client, path)
    assert [d["code"] for d in diagnostics_of(client, uri)] == ["E201"]
    client.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [{"text": "workflow w() -> int {\n  return 1\n}\n"}],
        },
    )
    assert diagnostics_of(client, uri) == []
    client.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": 3},
            "contentChanges": [{"text": "workflow w() -> int {\n  return \n"}],
        },
    )
    codes = [d["code"] for d in diagnostics_of(client, uri)]
    assert codes and all(c.startswith("E0") for c in codes)
    client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
    assert diagnostics_of(client, uri)
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert diagnostics_of(client, uri) == []


def test_ranges_count_utf16_code_units(tmp_path: Path, client: Client) -> None:
    path = tmp_path / "emoji.mn"
    text = 'workflow w() -> str {\n  return "\U0001f600 {missing}"\n}\n'
    uri = open_document(client, path, text)
    (item,) = diagnostics_of(client, uri)
    assert item["code"] == "E101"
    assert item["range"]["start"] == position(text, "missing")
    assert item["range"]["start"]["character"] == 14  # the emoji is two UTF-16 units


def test_hover_shows_a_tools_signature_and_retry_policy(client: Client) -> None:
    path = ROOT / "examples" / "refund" / "refund.mn"
    text = path.read_text("utf-8")
    uri = open_document(client, path)
    assert diagnostics_of(client, uri) == []
    doc = {"uri": uri}
    tool = client.request(
        "textDocument/hover",
        {"textDocument": doc, "position": position(text, "fetch_order(order_id)", 2)},
    )
    value = tool["contents"]["value"]
    assert "tool fetch_order(order_id: str) -> Order" in value
    assert "**retry**: 3 attempts" in value
    effect = client.request(
        "textDocument/hover",
        {"textDocument": doc, "position": position(text, "refund_payment(order.id", 1)},
    )
    assert '**key**: `"refund:{order_id}"`, unique across all runs' in effect["contents"]["value"]
    variable = client.request(
        "textDocument/hover", {"textDocument": doc, "position": position(text, "t.confidence")}
    )
    assert variable["contents"]["value"] == "```mn\nvariable t: Triage\n```"


def test_hover_shows_what_the_model_is_told(tmp_path: Path, client: Client) -> None:
    (tmp_path / "tools.py").write_text(
        'def lookup(flight):\n    """The flight\'s status, from the airline."""\n    return ""\n',
        "utf-8",
    )
    path = tmp_path / "desk.mn"
    text = (
        'tool lookup(flight: str "The flight number, e.g. LX8") -> str {\n'
        '  impl: "tools:lookup"\n}\n\n'
        "agent desk(q: str) -> str {\n"
        '  model: "gpt-5.4-mini"\n'
        '  description: "Answers passengers."\n'
        '  prompt: "{q}"\n'
        "  tools: [lookup]\n"
        "  max_turns: 2\n}\n\n"
        "workflow w(q: str) -> str {\n  s = lookup(q)\n  a = desk(s)\n  return a\n}\n"
    )
    uri = open_document(client, path, text)
    assert diagnostics_of(client, uri) == []
    doc = {"uri": uri}
    tool = client.request(
        "textDocument/hover", {"textDocument": doc, "position": position(text, "lookup(q)", 1)}
    )
    assert "The flight's status, from the airline." in tool["contents"]["value"]
    agent = client.request(
        "textDocument/hover", {"textDocument": doc, "position": position(text, "desk(s)", 1)}
    )
    assert "Answers passengers." in agent["contents"]["value"]
    param = client.request(
        "textDocument/hover", {"textDocument": doc, "position": position(text, "flight: str")}
    )
    assert param["contents"]["value"] == (
        "```mn\nparameter flight: str\n```\n\nThe flight number, e.g. LX8"
    )


def test_definition_goes_to_declarations_locals_and_the_standard_library(client: Client) -> None:
    path = ROOT / "examples" / "refund" / "refund.mn"
    text = path.read_text("utf-8")
    uri = open_document(client, path)
    doc = {"uri": uri}
    tool = client.request(
        "textDocument/definition",
        {"textDocument": doc, "position": position(text, "fetch_order(order_id)")},
    )
    assert tool == {
        "uri": uri,
        "range": {
            "start": position(text, "fetch_order(order_id: str)"),
            "end": position(text, "(order_id: str)"),
        },
    }
    local = client.request(
        "textDocument/definition", {"textDocument": doc, "position": position(text, "t.category")}
    )
    assert local["range"]["start"] == position(text, "t = triage")
    policy = client.request(
        "textDocument/definition",
        {"textDocument": doc, "position": position(text, "retry: standard_retry", 8)},
    )
    assert policy["uri"] == (ROOT / "stdlib" / "policies.mn").as_uri()
    assert policy["range"]["start"]["line"] == 6


def test_definition_follows_an_import_to_a_module_beside_the_file(client: Client) -> None:
    path = ROOT / "examples" / "pipeline" / "pipeline.mn"
    text = path.read_text("utf-8")
    uri = open_document(client, path)
    found = client.request(
        "textDocument/definition",
        {"textDocument": {"uri": uri}, "position": position(text, "clean_batch(dataset, batch)")},
    )
    cleaning = path.with_name("cleaning.mn")
    assert found["uri"] == cleaning.as_uri()
    target = cleaning.read_text("utf-8")
    assert found["range"]["start"] == position(target, "clean_batch(dataset: str")


def test_completion_offers_option_keys_error_kinds_types_and_names(
    tmp_path: Path, client: Client
) -> None:
    path = tmp_path / "complete.mn"
    text = (
        "import std.policies { standard_retry }\n"
        "type Order {\n  id: str\n}\n"
        'tool fetch(id: str) -> Order {\n  impl: "tools:fetch"\n  retry: standard_retry\n  \n}\n'
        "workflow w(id: str) -> str {\n  o = fetch(id)\n  return o.id\n}\n"
    )
    uri = open_document(client, path, text)
    assert diagnostics_of(client, uri) == []

    def labels(at: dict[str, int]) -> list[str]:
        result = client.request(
            "textDocument/completion", {"textDocument": {"uri": uri}, "position": at}
        )
        return [item["label"] for item in result["items"]]

    in_tool = position(text, "  \n}\nworkflow", 2)
    assert {"timeout", "retry", "limit", "cost"} <= set(labels(in_tool))
    assert "key" not in labels(in_tool)
    fields = labels(position(text, "o.id", 2))
    assert fields == ["id"]
    param_type = labels(position(text, "str) -> str {"))
    assert {"str", "money", "Order"} <= set(param_type)
    body = labels(position(text, "o = fetch"))
    assert {"fetch", "len", "if", "return", "start", "budget"} <= set(body)


def test_completion_of_retry_values_and_catch_kinds(tmp_path: Path, client: Client) -> None:
    """Typed into documents that never parsed: the names come from the rest of the text."""
    tool = (
        "import std.policies { standard_retry }\n"
        'tool fetch(id: str) -> str {\n  impl: "tools:fetch"\n  retry: \n}\n'
    )
    flow = 'workflow w() -> str {\n  try {\n    log "x"\n  } catch \n  return "y"\n}\n'

    def labels(name: str, text: str, at: dict[str, int]) -> list[str]:
        uri = open_document(client, tmp_path / name, text)
        assert diagnostics_of(client, uri)
        result = client.request(
            "textDocument/completion", {"textDocument": {"uri": uri}, "position": at}
        )
        return [item["label"] for item in result["items"]]

    assert labels("tool.mn", tool, position(tool, "retry: ", 7)) == ["standard_retry"]
    kinds = labels("flow.mn", flow, position(flow, "catch ", 6))
    assert {"timeout", "transient", "any"} <= set(kinds)


def test_document_symbols_outline_the_module(client: Client) -> None:
    path = ROOT / "examples" / "refund" / "refund.mn"
    uri = open_document(client, path)
    result = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    names = [s["name"] for s in result]
    assert names[:3] == ["std.policies", "Category", "Order"]
    assert "refund" in names
    workflow = next(s for s in result if s["name"] == "refund")
    assert [c["name"] for c in workflow["children"]] == ["manager_review"]


def test_formatting_returns_the_formatted_text(tmp_path: Path, client: Client) -> None:
    path = tmp_path / "ugly.mn"
    text = "enum  Size {small,large}\n"
    uri = open_document(client, path, text)
    diagnostics_of(client, uri)
    edits = client.request(
        "textDocument/formatting",
        {"textDocument": {"uri": uri}, "options": {"tabSize": 2, "insertSpaces": True}},
    )
    assert edits == [
        {
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}},
            "newText": "enum Size { small, large }\n",
        }
    ]


def test_keyword_field_names_complete_and_check_clean(tmp_path: Path, client: Client) -> None:
    path = tmp_path / "payload.mn"
    text = (
        "type Envelope {\n  type: str\n  event: str\n}\n"
        "workflow w(e: Envelope) -> json {\n"
        '  return { "kind": e.type, "id": e.event }\n}\n'
    )
    uri = open_document(client, path, text)
    assert diagnostics_of(client, uri) == []
    result = client.request(
        "textDocument/completion",
        {"textDocument": {"uri": uri}, "position": position(text, "e.type", 2)},
    )
    assert [item["label"] for item in result["items"]] == ["type", "event"]  # declared order


def test_run_fields_complete_after_run_dot(tmp_path: Path, client: Client) -> None:
    path = tmp_path / "meta.mn"
    text = "workflow w() -> str {\n  return run.id\n}\n"
    uri = open_document(client, path, text)
    assert diagnostics_of(client, uri) == []
    result = client.request(
        "textDocument/completion",
        {"textDocument": {"uri": uri}, "position": position(text, "run.id", 4)},
    )
    labels = [item["label"] for item in result["items"]]
    assert labels == ["id", "workflow", "parent", "started_at", "scheduled_at"]


def test_a_select_arm_is_known_to_hover_definition_and_symbols(
    tmp_path: Path, client: Client
) -> None:
    path = tmp_path / "chat.mn"
    text = (
        "type Msg {\n  text: str\n}\n\nevent message -> Msg\n\n"
        "workflow chat(conv: str) -> str {\n  select {\n"
        "    wait message for conv as m {\n      return m.text\n    }\n"
        '    checkpoint keep_open {\n      ask: "Keep {conv}?"\n    } as d {\n'
        '      return "{d.choice}"\n    }\n    after 1h {\n      return "idle"\n    }\n'
        "  }\n}\n"
    )
    uri = open_document(client, path, text)
    assert diagnostics_of(client, uri) == []
    doc = {"uri": uri}
    hover = client.request(
        "textDocument/hover", {"textDocument": doc, "position": position(text, "m {")}
    )
    assert hover["contents"]["value"] == "```mn\nvariable m: Msg\n```"
    event = client.request(
        "textDocument/hover", {"textDocument": doc, "position": position(text, "message for")}
    )
    assert "message" in event["contents"]["value"]
    found = client.request(
        "textDocument/definition", {"textDocument": doc, "position": position(text, "m.text")}
    )
    assert found["range"]["start"] == position(text, "m {")
    result = client.request("textDocument/documentSymbol", {"textDocument": doc})
    workflow = next(s for s in result if s["name"] == "chat")
    assert [c["name"] for c in workflow["children"]] == ["keep_open"]
