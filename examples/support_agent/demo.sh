#!/bin/sh
# The support agent through one conversation, end to end, in a fresh airline database.
#
# The passenger asks when their flight leaves (answered from the flights the run fetched
# first), asks to move it to next week (the assistant looks the policy and the flights up,
# then asks to update the ticket: the run waits until the passenger approves), then asks
# for a hotel (the passenger rejects the booking, with a reason the assistant is told),
# and closes the chat. The model is scripted (replies.json); the airline is a SQLite file.
#
# Needs `mnc` on PATH, or MNC=/path/to/mnc. The run stays in the journal (`$MNC_DB`, by
# default ./.mnc/journal.db), so `mnc ui` shows it afterwards; each demo is a new run.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
mnc=${MNC:-mnc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
MNC_EXAMPLE_LEDGER="$work/ledger.jsonl"
MNC_AIRLINE_DB="$work/airline.db"
export MNC_EXAMPLE_LEDGER MNC_AIRLINE_DB
run="support-$(date +%Y%m%d-%H%M%S)"

step() { printf '\n$ %s\n' "$1"; }
expect() {  # expect STATUS COMMAND...: run it, and stop the demo unless it exits STATUS
  want=$1
  shift
  status=0
  "$@" || status=$?
  if [ "$status" -ne "$want" ]; then
    echo "demo: expected exit status $want from $*, got $status" >&2
    exit 1
  fi
}

step "mnc run examples/support_agent/support_agent.mn --models scripted --id $run --input-file input.json"
expect 3 "$mnc" run "$here/support_agent.mn" --models scripted --id "$run" \
  --input-file "$here/input.json"
step "mnc get $run last_answer"
"$mnc" get "$run" last_answer

step "mnc signal $run user_message --key 1 '\"Update my flight to sometime next week then\"'"
expect 3 "$mnc" signal "$run" user_message --key 1 '"Update my flight to sometime next week then"'
step "mnc show $run    # the assistant waits for the passenger to approve the change"
"$mnc" show "$run" | sed -n '/^pending/,/^steps/p'
step "mnc approve $run update_ticket_to_new_flight --by passenger"
expect 3 "$mnc" approve "$run" update_ticket_to_new_flight --by passenger
"$mnc" get "$run" last_answer

step "mnc signal $run user_message --key 2 '\"I would like an affordable hotel in Basel for my week there.\"'"
expect 3 "$mnc" signal "$run" user_message --key 2 \
  '"I would like an affordable hotel in Basel for my week there."'
step "mnc reject $run book_hotel --by passenger --comment \"The Hilton is too expensive\""
expect 3 "$mnc" reject "$run" book_hotel --by passenger --comment "The Hilton is too expensive"
"$mnc" get "$run" last_answer

step "mnc signal $run conversation_closed --key 3 '\"passenger\"'"
expect 0 "$mnc" signal "$run" conversation_closed --key 3 '"passenger"' > /dev/null
printf 'completed: run %s returned the conversation (mnc show %s)\n' "$run" "$run"

changes=$(wc -l < "$MNC_EXAMPLE_LEDGER")
printf '\nthe airline was sent %s change(s): %s\n' "$changes" "$(cut -c1-120 "$MNC_EXAMPLE_LEDGER")"
printf 'see the run in the browser: mnc ui (then open the link it prints: it carries a per-start secret)\n'
