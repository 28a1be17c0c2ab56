"""Make `legacy_open_intent.sql`: a journal holding an effect's open intent, committed by
mnlang as it was before wire keys (commit e8cf502), and `legacy_open_intent.json`: what
the receiver saw of that call.

Run once with that release first on the path, ahead of an editable install, from its
folder: `git worktree add /tmp/old e8cf502 && cd /tmp/old`, then
`PYTHONPATH=/tmp/old:$VENV_SITE_PACKAGES python -S $HERE/make_legacy_fixture.py`; the
files it writes are kept, so that `test_wire_keys.py` checks that a later mnlang resumes
such an intent sending the key the old release sent. The run posts `mirror.mn`'s order
through `HTTP_PROXY` to `receiver.py` (the journal keeps the URL, the port changes), and
is killed (the crash hook, as a SIGKILL) at the commit of the call's result, before
anything of it is written: the request was performed, the journal has only the intent.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from receiver import Server  # noqa: E402

RUN_ID = "legacy-mirror"
ORDER = {"order_id": "o-1"}


def mnc(db: Path, proxy: str, crash_at: int) -> int:
    env = {
        **os.environ,
        "HTTP_PROXY": proxy,
        "MNC_CRASH_AT_COMMIT": str(crash_at),
        "MNC_CRASH_WHEN": "before",
    }
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    no_site = ["-S"] if sys.flags.no_site else []  # so that PYTHONPATH picks the release
    command = [sys.executable, *no_site, "-m", "mnlang.cli", "run", str(HERE / "mirror.mn")]
    command += ["--db", str(db), "--id", RUN_ID, "--input", json.dumps(ORDER)]
    return subprocess.run(command, env=env, capture_output=True, check=False).returncode


def main() -> None:
    for crash_at in range(1, 10):
        with tempfile.TemporaryDirectory() as tmp, Server() as server:
            db = Path(tmp) / "journal.db"
            status = mnc(db, server.url, crash_at)
            if status != 137 or len(server.receiver.requests) != 1:
                continue
            with sqlite3.connect(db) as conn:
                # The pragmas that mark the file as an mnlang journal of its schema version.
                marks = [
                    f"PRAGMA {name} = {conn.execute(f'PRAGMA {name}').fetchone()[0]};"
                    for name in ("application_id", "user_version")
                ]
                dump = "\n".join([*marks, *conn.iterdump()]) + "\n"
            (HERE / "legacy_open_intent.sql").write_text(dump, "utf-8")
            seen = {
                "run_id": RUN_ID,
                "crashed_at_commit": crash_at,
                "sent_keys": [r.key for r in server.receiver.requests],
            }
            (HERE / "legacy_open_intent.json").write_text(json.dumps(seen, indent=2) + "\n")
            print(f"killed at commit {crash_at}; the receiver saw {seen['sent_keys']}")
            return
    raise SystemExit("no commit left the run with a performed request and an open intent")


if __name__ == "__main__":
    main()
