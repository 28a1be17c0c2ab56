#!/bin/sh
# Install mnc from built wheels into a virtual environment and prove it works.
# Used by the Dockerfile's build step and by tests/test_deploy_files.py (in a fresh venv).
#   usage: install.sh WHEEL_DIR VENV
set -eu
wheels="$1"
venv="$2"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --no-cache-dir --find-links "$wheels" "mnlang[postgres]"
# A smoke test of the installed command: it starts, and checks a workflow.
"$venv/bin/mnc" --version
probe="$(mktemp -d)"
"$venv/bin/mnc" init "$probe/project" >/dev/null
(cd "$probe/project" && "$venv/bin/mnc" check confirm.mn)
rm -rf "$probe"
