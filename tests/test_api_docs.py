"""Every `curl` example of docs/api.md, run in order against a live `mnc serve`, answers
the HTTP status the page says (2xx unless an `# expect: NNN` line names another)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.api.server import ADMIN_TOKEN, env_for, serve

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
_BLOCK = re.compile(r"^```(\w[\w-]*)\n(.*?)^```$", re.M | re.S)
_EXPECT = re.compile(r"^# expect: (\d{3})$", re.M)
# Each curl prints its status line to the statuses file, its body to stderr.
_PRELUDE = """
set -euo pipefail
curl() { command curl -sS -o /dev/stderr -w '%{http_code}\\n' "$@" >> "$STATUSES"; }
"""


def examples() -> list[str]:
    return [text for tag, text in _BLOCK.findall(DOC.read_text()) if tag == "sh" and "curl" in text]


def program() -> str:
    return next(
        t for tag, t in _BLOCK.findall(DOC.read_text()) if tag == "mn" and "file: shop.mn" in t
    )


def _until_at_checkpoint(url: str, run_id: str) -> None:
    """The server executes the started run in the background: wait until it is there."""
    import httpx2

    deadline = time.monotonic() + 30
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    while not httpx2.get(f"{url}/api/v1/runs/{run_id}", headers=headers).json()["pending"][
        "checkpoints"
    ]:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_every_curl_example_answers_as_documented(tmp_path: Path) -> None:
    (tmp_path / "shop.mn").write_text(program())
    blocks = examples()
    assert len(blocks) >= 10
    with serve(tmp_path / "journal.db") as served:
        env = {
            **env_for(tmp_path / "journal.db"),
            "MNC_SERVER": served.url,
            "TOKEN": ADMIN_TOKEN,
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
        }
        for block in blocks:
            if "/checkpoints/review/decision" in block:
                _until_at_checkpoint(served.url, "o-1")
            statuses = tmp_path / "statuses"
            statuses.write_text("")
            script = _PRELUDE + block
            done = subprocess.run(
                ["bash", "-c", script],
                cwd=tmp_path,
                env={**env, "STATUSES": str(statuses)},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, (block, done.stderr)
            got = statuses.read_text().split()
            assert got, block
            wanted = _EXPECT.search(block)
            for status in got[:-1]:
                assert status.startswith("2"), (block, got, done.stderr)
            if wanted:
                assert got[-1] == wanted.group(1), (block, got, done.stderr)
            else:
                assert got[-1].startswith("2"), (block, got, done.stderr)
