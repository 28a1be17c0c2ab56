"""The `[webhooks.NAME]` and `[inbound.NAME]` tables of mnlang.toml, checked when the
project file is read so that a mistake is named with the file, not found at delivery.

```toml
[webhooks.ops]                        # notifications out (`mnlang.outbox.delivery`)
url = "https://ops.example.com/mnc"
events = ["run.ended", "checkpoint.opened"]
workflows = ["Refund"]                # optional: only runs of these workflows
secret_env = "OPS_WEBHOOK_SECRET"     # the variable holding the signing secret
max_attempts = 15                     # optional; then the delivery is `failed`
backoff = 2.0                         # optional: seconds before the 2nd attempt, doubled
max_backoff = 3600.0                  # optional: the cap of the delay between attempts

[inbound.stripe]                      # webhooks in (`mnlang.server.webhooks`)
path = "/hooks/stripe"
event = "payment_settled"
key = "$.data.object.metadata.order_id"
payload = "$.data.object"             # optional: the signal's payload (default: the body)
verify = "stripe"                     # or "github"
secret_env = "STRIPE_WEBHOOK_SECRET"
```

Secrets are never written in the file: only the name of the variable that holds one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Final, Literal

from mnlang.outbox import EVENT_TYPES

HOOKS_PREFIX: Final = "/hooks/"
"""Where inbound webhook paths live: outside the token-checked API, verified by HMAC."""

VERIFY_STYLES: Final = ("github", "stripe")
_WEBHOOK_KEYS = (
    "url",
    "events",
    "workflows",
    "secret_env",
    "max_attempts",
    "backoff",
    "max_backoff",
    "timeout",
)
_INBOUND_KEYS = ("path", "event", "key", "run", "id", "payload", "verify", "secret_env")


class ConfigError(Exception):
    def __init__(self, message: str, *, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


@dataclass(frozen=True, slots=True)
class Webhook:
    name: str
    url: str
    events: tuple[str, ...]
    secret_env: str | None = None
    workflows: tuple[str, ...] | None = None
    max_attempts: int = 15
    backoff: float = 2.0
    max_backoff: float = 3600.0
    timeout: float = 10.0

    def wants(self, type_: str, workflow: str) -> bool:
        return type_ in self.events and (self.workflows is None or workflow in self.workflows)

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt: doubling, capped."""
        return float(min(self.max_backoff, self.backoff * 2 ** min(attempts - 1, 60)))

    def secret(self) -> bytes | None:
        if self.secret_env is None:
            return None
        value = os.environ.get(self.secret_env)
        return value.encode() if value else None


@dataclass(frozen=True, slots=True)
class Inbound:
    name: str
    path: str
    event: str
    verify: Literal["github", "stripe"]
    secret_env: str
    key: str | None = None
    """A JSON path (`$.a.b[0].c`) to the correlation key in the body."""
    run: str | None = None
    """A JSON path to the run id in the body; without one, the runs waiting for the
    event with the key get it."""
    id: str | None = None
    """Where the delivery id is: a JSON path into the body, or a header name; by default
    `X-GitHub-Delivery` (github) or `$.id` (stripe)."""
    payload: str | None = None
    """A JSON path to the signal's payload in the body; without one, the whole body."""

    @property
    def id_source(self) -> str:
        if self.id is not None:
            return self.id
        return "X-GitHub-Delivery" if self.verify == "github" else "$.id"


def webhooks_of(data: Any, where: str) -> dict[str, Webhook]:
    tables = _tables(data, "webhooks", where)
    out: dict[str, Webhook] = {}
    for name, table in tables.items():
        at = f"{where}: `webhooks.{name}"
        _known_keys(table, _WEBHOOK_KEYS, at)
        url = table.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _wrong(f"{at}.url`", "an http:// or https:// URL")
        events = _strings(table, "events", at)
        if not events or any(e not in EVENT_TYPES for e in events):
            raise _wrong(f"{at}.events`", f"a list of {', '.join(EVENT_TYPES)}")
        workflows = _strings(table, "workflows", at) if "workflows" in table else None
        numbers = {
            k: table[k] for k in ("max_attempts", "backoff", "max_backoff", "timeout") if k in table
        }
        for key, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise _wrong(f"{at}.{key}`", "a positive number")
        if "max_attempts" in numbers and not isinstance(numbers["max_attempts"], int):
            raise _wrong(f"{at}.max_attempts`", "a positive integer")
        out[name] = Webhook(
            name=name,
            url=url,
            events=tuple(events),
            secret_env=_secret_env(table, at, required=False),
            workflows=tuple(workflows) if workflows is not None else None,
            **numbers,
        )
    return out


def inbound_of(data: Any, where: str) -> dict[str, Inbound]:
    tables = _tables(data, "inbound", where)
    out: dict[str, Inbound] = {}
    paths: set[str] = set()
    for name, table in tables.items():
        at = f"{where}: `inbound.{name}"
        _known_keys(table, _INBOUND_KEYS, at)
        path = table.get("path")
        if not isinstance(path, str) or not path.startswith(HOOKS_PREFIX) or len(path) <= 7:
            raise _wrong(f"{at}.path`", f"a path under {HOOKS_PREFIX} (e.g. /hooks/{name})")
        if path in paths:
            raise _wrong(f"{at}.path`", "a path no other `[inbound]` table has")
        paths.add(path)
        event = table.get("event")
        if not isinstance(event, str) or not event:
            raise _wrong(f"{at}.event`", "the name of the event the runs wait for")
        verify = table.get("verify")
        if verify not in VERIFY_STYLES:
            raise _wrong(f"{at}.verify`", '"github" or "stripe"')
        for key in ("key", "run", "payload"):
            value = table.get(key)
            if value is not None and (not isinstance(value, str) or not value.startswith("$")):
                raise _wrong(f"{at}.{key}`", "a JSON path such as `$.data.object.id`")
        if table.get("key") is None and table.get("run") is None:
            raise _wrong(f"{at}`", "given `key` or `run` (how to find the run)")
        id_source = table.get("id")
        if id_source is not None and (not isinstance(id_source, str) or not id_source):
            raise _wrong(f"{at}.id`", "a JSON path or a header name")
        secret_env = _secret_env(table, at, required=True)
        assert secret_env is not None
        out[name] = Inbound(
            name=name,
            path=path,
            event=event,
            verify=verify,
            secret_env=secret_env,
            key=table.get("key"),
            run=table.get("run"),
            id=id_source,
            payload=table.get("payload"),
        )
    return out


def _tables(data: Any, section: str, where: str) -> dict[str, dict[str, Any]]:
    tables = data.get(section, {})
    if not isinstance(tables, dict) or not all(isinstance(v, dict) for v in tables.values()):
        raise _wrong(f"{where}: `{section}`", f"a table of tables (`[{section}.NAME]`)")
    return tables


def _known_keys(table: dict[str, Any], known: tuple[str, ...], at: str) -> None:
    if "secret" in table:
        raise ConfigError(
            f"{at}.secret`: a secret is never written in the project file",
            help='put it in an environment variable and name it: `secret_env = "NAME"`',
        )
    for key in table:
        if key not in known:
            raise _wrong(f"{at}.{key}`", f"one of {', '.join(known)}")


def _strings(table: dict[str, Any], key: str, at: str) -> list[str]:
    value = table.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _wrong(f"{at}.{key}`", "a list of strings")
    return value


def _secret_env(table: dict[str, Any], at: str, *, required: bool) -> str | None:
    value = table.get("secret_env")
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise _wrong(f"{at}.secret_env`", "the name of the variable holding the secret")
    return value


def _wrong(name: str, expected: str) -> ConfigError:
    return ConfigError(
        f"{name} must be {expected}",
        help="see the project file's format in docs/webhooks.md",
    )
