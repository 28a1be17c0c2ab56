"""Provider plugins: a package that registers a provider under the `mnlang.providers`
entry point group answers agents with `provider: "echo"` in `mnc run`, `mnc worker` and
`mnlang.api`, and `mnc check` knows the name. The package is real as far as
`importlib.metadata` can tell: a module and a `.dist-info` folder with `entry_points.txt`
on the `PYTHONPATH` of a child process, found by the same discovery as a pip install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MNC = [sys.executable, "-m", "mnlang.cli"]

FLOW = """
type Shout {
  text: str
}

agent shout(words: str) -> Shout {
  model: "echo-1"
  provider: "echo"
  prompt: "Shout: {words}"
  max_tokens: 50
}

workflow loud(words: str) -> str {
  s = shout(words)
  return s.text
}
"""

PLUGIN = '''
import json, os
from mnlang.models.base import ModelReply, Usage


class EchoProvider:
    """Answers with the prompt in capitals, and notes each request it got."""

    name = "echo"

    def complete(self, request):
        with open(os.environ["ECHO_LOG"], "a") as log:
            log.write(json.dumps({"model": request.model, "prompt": request.prompt}) + "\\n")
        text = request.prompt.removeprefix("Shout: ").upper()
        return ModelReply(json.dumps({"text": text}), [], Usage(12, 3), "echo-1")


def broken():
    raise RuntimeError("no ECHO_TOKEN set")
'''


def install_plugin(site: Path, factory: str = "echo_provider:EchoProvider") -> None:
    (site / "echo_provider").mkdir(parents=True)
    (site / "echo_provider" / "__init__.py").write_text(PLUGIN, "utf-8")
    info = site / "echo_provider-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: echo-provider\nVersion: 0.1\n", "utf-8"
    )
    (info / "entry_points.txt").write_text(f"[mnlang.providers]\necho = {factory}\n", "utf-8")


def env(tmp_path: Path, site: Path | None) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    root = str(Path(__file__).resolve().parent.parent)
    out["PYTHONPATH"] = os.pathsep.join([str(site), root] if site is not None else [root])
    out["ECHO_LOG"] = str(tmp_path / "echo.log")
    out["MNC_DB"] = str(tmp_path / "journal.db")
    out.pop("OPENAI_API_KEY", None)
    return out


def mnc(tmp_path: Path, site: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MNC, *args],
        cwd=tmp_path,
        env=env(tmp_path, site),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flow.mn").write_text(FLOW, "utf-8")
    install_plugin(tmp_path / "site")
    return tmp_path


def requests_seen(tmp_path: Path) -> list[dict[str, str]]:
    log = tmp_path / "echo.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_mnc_check_knows_an_installed_provider_and_no_other(project: Path) -> None:
    site = project / "site"
    assert mnc(project, site, "check", "flow.mn").returncode == 0
    missing = mnc(project, None, "check", "flow.mn")
    assert missing.returncode == 1
    assert "error[E254]: agent `shout` names provider `echo`, which is not known here" in (
        missing.stdout + missing.stderr
    )
    assert "flow.mn:8:13" in missing.stdout + missing.stderr


def test_mnc_run_and_mnlang_api_are_answered_by_the_plugin(project: Path) -> None:
    site = project / "site"
    ran = mnc(
        project,
        site,
        "run",
        "flow.mn",
        "--input",
        '{"words": "hi"}',
        "--models",
        "openai",
        "--json",
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["result"] == "HI"
    assert requests_seen(project) == [{"model": "echo-1", "prompt": "Shout: hi"}]
    script = (
        "from mnlang import api\n"
        "out = api.start_run('flow.mn', {'words': 'api'}, models='openai', run_id='a1')\n"
        "print(out.status, out.result)\n"
    )
    by_api = subprocess.run(
        [sys.executable, "-c", script],
        cwd=project,
        env=env(project, site),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert by_api.returncode == 0, by_api.stderr
    assert by_api.stdout.split() == ["completed", "API"]
    shown = mnc(project, site, "log", "a1", "--json")
    assert shown.returncode == 0, shown.stderr
    assert '"provider": "echo"' in shown.stdout.replace('":"', '": "')


@pytest.mark.slow
def test_mnc_worker_serves_runs_of_the_plugin_provider(project: Path) -> None:
    site = project / "site"
    made = mnc(
        project, site, "run", "flow.mn", "--input", '{"words": "later"}', "--detach", "--id", "w1"
    )
    assert made.returncode == 0, made.stderr
    assert requests_seen(project) == []
    # Without the plugin a worker cannot serve the run: it leaves it waiting.
    idle = mnc(project, None, "worker", "--until-idle", "flow.mn")
    assert idle.returncode == 0, idle.stderr
    assert requests_seen(project) == []
    worked = mnc(project, site, "worker", "--until-idle", "flow.mn")
    assert worked.returncode == 0, worked.stderr
    shown = mnc(project, site, "show", "w1", "--json")
    assert json.loads(shown.stdout)["run"]["status"] == "completed", shown.stdout
    assert requests_seen(project) == [{"model": "echo-1", "prompt": "Shout: later"}]


def test_a_plugin_that_fails_to_start_is_refused_before_a_run_is_created(tmp_path: Path) -> None:
    (tmp_path / "flow.mn").write_text(FLOW, "utf-8")
    install_plugin(tmp_path / "site", "echo_provider:broken")
    ran = mnc(
        tmp_path,
        tmp_path / "site",
        "run",
        "flow.mn",
        "--input",
        '{"words": "hi"}',
        "--models",
        "openai",
    )
    assert ran.returncode == 2, ran.stderr
    assert (
        "provider plugin `echo` (echo_provider:broken, from echo-provider 0.1) failed to start"
        in ran.stderr
    )
    assert "RuntimeError: no ECHO_TOKEN set" in ran.stderr
    listed = mnc(tmp_path, tmp_path / "site", "runs", "--json")
    assert json.loads(listed.stdout or "[]") in ([], {"runs": []}), listed.stdout
