"""A stdio relay between an MCP client and a server, for the kill -9 test of
tests/test_mcp.py: it passes every message through and appends each `tools/call` to
`proxy_calls.jsonl` in its folder (what reached the server). While a file `hold` is in
its folder, it keeps back the server's answer to a `tools/call` and creates the file
`held` instead: the server has acted, and the client waits for an answer that never
comes, until the test kills it. (Its settings are files: an MCP client starts a stdio
server with only a few of its own environment variables.) It ends with its client (stdin closed), and its server with it.

    python hold_proxy.py SERVER-COMMAND ARGS...
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading


def main() -> None:
    server = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert server.stdin is not None and server.stdout is not None
    hold = os.path.exists("hold")
    calls = "proxy_calls.jsonl"
    pending: set[object] = set()

    def answers() -> None:
        assert server.stdout is not None
        for line in server.stdout:
            message = json.loads(line)
            if hold and message.get("id") in pending:
                open("held", "w").close()
                return  # the answer is kept back; so is everything after it
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()

    threading.Thread(target=answers, daemon=True).start()
    for line in sys.stdin.buffer:
        message = json.loads(line)
        if message.get("method") == "tools/call":
            with open(calls, "a") as f:
                f.write(json.dumps(message["params"]) + "\n")
            pending.add(message.get("id"))
        server.stdin.write(line)
        server.stdin.flush()
    server.kill()
    server.wait()


if __name__ == "__main__":
    main()
