"""The project file, `mnlang.toml`: one team's settings, found by walking up from the
current folder (the first folder that holds one is the project's root).

```toml
[journal]
db = ".mnc/journal.db"            # or "postgresql://mnc@db/mnc"

[modules]
path = ["lib", "shared"]          # more folders for `.mn` imports and tool code

[models]
default = "scripted"              # what `--models` is when neither it nor MNC_MODELS is given
prices = "prices.json"            # merged over the shipped price table

[secrets]
dir = "secrets"                   # where `file:NAME` secrets are read

[providers.local]                 # an OpenAI-compatible server agents name: `provider: local`
base_url = "http://127.0.0.1:8080/v1"
api_key_env = "LOCAL_LLM_KEY"     # the variable holding its key (never the key itself)

[workers]
changed_code = "allow"            # or "pin": a worker claims a run only with its code's hash

[mcp.tickets]                     # where this deployment reaches a locked MCP server
url = "https://tickets.internal/mcp"
```

Relative paths are relative to the project's root. The environment wins over the file
(`MNC_DB`, `MNC_PATH`, `MNC_MODELS`, `MNC_PRICES`, `MNC_SECRETS_DIR`, `MNC_PROVIDERS`,
`MNC_CHANGED_CODE`, `MNC_MCP_SERVERS`, and `MNC_OPENAI_*` over `[providers.openai]`), and a command's option
over both: `apply_defaults` fills in only what the environment leaves unset.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from mnlang.mcp.config import Reach
    from mnlang.outbox.config import Inbound, Webhook

FILE_NAME = "mnlang.toml"
PROVIDER_KEYS = (
    "kind",
    "base_url",
    "api_key_env",
    "model",
    "timeout",
    "retries",
    "max_retry_wait",
    "response_format",
    "max_tokens_field",
)
"""What a `[providers.NAME]` table of `kind = "openai"` (an OpenAI-compatible server, the
default) may set (`mnlang.models.openai.OpenAIConfig.from_table`)."""
ANTHROPIC_PROVIDER_KEYS = ("kind", "base_url", "api_key_env", "model", "timeout")
"""What a table of `kind = "anthropic"` (a Messages API endpoint) may set
(`mnlang.models.anthropic.AnthropicConfig.from_table`)."""
PROVIDER_KINDS = {"openai": PROVIDER_KEYS, "anthropic": ANTHROPIC_PROVIDER_KEYS}


def provider_kind(name: str, table: Mapping[str, Any]) -> str:
    """A table's `kind`: as written, else the built-in provider's own (`anthropic` for
    `[providers.anthropic]`), else `openai`."""
    return str(table.get("kind") or ("anthropic" if name == "anthropic" else "openai"))


class ProjectError(Exception):
    def __init__(self, message: str, *, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


class Project(msgspec.Struct, frozen=True):
    root: Path
    journal: str | None = None
    module_path: tuple[Path, ...] = ()
    models: str | None = None
    prices: Path | None = None
    secrets_dir: Path | None = None
    providers: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    changed_code: str | None = None
    webhooks: dict[str, Webhook] = msgspec.field(default_factory=dict)
    """`[webhooks.NAME]`: notifications out of the journal outbox (`mnlang.outbox`)."""
    inbound: dict[str, Inbound] = msgspec.field(default_factory=dict)
    """`[inbound.NAME]`: webhooks in, turned into signals (`mnlang.server.webhooks`)."""
    mcp: dict[str, Reach] = msgspec.field(default_factory=dict)
    """`[mcp.NAME]`: where this deployment reaches a locked MCP server (`mnlang.mcp.config`)."""

    @property
    def file(self) -> Path:
        return self.root / FILE_NAME


def find_file(start: Path | None = None) -> Path | None:
    """The nearest `mnlang.toml` at or above `start` (the current folder by default)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def find_project(start: Path | None = None) -> Project | None:
    """The project of `start` (the current folder), or None outside any project."""
    path = find_file(start)
    return load(path) if path is not None else None


def load(path: Path) -> Project:
    import tomllib  # here: only a folder with a project file pays for it

    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ProjectError(
            f"cannot read the project file {path}: {e}",
            help="fix the file, or remove it to work without a project",
        ) from None
    root = path.parent
    reader = _Reader(path, data)
    journal = reader.text("journal", "db")
    if journal is not None and "://" not in journal:
        journal = str(root / journal)
    folders = reader.texts("modules", "path")
    prices = reader.text("models", "prices")
    secrets = reader.text("secrets", "dir")
    providers = reader.providers()
    changed_code = reader.text("workers", "changed_code")
    if changed_code not in (None, "allow", "pin"):
        raise reader.wrong("workers.changed_code", '"allow" or "pin"')
    from mnlang.outbox.config import ConfigError, inbound_of, webhooks_of

    try:
        webhooks = webhooks_of(data, str(path))
        inbound = inbound_of(data, str(path))
    except ConfigError as e:
        raise ProjectError(e.message, help=e.help) from None
    from mnlang.mcp import config as mcp_config

    try:
        mcp = mcp_config.servers_of(data, text, str(path))
    except mcp_config.ConfigError as e:
        raise ProjectError(e.message, help=e.help) from None
    return Project(
        root=root,
        journal=journal,
        module_path=tuple(root / f for f in folders),
        models=reader.text("models", "default"),
        prices=root / prices if prices is not None else None,
        secrets_dir=root / secrets if secrets is not None else None,
        providers=providers,
        changed_code=changed_code,
        webhooks=webhooks,
        inbound=inbound,
        mcp=mcp,
    )


class _Reader(msgspec.Struct, frozen=True):
    path: Path
    data: dict[str, Any]

    def _value(self, table: str, key: str) -> Any:
        section = self.data.get(table, {})
        if not isinstance(section, dict):
            raise self.wrong(table, "a table")
        return section.get(key)

    def text(self, table: str, key: str) -> str | None:
        value = self._value(table, key)
        if value is not None and not isinstance(value, str):
            raise self.wrong(f"{table}.{key}", "a string")
        return value

    def texts(self, table: str, key: str) -> list[str]:
        value = self._value(table, key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.wrong(f"{table}.{key}", "a list of strings")
        return value

    def providers(self) -> dict[str, dict[str, Any]]:
        """The `[providers.NAME]` tables, checked here so that a mistake is named with the
        file instead of failing each model request of each run."""
        providers = self.data.get("providers", {})
        if not isinstance(providers, dict) or not all(
            isinstance(v, dict) for v in providers.values()
        ):
            raise self.wrong("providers", "a table of tables (`[providers.NAME]`)")
        for name, table in providers.items():
            where = f"providers.{name}"
            if name == "scripted":
                raise self.wrong(where, "absent: `scripted` is not a server to configure")
            if "api_key" in table:
                raise ProjectError(
                    f"{self.path}: `{where}.api_key`: a key is never written in the project file",
                    help=f"put it in an environment variable and name it: "
                    f'`api_key_env = "{name.upper()}_API_KEY"`',
                )
            kind = provider_kind(name, table)
            if kind not in PROVIDER_KINDS:
                raise self.wrong(
                    f"{where}.kind",
                    "`openai` (an OpenAI-compatible server) or `anthropic` (the Messages API)",
                )
            if name in PROVIDER_KINDS and kind != name:
                raise self.wrong(f"{where}.kind", f"`{name}`: the built-in `{name}` provider")
            keys = PROVIDER_KINDS[kind]
            for key, value in table.items():
                if key not in keys:
                    raise self.wrong(
                        f"{where}.{key}", f'one of {", ".join(keys)} (for `kind = "{kind}"`)'
                    )
                if not isinstance(value, str | int | float) or isinstance(value, bool):
                    raise self.wrong(f"{where}.{key}", "a string or a number")
            if kind == "openai" and name != "openai" and "base_url" not in table:
                raise self.wrong(f"{where}.base_url", "set: the server's address")
        return providers

    def wrong(self, name: str, expected: str) -> ProjectError:
        return ProjectError(
            f"{self.path}: `{name}` must be {expected}",
            help=f"see the project file's format in docs/deploy.md ({FILE_NAME})",
        )


def apply_defaults(environ: MutableMapping[str, str], project: Project) -> None:
    """Fill in the settings the environment leaves unset from the project file."""
    defaults = {
        "MNC_MODELS": project.models,
        "MNC_PRICES": str(project.prices) if project.prices else None,
        "MNC_SECRETS_DIR": str(project.secrets_dir) if project.secrets_dir else None,
        "MNC_PROVIDERS": json.dumps(project.providers) if project.providers else None,
        "MNC_CHANGED_CODE": project.changed_code,
        "MNC_MCP_SERVERS": (
            json.dumps({name: r.to_json() for name, r in project.mcp.items()})
            if project.mcp
            else None
        ),
    }
    for name, value in defaults.items():
        if value is not None and not environ.get(name):
            environ[name] = value
    if project.module_path or project.root:
        folders = [str(project.root), *(str(f) for f in project.module_path)]
        given = [p for p in environ.get("MNC_PATH", "").split(os.pathsep) if p]
        environ["MNC_PATH"] = os.pathsep.join(dict.fromkeys([*given, *folders]))
