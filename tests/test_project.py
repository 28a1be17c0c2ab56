"""Projects: `mnlang.toml` found by walking up, the journal's place, read commands that
never create a journal, and `mnc init` giving a project every command accepts at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnlang.project import ProjectError, find_project, load


def mnc(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    return subprocess.run(
        [sys.executable, "-m", "mnlang.cli", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_init_gives_a_project_that_check_test_and_run_accept(tmp_path: Path) -> None:
    made = mnc(tmp_path, "init", "shop")
    assert made.returncode == 0, made.stderr
    shop = tmp_path / "shop"
    assert (shop / "mnlang.toml").is_file()
    assert mnc(shop, "check", "confirm.mn").returncode == 0
    tested = mnc(shop, "test", ".")
    assert tested.returncode == 0 and "1 passed" in tested.stdout, tested.stdout
    ran = mnc(shop, "run", "confirm.mn", "--input", '{"order_id": "o-7"}', "--id", "c7")
    assert ran.returncode == 0 and "sent-o-7" in ran.stdout, ran.stderr
    assert (shop / ".mnc" / "journal.db").is_file()
    # From a folder below the project, the project's journal is the one read.
    below = shop / "deep" / "er"
    below.mkdir(parents=True)
    shown = mnc(below, "show", "c7", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["run"]["status"] == "completed"
    assert not (below / ".mnc").exists()
    again = mnc(tmp_path, "init", "shop")
    assert again.returncode == 2 and "would overwrite" in again.stderr


@pytest.mark.parametrize(
    "command",
    [["runs"], ["show", "r1"], ["log", "r1"], ["workers"], ["metrics"], ["cancel", "r1"]],
)
def test_read_commands_create_no_journal_and_say_where_they_looked(
    tmp_path: Path, command: list[str]
) -> None:
    done = mnc(tmp_path, *command)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no journal at .mnc/journal.db" in done.stderr
    assert "$MNC_DB: not set" in done.stderr and "--db: not set" in done.stderr
    assert not (tmp_path / ".mnc").exists()
    named = mnc(tmp_path, *command, MNC_DB=str(tmp_path / "elsewhere.db"))
    assert named.returncode == 2 and "elsewhere.db" in named.stderr
    assert not (tmp_path / "elsewhere.db").exists()


def test_the_journal_is_db_then_env_then_project_then_default(tmp_path: Path) -> None:
    (tmp_path / "mnlang.toml").write_text('[journal]\ndb = "state/j.db"\n')
    (tmp_path / "f.mn").write_text('workflow w() -> str {\n  return "ok"\n}\n')
    assert mnc(tmp_path, "run", "f.mn", "--id", "a").returncode == 0
    assert (tmp_path / "state" / "j.db").is_file()
    assert mnc(tmp_path, "run", "f.mn", "--id", "b", MNC_DB="env.db").returncode == 0
    assert (tmp_path / "env.db").is_file()
    assert mnc(tmp_path, "run", "f.mn", "--id", "c", "--db", "opt.db").returncode == 0
    assert (tmp_path / "opt.db").is_file()
    listed = mnc(tmp_path, "runs", "--json")
    assert [r["run_id"] for r in json.loads(listed.stdout)] == ["a"]


def test_a_bad_project_file_is_an_error_with_help(tmp_path: Path) -> None:
    (tmp_path / "mnlang.toml").write_text("[modules]\npath = 3\n")
    with pytest.raises(ProjectError, match=r"modules\.path"):
        load(tmp_path / "mnlang.toml")
    done = mnc(tmp_path, "runs")
    assert done.returncode == 1 and "modules.path" in done.stderr and "Traceback" not in done.stderr


def test_the_project_is_found_walking_up_and_sets_defaults(tmp_path: Path) -> None:
    (tmp_path / "mnlang.toml").write_text(
        '[journal]\ndb = "postgresql://mnc@db/mnc"\n[modules]\npath = ["lib"]\n'
        '[models]\ndefault = "scripted"\nprices = "p.json"\n[secrets]\ndir = "s"\n'
        '[providers.local]\nbase_url = "http://127.0.0.1:1/v1"\n'
    )
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    project = find_project(inner)
    assert project is not None and project.root == tmp_path.resolve()
    assert project.journal == "postgresql://mnc@db/mnc"
    assert project.module_path == (tmp_path.resolve() / "lib",)
    assert project.providers == {"local": {"base_url": "http://127.0.0.1:1/v1"}}
    from mnlang.project import apply_defaults

    environ = {"MNC_MODELS": "openai"}
    apply_defaults(environ, project)
    assert environ["MNC_MODELS"] == "openai"  # the environment wins
    assert environ["MNC_PRICES"] == str(tmp_path.resolve() / "p.json")
    assert environ["MNC_SECRETS_DIR"] == str(tmp_path.resolve() / "s")


@pytest.mark.parametrize(
    "argv",
    [
        ["get", "r1", "x"],
        ["resume", "r1"],
        ["replay", "r1"],
        ["replay", "--all"],
        ["export", "traces"],
        ["db", "check"],
    ],
)
def test_read_commands_added_this_round_create_no_journal(tmp_path: Path, argv: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    done = subprocess.run(
        [sys.executable, "-m", "mnlang.cli", *argv], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no journal at" in done.stderr
    assert list(tmp_path.iterdir()) == [], "a refused command created something"


AGENT_FLOW = """
agent greet(name: str) -> str {
  model: "any-model"
  provider: "local"
  prompt: "Greet {name}."
}

workflow hello(name: str) -> str {
  said = greet(name)
  return said
}
"""


def test_a_projects_provider_answers_the_agents_that_name_it(tmp_path: Path) -> None:
    from tests.chat_server import chat_server

    (tmp_path / "flow.mn").write_text(AGENT_FLOW)
    with chat_server() as server:
        (tmp_path / "mnlang.toml").write_text(
            f'[providers.local]\nbase_url = "{server.base_url}"\napi_key_env = "LOCAL_KEY"\n'
            'model = "served-model"\nresponse_format = "json_object"\n'
        )
        refused = mnc(tmp_path, "run", "flow.mn", "--input", '{"name": "Ada"}', "--id", "r0")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "`LOCAL_KEY`, which is not set" in refused.stderr
        assert not server.requests and not (tmp_path / ".mnc").exists()
        server.chat('"Hello, Ada"')
        ran = mnc(
            tmp_path, "run", "flow.mn", "--input", '{"name": "Ada"}', "--id", "r1",
            LOCAL_KEY="sk-local-0123456789",
        )  # fmt: skip
        assert ran.returncode == 0 and "Hello, Ada" in ran.stdout, ran.stderr
    (request,) = server.requests
    assert request.headers["Authorization"] == "Bearer sk-local-0123456789"
    assert request.body["model"] == "served-model"
    assert request.body["response_format"] == {"type": "json_object"}
    log = mnc(tmp_path, "log", "r1", "--json")
    assert "sk-local-0123456789" not in log.stdout
    assert '"provider": "local"' in log.stdout.replace('":"', '": "'), log.stdout[:2000]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[providers.local]\nbase_url = "http://x/v1"\napi_key = "sk-1"\n', "never written"),
        (
            '[providers.local]\nbase_url = "http://x/v1"\nbase_ulr = "y"\n',
            "providers.local.base_ulr",
        ),
        ('[providers.local]\nmodel = "m"\n', "providers.local.base_url"),
        ('[providers.local]\nbase_url = "http://x/v1"\nkind = "grpc"\n', "providers.local.kind"),
        ('[providers.scripted]\nbase_url = "http://x/v1"\n', "providers.scripted"),
        ('[providers.local]\nbase_url = "http://x/v1"\ntimeout = true\n', "a string or a number"),
    ],
)
def test_a_wrong_provider_table_is_named_with_the_file(
    tmp_path: Path, table: str, message: str
) -> None:
    (tmp_path / "mnlang.toml").write_text(table)
    with pytest.raises(ProjectError, match=message):
        load(tmp_path / "mnlang.toml")
    done = mnc(tmp_path, "check", "--help")
    assert "Traceback" not in done.stderr


def test_the_provider_tables_of_the_docs_are_valid(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "models.md").read_text()
    block = text.split("### More servers", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "mnlang.toml").write_text(block)
    project = load(tmp_path / "mnlang.toml")
    assert sorted(project.providers) == ["gateway", "local", "openai"]
    from mnlang.models.setup import ModelSetup
    from mnlang.project import apply_defaults

    environ: dict[str, str] = {"TEAM_OPENAI_KEY": "sk-team", "MNC_OPENAI_TIMEOUT": "5"}
    apply_defaults(environ, project)
    setup = ModelSetup.from_spec("openai", tmp_path, environ)
    assert {"gateway", "local", "openai", "scripted"} <= set(setup.known())
    from mnlang.models.openai import OpenAIConfig

    openai = OpenAIConfig.from_table("openai", project.providers["openai"], environ)
    assert openai.api_key == "sk-team" and openai.timeout_s == 5.0  # the environment wins
    gateway = OpenAIConfig.from_table("gateway", project.providers["gateway"], environ)
    assert gateway.api_key is None and gateway.timeout_s == 60.0
