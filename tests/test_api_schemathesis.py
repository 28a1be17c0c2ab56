"""schemathesis against a live `mnc serve`: generated requests, authenticated and not,
find no 5xx, no response outside the OpenAPI document, and no state change without a
token. Bounded: a few examples per operation, no shrinking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mnlang.stores.sqlite import SQLiteStore
from tests.api.server import ADMIN_TOKEN, SHOP, Served, serve

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
BOUNDED = settings(
    max_examples=15,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("schemathesis") / "journal.db"
    with serve(db) as served:
        body = {"source": SHOP.read_text(), "path": str(SHOP)}
        assert httpx2.post(served.url + "/api/v1/programs", json=body, headers=ADMIN).is_success
        start = {"workflow": "order", "input": {"id": "s", "amount": "1"}, "run_id": "seed"}
        assert httpx2.post(served.url + "/api/v1/runs", json=start, headers=ADMIN).is_success
        yield served


def _journal_rows(live: Served) -> tuple[list[tuple[str, str, bool]], int]:
    with SQLiteStore(Path(live.log).with_name("journal.db")) as store:
        runs = [(r.run_id, r.status, r.cancel_requested) for r in store.list_runs(limit=10**6)]
        return runs, len(store.program_hashes())


def _operations(live: Served) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(live.url + "/api/v1/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def test_authenticated(live: Served) -> None:
    for operation in _operations(live):

        @BOUNDED
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=live.url, headers=ADMIN, checks=CHECKS, timeout=30)

        check()


def test_unauthenticated_changes_nothing(live: Served) -> None:
    for operation in _operations(live):

        @BOUNDED
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            before = _journal_rows(live)
            bad = {"authorization": "Bearer not-a-token"}
            response = case.call(base_url=live.url, headers=bad, timeout=30)
            assert response.status_code < 500, response.text
            if case.path != "/api/v1/openapi.json":
                assert response.status_code == 401, response.text
            assert _journal_rows(live) == before

        check()
