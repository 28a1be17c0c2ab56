"""The container and service files (deploy/): every `mnc` command and option they name
exists; the install script the Dockerfile runs works in a fresh venv (slow); the compose
file validates where the compose client is installed; the worker's /healthz and /readyz."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
MNC = [sys.executable, "-m", "mnlang.cli"]


def mnc_command_lines() -> list[tuple[str, list[str]]]:
    """(file, argv after `mnc`) for every mnc invocation in the deploy files."""
    found: list[tuple[str, list[str]]] = []
    # The compose file writes each command as a JSON array (a YAML flow sequence).
    compose = (DEPLOY / "compose.yaml").read_text()
    commands = re.findall(r"^\s+command: (\[.*\])$", compose, re.M)
    assert len(commands) == 3  # migrate, serve, the workers
    found += [("compose.yaml", json.loads(c)) for c in commands]
    docker = (DEPLOY / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", docker, re.M)
    assert cmd is not None
    found.append(("Dockerfile:CMD", json.loads(cmd.group(1))))
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        for line in unit.read_text().splitlines():
            if line.startswith(("ExecStart=", "ExecStartPre=")):
                argv = shlex.split(line.partition("=")[2])
                assert argv[0].endswith("/mnc")
                found.append((unit.name, argv[1:]))
    return found


def help_of(argv: list[str]) -> tuple[list[str], str] | None:
    """The command path (group and subcommand) of argv and its --help text; None when
    `mnc` has no such command."""
    path: list[str] = []
    text = ""
    for word in argv:
        if word.startswith("-"):
            break
        trial = subprocess.run([*MNC, *path, word, "--help"], capture_output=True, text=True)
        if trial.returncode != 0:
            return None if not path else (path, text)
        path.append(word)
        text = trial.stdout
        if "Commands:" not in text:
            break
    return path, text


@pytest.mark.parametrize(("where", "argv"), mnc_command_lines(), ids=lambda v: str(v))
def test_every_mnc_command_and_option_in_the_deploy_files_exists(
    where: str, argv: list[str]
) -> None:
    found = help_of(argv)
    assert found is not None, f"{where}: no command `mnc {argv[0]}`"
    path, text = found
    for word in argv[len(path) :]:
        if word.startswith("--"):
            assert re.search(rf"(^|[\s,]){re.escape(word)}\b", text), f"{where}: no {word}"


def _compose_client() -> list[str] | None:
    """`docker compose` (the plugin) where it answers, else Debian's `docker-compose`
    (which `.ci/run` installs): both validate a file without a daemon."""
    if _has("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if _has("docker-compose") else None


def test_the_compose_file_is_valid(tmp_path: Path) -> None:
    client = _compose_client()
    if client is None:
        pytest.skip("no compose client on this machine (.ci/run installs docker-compose)")
    compose = ["-f", str(DEPLOY / "compose.yaml")]
    done = subprocess.run([*client, *compose, "config", "-q"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # The check can fail: a service that depends on an undefined one is refused.
    broken = tmp_path / "compose.yaml"
    text = (DEPLOY / "compose.yaml").read_text()
    broken.write_text(text.replace("\n    postgres:\n", "\n    no_such_service:\n", 1))
    assert broken.read_text() != text
    refused = subprocess.run(
        [*client, "-f", str(broken), "--project-directory", str(DEPLOY), "config", "-q"],
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "no_such_service" in refused.stderr + refused.stdout


def _has(program: str) -> bool:
    from shutil import which

    return which(program) is not None


def test_the_worker_serves_healthz_and_readyz(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    worker = subprocess.Popen(
        [*MNC, "worker", "--health", "127.0.0.1:0", "--lease-ttl", "2", "--db",
         str(tmp_path / "j.db")],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert worker.stderr is not None
        port = None
        for line in worker.stderr:
            match = re.search(r"health on http://127\.0\.0\.1:(\d+)/healthz", line)
            if match:
                port = int(match.group(1))
                break
        assert port is not None
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as r:
            assert r.status == 200
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=5) as r:
                    assert r.status == 200
                    break
            except urllib.error.HTTPError as e:
                assert e.code == 503
                assert time.monotonic() < deadline, "never ready"
                time.sleep(0.1)
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/nope", timeout=5)
        assert missing.value.code == 404
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0


@pytest.mark.slow
def test_the_install_script_works_in_a_fresh_venv(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), str(ROOT)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    done = subprocess.run(
        ["sh", str(DEPLOY / "install.sh"), str(wheels), str(tmp_path / "venv")],
        capture_output=True, text=True, check=False, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all checks passed" in done.stdout
