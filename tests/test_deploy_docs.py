"""docs/deploy.md's project walk-through: its `sh` blocks, run in order in a fresh folder
with this checkout's `mnc` first on PATH, must all succeed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "deploy.md"
SECTION = "## A team's project: the journal, the code and the secrets"


def walkthrough() -> list[str]:
    text = DOC.read_text("utf-8")
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return re.findall(r"^```sh\n(.*?)^```", text[start:end], re.M | re.S)


def test_the_project_walkthrough_runs(tmp_path: Path) -> None:
    blocks = walkthrough()
    assert len(blocks) >= 3
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    # Each block runs in the folder the previous one left, as a reader's shell would.
    script = "set -e\n" + "\n".join(
        f"({block.strip()})" if block.lstrip().startswith('cd "$(mktemp') else block
        for block in blocks
    )
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "shop" / ".mnc" / "journal.db").is_file()
    assert not (tmp_path / "shop" / "reports" / ".mnc").exists()
