"""Where code is found: `.mn` imports from the project root, `MNC_PATH` and installed
packages (with an error that lists where it looked), and tool code found from the
worker's own folder when the folder a run started in is gone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.test_project import mnc

FLOW = """
import common.policies { limit }

tool double(n: int) -> int {
  impl: "tools:double"
}

workflow twice(n: int) -> int {
  d = double(n)
  capped = limit(d)
  return capped
}
"""

POLICIES = """
workflow limit(n: int) -> int {
  if n > 100 {
    return 100
  }
  return n
}
"""


def test_an_import_from_the_project_root(tmp_path: Path) -> None:
    (tmp_path / "mnlang.toml").write_text("")
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "policies.mn").write_text(POLICIES)
    team = tmp_path / "teamA"
    team.mkdir()
    (team / "flow.mn").write_text(FLOW)
    (team / "tools.py").write_text("def double(n):\n    return 2 * n\n")
    assert mnc(team, "check", "flow.mn").returncode == 0
    ran = mnc(team, "run", "flow.mn", "--input", '{"n": 70}')
    assert ran.returncode == 0 and ran.stdout.strip().endswith("100"), ran.stdout + ran.stderr


def test_an_import_from_mnc_path_and_the_error_that_lists_where_it_looked(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    (shared / "common").mkdir(parents=True)
    (shared / "common" / "policies.mn").write_text(POLICIES)
    team = tmp_path / "team"
    team.mkdir()
    (team / "flow.mn").write_text(FLOW)
    (team / "tools.py").write_text("def double(n):\n    return 2 * n\n")
    missing = mnc(team, "check", "flow.mn")
    assert missing.returncode == 1 and "E104" in missing.stdout
    assert "looked at:" in missing.stdout and str(team / "common" / "policies.mn") in missing.stdout
    assert "mnlang.modules" in missing.stdout
    assert mnc(team, "check", "flow.mn", MNC_PATH=str(shared)).returncode == 0


def test_an_import_from_an_installed_package(tmp_path: Path) -> None:
    site = tmp_path / "site"
    package = site / "acme_flows"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "policies.mn").write_text(POLICIES)
    dist = site / "acme_flows-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-flows\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mnlang.modules]\nacme = acme_flows\n")
    team = tmp_path / "team"
    team.mkdir()
    (team / "flow.mn").write_text(FLOW.replace("common.policies", "acme.policies"))
    (team / "tools.py").write_text("def double(n):\n    return 2 * n\n")
    checked = mnc(team, "check", "flow.mn", PYTHONPATH=str(site))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_run_started_in_one_folder_is_finished_by_a_worker_in_another(tmp_path: Path) -> None:
    release_a = tmp_path / "release-a"
    (release_a / "common").mkdir(parents=True)
    (release_a / "mnlang.toml").write_text('[journal]\ndb = "../journal.db"\n')
    (release_a / "common" / "policies.mn").write_text(POLICIES)
    (release_a / "flow.mn").write_text(FLOW)
    (release_a / "tools.py").write_text("def double(n):\n    return 2 * n\n")
    created = mnc(release_a, "run", "flow.mn", "--input", '{"n": 4}', "--id", "r1", "--detach")
    assert created.returncode == 0, created.stderr
    release_b = tmp_path / "release-b"
    shutil.copytree(release_a, release_b)
    shutil.rmtree(release_a)  # blue/green: the old release is gone
    worker = mnc(release_b, "worker", "--until-idle")
    assert worker.returncode == 0, worker.stderr
    shown = json.loads(mnc(release_b, "show", "r1", "--json").stdout)["run"]
    assert shown["status"] == "completed" and shown["result"] == 8, shown
