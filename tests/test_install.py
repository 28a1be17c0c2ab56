"""A non-editable install works on its own: the grammar and the standard library ship
inside the wheel (`mnlang/_data/`), and `mnc check` runs from any directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_pip_install_then_mnc_check_elsewhere(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["MNC_CACHE_DIR"] = str(tmp_path / "cache")
    source = tmp_path / "source"  # a copy, so that no build output lands in the checkout
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "venv", "__pycache__", ".*_cache", ".hypothesis", "build", ".mnc"
        ),
    )
    installed = run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", str(source)], tmp_path, env
    )
    assert installed.returncode == 0, installed.stderr[-3000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(ROOT / "examples" / "refund" / "refund.mn", elsewhere / "refund.mn")
    where = run(
        [
            str(bin_dir / "python"),
            "-c",
            "import mnlang, mnlang.resources as r; "
            "print(mnlang.__file__); print(r.data_path('grammar')); print(r.data_path('stdlib'))",
        ],
        elsewhere,
        env,
    )
    assert where.returncode == 0, where.stderr
    package, grammar, stdlib = where.stdout.splitlines()
    site = str(venv)
    assert package.startswith(site) and grammar.startswith(site) and stdlib.startswith(site)
    assert grammar.endswith("mnlang/_data/grammar") and stdlib.endswith("mnlang/_data/stdlib")

    # Type checkers see the package's hints (py.typed), the metadata says so, and one HTTP
    # stack is installed: httpx2, not httpx beside it.
    shipped = run(
        [
            str(bin_dir / "python"),
            "-c",
            "from importlib import metadata, util; dist = metadata.distribution('mnlang'); "
            "print(any(str(f) == 'mnlang/py.typed' for f in dist.files or ())); "
            "print('Typing :: Typed' in dist.metadata.get_all('Classifier', [])); "
            "print(util.find_spec('httpx2') is not None, util.find_spec('httpx') is None)",
        ],
        elsewhere,
        env,
    )
    assert shipped.stdout.split() == ["True", "True", "True", "True"], shipped.stderr

    # Only the .mn file was copied: its tools live elsewhere, so their check is left out.
    for _ in range(2):  # the first run builds the parse tables, the second reads them
        checked = run([str(bin_dir / "mnc"), "check", "--no-import", "refund.mn"], elsewhere, env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert checked.stdout == "all checks passed\n"
    broken = elsewhere / "broken.mn"
    broken.write_text("type A {\n  x = int\n}\n", "utf-8")
    failed = run([str(bin_dir / "mnc"), "check", "broken.mn"], elsewhere, env)
    assert failed.returncode == 1
    assert failed.stdout.startswith("error[E012]")
