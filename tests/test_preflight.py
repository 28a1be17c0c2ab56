"""`mnc run` refuses, before creating anything, a run that would surely fail: a tool whose
`impl` cannot be imported, an agent with an unknown provider, input that does not fit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FLOW = """
tool lookup(id: str) -> str {
  impl: "tools:lookup"
}

agent summarise(text: str) -> str {
  model: "gpt-5.4-mini"
  provider: PROVIDER
  prompt: "Summarise {text}"
  max_tokens: 100
}

workflow w(id: str) -> str {
  found = lookup(id)
  s = summarise(found)
  return s
}
"""


def mnc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    base["MNC_OPENAI_API_KEY"] = "sk-test-unused"  # past the agents' key check (issue 17)
    return subprocess.run(
        [sys.executable, "-m", "mnlang.cli", *args],
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("provider", "tools", "says"),
    [
        ('"openai"', None, "cannot import `tools`"),
        ('"openai"', "def other(id):\n    return id\n", "has no function `lookup`"),
        ('"nobody"', "def lookup(id):\n    return id\n", "names provider `nobody`"),
    ],
)
def test_a_run_that_would_surely_fail_is_refused_and_leaves_nothing(
    tmp_path: Path, provider: str, tools: str | None, says: str
) -> None:
    (tmp_path / "flow.mn").write_text(FLOW.replace("PROVIDER", provider))
    if tools is not None:
        (tmp_path / "tools.py").write_text(tools)
    for extra in ([], ["--detach"]):
        done = mnc(
            tmp_path, "run", "flow.mn", "--input", '{"id": "a"}', "--models", "openai", *extra
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert says in done.stderr or "cannot answer the agents" in done.stderr, done.stderr
        assert "help:" in done.stderr
        assert "Traceback" not in done.stderr
        assert not (tmp_path / ".mnc").exists()
