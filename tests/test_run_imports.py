"""`mnc run` of the refund example to its checkpoint (with its scripted replies, an agent
call included), from the source and from its compiled IR, imports no pydantic: the IR's
models are msgspec Structs and an agent's reply is validated without pydantic
(`mnlang.models.validation`); nor `importlib.metadata`: its providers are all built in,
so the installed packages' provider plugins are not looked up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFUND = ROOT / "examples" / "refund"
O_1002 = {"order_id": "o-1002", "complaint": "The mug arrived with a crack along the handle."}
PROBE = """
import sys
from mnlang.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(code, sorted(m for m in sys.modules if m.split(".")[0] == "pydantic")[:3])
print("importlib.metadata" in sys.modules)
"""


@pytest.mark.parametrize("compiled", [False, True], ids=["source", "ir"])
def test_mnc_run_to_the_checkpoint_imports_no_pydantic(compiled: bool, tmp_path: Path) -> None:
    program = REFUND / "refund.mn"
    if compiled:
        program = tmp_path / "refund.json"
        done = subprocess.run(
            [sys.executable, "-m", "mnlang.cli", "compile", str(REFUND / "refund.mn")],
            capture_output=True,
            text=True,
            check=True,
        )
        program.write_text(done.stdout, "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    env |= {"MNC_DB": str(tmp_path / "j.db"), "MNC_EXAMPLE_LEDGER": str(tmp_path / "l.jsonl")}
    argv = ["run", str(program), "--models", f"scripted:{REFUND / 'replies.json'}"]
    argv += ["--input", json.dumps(O_1002), "--id", "r1"]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], env=env, capture_output=True, text=True, check=False
    )
    assert "waiting: run r1" in done.stdout, done.stdout + done.stderr
    assert done.stdout.rstrip().splitlines()[-2:] == ["3 []", "False"]
