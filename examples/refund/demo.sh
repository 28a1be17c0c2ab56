#!/bin/sh
# The refund example through its approval checkpoint, end to end, in a fresh journal.
#
# Order o-1002 is $249.00, over the workflow's $100 threshold, so the run stops at the
# `manager_review` checkpoint (exit status 3: waiting). A manager approves it; the run
# goes on, pays the refund exactly once and completes (exit status 0).
#
# Needs `mnc` on PATH, or MNC=/path/to/mnc. The run stays in the journal (`$MNC_DB`, by
# default ./.mnc/journal.db), so `mnc ui` shows it afterwards; each demo is a new run.
# `--models scripted` answers the agent from replies.json beside the program: scripted
# replies are used only when asked for, never just because the file is there.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
mnc=${MNC:-mnc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
MNC_EXAMPLE_LEDGER="$work/ledger.jsonl"
export MNC_EXAMPLE_LEDGER
run="refund-o-1002-$(date +%Y%m%d-%H%M%S)"

step() { printf '\n$ %s\n' "$1"; }

step "mnc run examples/refund/refund.mn --models scripted --id $run --input '{\"order_id\": \"o-1002\", ...}'"
status=0
"$mnc" run "$here/refund.mn" --models scripted --id "$run" \
  --input '{"order_id": "o-1002", "complaint": "The mug arrived with a crack along the handle."}' \
  || status=$?
if [ "$status" -ne 3 ]; then
  echo "demo: expected the run to wait for the manager (exit 3), got $status" >&2
  exit 1
fi

step "mnc show $run"
"$mnc" show "$run"

step "mnc approve $run manager_review --by manager --comment \"photos checked\""
"$mnc" approve "$run" manager_review --by manager --comment "photos checked"

refunds=$(grep -c '"refund_payment"' "$MNC_EXAMPLE_LEDGER")
printf '\nthe payment provider was called %s time(s) for the refund\n' "$refunds"
printf 'see the run in the browser: mnc ui (then open the link it prints: it carries a per-start secret)\n'

