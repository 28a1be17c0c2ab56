"""A node failure across a network (slow): a `mnc worker` on a test host of its own
reaches PostgreSQL over a link that the test cuts mid-run. Its runs are taken over by a
worker on this host; then the link comes back, the cut-off worker's late commits reach
the server, and the journal shows that it committed nothing after losing its lease.

The test host is a network namespace (`ip netns add`) joined to this one by a veth pair,
with the server listening on the veth address. Where namespaces are not permitted, the
same test runs through a TCP proxy of the test's own on localhost, which it cuts by
holding every byte (as a partition does) and restores by letting them through again. The
variant that ran is printed and written to the test's `variant.txt`;
`MNC_NETFAIL_VARIANT=proxy` runs the proxy variant where namespaces are permitted too.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed (mnlang[postgres])")

import psycopg

from mnlang.api import load_program
from mnlang.runtime.run import start_run
from mnlang.stores.base import NewRun
from mnlang.stores.postgres import PostgresStore
from tests.pg import DATABASE, FAST_SETTINGS, SUPERUSER, PostgresCluster, missing_reason
from tests.test_store_postgres import raw, schema_of

RUNS = 30
LEASE_TTL = 3.0
IDLE_IN_TRANSACTION = 10.0
"""The store's default `idle_in_transaction_timeout`: a worker cut off inside a transaction
holds the run's row lock until the server ends its session."""
TAKEOVER_SLACK = 3.0
"""Seconds the takeover may take beyond what the lease and the server's timeouts allow."""
SCHEMA = "netfail"

SOURCE = """\
effect charge(order: str) -> str {
  impl: "net_tools:charge"
  key: "charge:{order}"
}

effect notify(order: str, receipt: str) -> bool {
  impl: "net_tools:notify"
  key: "notify:{order}"
}

workflow pay(order: str) -> str {
  receipt = charge(order)
  sent = notify(order, receipt)
  return "{receipt} {sent}"
}
"""

# Slow calls, so that the cut falls while the worker holds runs with calls in flight.
TOOLS = """\
import time

from mnlang.effect_log import record


def charge(order, *, ctx):
    record("charge", ctx, {"order": order})
    time.sleep(0.3)
    return "c-" + order


def notify(order, receipt, *, ctx):
    record("notify", ctx, {"order": order, "receipt": receipt})
    time.sleep(0.1)
    return True
"""


class Link(Protocol):
    variant: str
    host: str
    """The address the cut-off worker reaches the server at."""
    prefix: list[str]
    """What its command runs under."""

    def cut(self) -> None: ...

    def restore(self) -> None: ...


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True)


class Namespace:
    """A network namespace joined to this one by a veth pair."""

    variant = "network namespace (ip netns + veth)"

    def __init__(self) -> None:
        n = os.getpid() % 250 + 1
        self.name = f"mnc-net{os.getpid()}"
        self.outer = f"mncv{os.getpid() % 100000}"
        self.server_ip = f"10.231.{n}.1"
        self.host = self.server_ip
        self.prefix = ["ip", "netns", "exec", self.name]
        run("ip", "netns", "add", self.name)
        try:
            run("ip", "link", "add", self.outer, "type", "veth", "peer", "name", "mnc-inner")
            run("ip", "link", "set", "mnc-inner", "netns", self.name)
            run("ip", "addr", "add", f"{self.server_ip}/30", "dev", self.outer)
            run("ip", "link", "set", self.outer, "up")
            inner = [*self.prefix, "ip"]
            run(*inner, "addr", "add", f"10.231.{n}.2/30", "dev", "mnc-inner")
            run(*inner, "link", "set", "mnc-inner", "up")
            run(*inner, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def cut(self) -> None:
        run("ip", "link", "set", self.outer, "down")

    def restore(self) -> None:
        run("ip", "link", "set", self.outer, "up")

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.outer], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)


class Proxy:
    """A TCP proxy on localhost whose link can be cut: a cut holds every byte in both
    directions (no connection is closed, as in a partition) until it is restored."""

    variant = "TCP proxy on localhost"

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.host = "127.0.0.1"
        self.prefix: list[str] = []
        self._open = threading.Event()
        self._open.set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 0.1)
                for sock in ready:
                    self._open.wait()
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            a.close()
            b.close()

    def cut(self) -> None:
        self._open.clear()

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def link_and_cluster(tmp_path: Path) -> Iterator[tuple[Link, PostgresCluster, str]]:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    namespace: Namespace | None = None
    if os.environ.get("MNC_NETFAIL_VARIANT") != "proxy":
        try:
            namespace = Namespace()
        except (subprocess.CalledProcessError, FileNotFoundError):
            namespace = None
    settings = dict(FAST_SETTINGS)
    if namespace is not None:
        settings["listen_addresses"] = f"127.0.0.1,{namespace.server_ip}"
    cluster = PostgresCluster(settings)
    proxy: Proxy | None = None
    try:
        cluster.start()
        if namespace is not None:
            hba = cluster.data / "pg_hba.conf"
            with hba.open("a") as f:
                f.write(f"host all all {namespace.server_ip}/30 trust\n")
            with raw(cluster.url()) as conn:
                conn.execute("SELECT pg_reload_conf()")
            link: Link = namespace
            far_port = cluster.port
        else:
            proxy = Proxy(cluster.port)
            link = proxy
            far_port = proxy.port
        far_url = f"postgresql://{SUPERUSER}@{link.host}:{far_port}/{DATABASE}?schema={SCHEMA}"
        print(f"network failure variant: {link.variant}")
        (tmp_path / "variant.txt").write_text(link.variant + "\n", "utf-8")
        yield link, cluster, far_url
    finally:
        cluster.stop()
        if namespace is not None:
            namespace.close()
        if proxy is not None:
            proxy.close()


def journal(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Every run's row as commits leave it, and the ledger."""
    schema = schema_of(url)
    with raw(url) as conn:
        runs = conn.execute(
            f"SELECT run_id, status, last_seq, result, (SELECT count(*) FROM {schema}.events AS e"
            f" WHERE e.run_id = r.run_id) FROM {schema}.runs AS r ORDER BY run_id"
        ).fetchall()
        ledger = conn.execute(
            f"SELECT key, status, result, updated_at FROM {schema}.ledger ORDER BY key"
        ).fetchall()
    return runs, ledger


@pytest.mark.slow
@pytest.mark.serial
def test_a_worker_cut_off_from_the_database_loses_its_runs_and_commits_nothing_after(
    link_and_cluster: tuple[Link, PostgresCluster, str], tmp_path: Path
) -> None:
    link, cluster, far_url = link_and_cluster
    near_url = cluster.url(SCHEMA)
    (tmp_path / "pay.mn").write_text(SOURCE, "utf-8")
    (tmp_path / "net_tools.py").write_text(TOOLS, "utf-8")
    effect_log = tmp_path / "effects.jsonl"
    program = load_program(tmp_path / "pay.mn")
    env = {**os.environ, "MNC_EXAMPLE_LEDGER": str(effect_log), "PYTHONPATH": os.getcwd()}
    worker = [sys.executable, "-m", "mnlang.cli", "worker", "--lease-ttl", str(LEASE_TTL)]
    with PostgresStore(near_url) as store:
        for n in range(RUNS):
            start_run(store, program, "pay", {"order": f"o{n:02}"}, run_id=f"n{n:02}", detach=True)
        far_log = (tmp_path / "far.log").open("w")
        far = subprocess.Popen(
            [*link.prefix, *worker, "--db", far_url, "--concurrency", "4"],
            env=env,
            stderr=far_log,
        )
        near: subprocess.Popen[bytes] | None = None
        try:
            deadline = time.monotonic() + 60
            while True:
                assert time.monotonic() < deadline, (tmp_path / "far.log").read_text()
                if len(store.list_runs(status="completed", limit=RUNS)) >= 3:
                    break
                time.sleep(0.05)
            (far_worker,) = [w for w in store.list_workers() if w.pid == far.pid]
            link.cut()
            cut_at = time.monotonic()
            held = {
                r.run_id
                for r in (store.get_run(run_id) for run_id in far_worker.claimed)
                if r is not None and r.status != "completed"
            }
            assert held, "the cut fell when the far worker held no run"
            near_log = (tmp_path / "near.log").open("w")
            near = subprocess.Popen(
                [*worker, "--db", near_url, "--concurrency", "8"], env=env, stderr=near_log
            )
            takeover = None
            while (
                store.run_counts() != []
                and len(store.list_runs(status="completed", limit=RUNS)) < RUNS
            ):
                assert time.monotonic() - cut_at < 90, (tmp_path / "near.log").read_text()
                if takeover is None and all(
                    (r := store.get_run(run_id)) is not None
                    and r.lease_owner != far_worker.worker_id
                    for run_id in held
                ):
                    takeover = time.monotonic() - cut_at
                time.sleep(0.05)
            if takeover is None:
                takeover = time.monotonic() - cut_at
            assert takeover <= LEASE_TTL + IDLE_IN_TRANSACTION + TAKEOVER_SLACK
            before = journal(near_url)
            # The link comes back: whatever the far worker still had to say arrives now.
            link.restore()
            time.sleep(LEASE_TTL + 4)
            after = journal(near_url)
        finally:
            for process in (far, near):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    process.wait(timeout=30)
            far_log.close()
            if near is not None:
                near_log.close()
    assert after == before, "the cut-off worker committed after losing its lease"
    runs, ledger = after
    assert Counter(status for _, status, *_ in runs) == {"completed": RUNS}
    assert all(
        result == json.dumps(f"c-o{str(run_id)[1:]} true") for run_id, _, _, result, _ in runs
    )
    assert len(ledger) == 2 * RUNS
    calls = Counter(json.loads(line)["key"] for line in effect_log.read_text().splitlines())
    repeated = {key.split(":")[1] for key, n in calls.items() if n > 1}
    assert repeated <= {f"o{run_id[1:]}" for run_id in held}
    print(
        f"network failure ({link.variant}): {len(held)} runs held at the cut, taken over "
        f"{takeover:.1f}s after it (lease {LEASE_TTL}s); journal unchanged after the link "
        f"came back; effect keys called again: {len(repeated)}"
    )


# A client with the store's session settings that locks the run's row and sends the next
# statement of its pipeline, without the Sync that would end it: the server now waits for
# the rest of the pipeline, a state it counts as active, so its idle-in-transaction
# timeout does not apply.
MID_PIPELINE = """
import sys, time
import psycopg
from mnlang.stores.postgres import PostgresStore

store = PostgresStore(sys.argv[1])
conn = psycopg.connect(store._conninfo, autocommit=True)
with conn.pipeline() as pipeline:
    conn.execute("BEGIN")
    conn.execute("SELECT run_id FROM runs WHERE run_id = 'r1' FOR UPDATE")
    pipeline.sync()
    conn.execute("UPDATE runs SET updated_at = updated_at WHERE run_id = 'r1'")
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
@pytest.mark.serial
def test_a_worker_cut_off_in_the_middle_of_a_pipeline_frees_its_row(
    link_and_cluster: tuple[Link, PostgresCluster, str],
) -> None:
    link, cluster, far_url = link_and_cluster
    if isinstance(link, Proxy):
        pytest.skip("the proxy answers the server's keepalives for the cut-off client")
    with PostgresStore(cluster.url(SCHEMA)) as store:
        store.create_run(NewRun("r1", "wf", {}))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    far = subprocess.Popen(
        [*link.prefix, sys.executable, "-c", MID_PIPELINE, far_url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert far.stdout is not None and far.stdout.readline() == "locked\n", far.stderr
        link.cut()
        cut_at = time.monotonic()
        with raw(cluster.url()) as conn:
            conn.execute("SET lock_timeout = '200ms'")
            while True:
                freed_after = time.monotonic() - cut_at
                try:
                    with conn.transaction():
                        conn.execute(
                            f"SELECT run_id FROM {SCHEMA}.runs WHERE run_id = 'r1' FOR UPDATE"
                        )
                    break
                except psycopg.errors.LockNotAvailable:
                    assert freed_after < 60, "the server kept the cut-off client's row lock"
    finally:
        far.kill()
        far.wait(timeout=30)
    print(f"row of a client cut off mid-pipeline freed {freed_after:.1f}s after the cut")
    assert freed_after <= IDLE_IN_TRANSACTION + TAKEOVER_SLACK
