"""The tool of thaw.mn: records each request, with the token it was handed, in
`MNC_EXAMPLE_LEDGER`; with `THAW_KILL_AT` (a key), it kills its own process (SIGKILL)
right after recording that key's first request, before the run can commit the call."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any


def request_restore(bucket: str, key: str, token: str, *, ctx: Any = None) -> bool:
    ledger = Path(os.environ["MNC_EXAMPLE_LEDGER"])
    with ledger.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"bucket": bucket, "key": key, "token": token}) + "\n")
        out.flush()
        os.fsync(out.fileno())
    if os.environ.get("THAW_KILL_AT") == key:
        marker = ledger.with_suffix(".killed")
        if not marker.exists():
            marker.write_text(key, "utf-8")
            os.kill(os.getpid(), signal.SIGKILL)
    return True
