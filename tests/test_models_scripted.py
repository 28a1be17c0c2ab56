"""The `scripted` provider, the choice of providers per run and per agent, and reply validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mnlang.errors import TIMEOUT, TOOL_ERROR
from mnlang.ir.base import RetryIR, SpanIR, TypeIR
from mnlang.ir.expr import Lit, Template
from mnlang.ir.model import AgentIR, EnumTypeIR, FieldIR, RecordTypeIR
from mnlang.models.base import ModelCallError, ModelRequest
from mnlang.models.prices import load_prices
from mnlang.models.scripted import ScriptedProvider, ScriptError, check_script, load_script
from mnlang.models.setup import ModelSetup, ModelSpecError
from mnlang.models.validation import ReplyInvalid, ReplyValidator

SPAN = SpanIR(file="x.mn", line=1, col=1, end_line=1, end_col=1)


def request(
    agent: str = "triage", call: int = 0, prompt: str = "hello", n: int = 0
) -> ModelRequest:
    return ModelRequest(
        agent=agent,
        model="gpt-5.4-mini",
        messages=[{"role": "user", "content": prompt}],
        output_schema={},
        call_number=call,
        request_number=n,
    )


def agent(provider: str | None = None, model: str = "gpt-5.4-mini") -> AgentIR:
    return AgentIR(
        name="triage",
        params=[],
        returns=TypeIR(kind="str"),
        model=model,
        provider=provider,
        prompt=Template(parts=["hi"]),
        retry=RetryIR(),
        output_schema={},
        span=SPAN,
    )


def test_replies_in_call_order() -> None:
    p = ScriptedProvider({"triage": [{"a": 1}, "two"]}, "r.json")
    assert json.loads(p.complete(request(call=0)).text or "") == {"a": 1}
    assert json.loads(p.complete(request(call=1)).text or "") == "two"
    with pytest.raises(ModelCallError) as caught:
        p.complete(request(call=2))
    assert caught.value.kind == TOOL_ERROR
    assert "2 replies for agent `triage` in call order; call 3 has none" in caught.value.message


def test_qualified_names_and_unknown_agents() -> None:
    p = ScriptedProvider({"triage": ["x"]}, "r.json")
    assert p.complete(request(agent="shop.triage")).text == '"x"'
    with pytest.raises(ModelCallError, match="no replies for agent `critic`"):
        p.complete(request(agent="critic"))


def test_replies_matched_on_the_prompt_then_by_request_of_the_call() -> None:
    script = {
        "read": [
            {"$match": "Study A", "$text": "not json"},
            {"$match": "Study A", "$reply": {"ok": "a"}},
            {"$match": "Study B", "$reply": {"ok": "b"}},
        ]
    }
    p = ScriptedProvider(check_script(script, "r.json"), "r.json")
    assert p.complete(request("read", call=5, prompt="about Study B")).text == '{"ok": "b"}'
    assert p.complete(request("read", prompt="Study A!", n=0)).text == "not json"
    assert p.complete(request("read", prompt="Study A!", n=1)).text == '{"ok": "a"}'
    with pytest.raises(ModelCallError, match="request 3 of this call has none"):
        p.complete(request("read", prompt="Study A!", n=2))
    with pytest.raises(ModelCallError, match="call 1 has none"):
        p.complete(request("read", prompt="Study C"))


def test_tool_calls_usage_and_errors() -> None:
    script = {
        "bot": [
            {
                "$tool_calls": [{"name": "search", "arguments": {"q": "x"}}],
                "$usage": {"input_tokens": 7},
            },
            {"$error": "timeout"},
            {"$error": {"kind": "transient", "message": "flaky"}},
        ]
    }
    p = ScriptedProvider(check_script(script, "r.json"), "r.json")
    reply = p.complete(request("bot", call=0))
    assert reply.text is None and reply.usage is not None and reply.usage.input_tokens == 7
    [call] = reply.tool_calls
    assert (call.name, json.loads(call.arguments)) == ("search", {"q": "x"})
    with pytest.raises(ModelCallError) as caught:
        p.complete(request("bot", call=1))
    assert caught.value.kind == TIMEOUT
    with pytest.raises(ModelCallError, match="flaky"):
        p.complete(request("bot", call=2))


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        ([], "must map agent names to lists"),
        ({"a": [{"$reply": 1, "$text": "x"}]}, "exactly one of"),
        ({"a": [{"$replay": 1}]}, "unknown key `$replay`"),
        ({"a": [{"$error": "oops"}]}, "takes an error kind"),
        ({"a": [{"$tool_calls": [{"arguments": {}}]}]}, "`$tool_calls` takes"),
        ({"a": [{"$match": 3, "$reply": 1}]}, "`$match` takes a string"),
    ],
)
def test_bad_scripts_are_explained(script: Any, problem: str) -> None:
    with pytest.raises(ScriptError) as caught:
        check_script(script, "r.json")
    assert problem in str(caught.value)


def test_load_script_errors(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="no replies file"):
        load_script(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{", "utf-8")
    with pytest.raises(ScriptError, match="is not JSON"):
        load_script(bad)


# --- choosing providers -------------------------------------------------------------------


def test_default_setup_never_uses_replies_beside_the_program(tmp_path: Path) -> None:
    assert ModelSetup.from_spec(None, tmp_path, {}).spec == "openai"
    (tmp_path / "replies.json").write_text('{"triage": ["hi"]}', "utf-8")
    setup = ModelSetup.from_spec(None, tmp_path, {})
    assert setup.spec == "openai"
    assert setup.provider_for(agent(provider="openai")).name == "openai"
    asked = ModelSetup.from_spec(None, tmp_path, {"MNC_MODELS": "scripted"})
    assert asked.spec == f"scripted:{tmp_path / 'replies.json'}"
    assert asked.provider_for(agent(provider="openai")).name == "scripted"
    other = tmp_path / "other.json"
    assert ModelSetup.from_spec(None, tmp_path, {"MNC_REPLIES": str(other)}).spec.endswith(
        "other.json"
    )
    assert ModelSetup.from_spec(None, tmp_path, {"MNC_MODELS": "openai"}).spec == "openai"


def test_openai_spec_lets_each_agent_pick_its_provider(tmp_path: Path) -> None:
    (tmp_path / "replies.json").write_text('{"triage": ["hi"]}', "utf-8")
    setup = ModelSetup.from_spec("openai", tmp_path, {})
    assert setup.provider_for(agent()).name == "openai"
    scripted = setup.provider_for(agent(provider="scripted"))
    assert scripted.name == "scripted"
    assert scripted.complete(request()).text == '"hi"'
    unknown = setup.provider_for(agent(provider="bedrock"))  # no built-in, table or plugin
    with pytest.raises(ModelCallError, match="unknown provider `bedrock`"):
        unknown.complete(request())


def test_scripted_spec_and_bad_specs(tmp_path: Path) -> None:
    assert ModelSetup.from_spec("scripted", tmp_path, {}).spec.endswith("replies.json")
    given = ModelSetup.from_spec(f"scripted:{tmp_path / 'x.json'}", tmp_path, {})
    assert given.spec == f"scripted:{tmp_path / 'x.json'}"
    with pytest.raises(ModelCallError, match="no replies file"):
        given.provider_for(agent()).complete(request())
    with pytest.raises(ModelSpecError, match="unknown model setup `anthropic`"):
        ModelSetup.from_spec("anthropic", tmp_path, {})


def test_prices_follow_the_provider(tmp_path: Path) -> None:
    prices = load_prices({})
    scripted = ModelSetup.from_spec("scripted", tmp_path, {})
    assert scripted.price_entry(agent(), prices) == "scripted"
    real = ModelSetup.from_spec("openai", tmp_path, {})
    assert real.price_entry(agent(model="gpt-5.4"), prices) == "gpt-5.4"


# --- validating replies -------------------------------------------------------------------


def _types() -> dict[str, Any]:
    return {
        "Kind": EnumTypeIR(name="Kind", members=["a", "b"], span=SPAN),
        "Item": RecordTypeIR(
            name="Item",
            fields=[
                FieldIR(name="kind", type=TypeIR(kind="enum", name="Kind")),
                FieldIR(name="price", type=TypeIR(kind="money")),
                FieldIR(
                    name="tags",
                    type=TypeIR(kind="list", args=[TypeIR(kind="str")]),
                    default=Lit(type="null"),
                ),
                FieldIR(
                    name="next",
                    type=TypeIR(kind="optional", args=[TypeIR(kind="record", name="Item")]),
                ),
            ],
            span=SPAN,
        ),
    }


def test_validation_of_records_enums_money_and_recursion() -> None:
    v = ReplyValidator(TypeIR(kind="record", name="Item"), _types())
    data = v.validate(
        '{"kind": "a", "price": "1.50", "tags": null, "next": {"kind": "b", "price": 2}}'
    )
    assert data == {"kind": "a", "price": "1.50", "next": {"kind": "b", "price": 2}}
    with pytest.raises(ReplyInvalid) as caught:
        v.validate('{"kind": "c", "price": 1.5, "extra": 1}')
    text = str(caught.value)
    assert "`kind`: input should be 'a' or 'b'" in text
    assert '`price`: money must be a decimal string such as "12.50"' in text
    assert "`extra`: not a field of this type" in text


def test_validation_of_plain_text_code_fences_and_strictness() -> None:
    assert ReplyValidator(TypeIR(kind="str"), {}).validate("just words") == "just words"
    ints = ReplyValidator(TypeIR(kind="list", args=[TypeIR(kind="int")]), {})
    assert ints.validate("```json\n[1, 2]\n```") == [1, 2]
    with pytest.raises(ReplyInvalid, match=r"`\[0\]`: input should be a valid integer"):
        ints.validate('["1"]')
    with pytest.raises(ReplyInvalid, match="not JSON"):
        ints.validate("one, two")
