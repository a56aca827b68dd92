"""The store contract against a real SQL Server (see docs/DATABASE.md to start one).

Runs only when SLACK_AI_TEST_MSSQL_URL is set, e.g.
`mssql+pymssql://sa:Your_password123@127.0.0.1:1433/slack_ai_test`. The database must exist
and is emptied between checks. Same checks as the SQLite backend (tests/unit/test_db_contract.py).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import pytest

MSSQL_URL = os.environ.get("SLACK_AI_TEST_MSSQL_URL", "")
pytestmark = [
    pytest.mark.mssql,
    pytest.mark.skipif(not MSSQL_URL, reason="SLACK_AI_TEST_MSSQL_URL is not set: no live SQL Server to test "
                                             "against (see docs/DATABASE.md)"),
]


def _contract():
    path = Path(__file__).resolve().parents[1] / "unit" / "test_db_contract.py"
    spec = importlib.util.spec_from_file_location("db_contract_checks", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


CHECKS = _contract().CHECKS


@pytest.fixture()
def mssql_store(tmp_path: Path):
    from slack_ai_addon.storage.db import open_sql_store

    store = open_sql_store(MSSQL_URL, outbox_path=tmp_path / "outbox.jsonl")
    with store._tx() as cur:  # a clean slate per check
        for table in ("jobs", "messages", "llm_calls", "audit_log"):
            cur.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed table names)
    yield store
    store.close()


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_mssql_contract(mssql_store, check) -> None:
    check(mssql_store)


def test_mssql_concurrent_claims_from_threads(mssql_store) -> None:
    from slack_ai_addon.core.jobs import Job, JobKind

    ids = {mssql_store.add(Job(kind=JobKind.RENDER, request_text=f"job {i}")).id for i in range(40)}
    got: list[str] = []
    lock = threading.Lock()

    def worker(node: str) -> None:
        while (job := mssql_store.claim_next(node, 60)) is not None:
            with lock:
                got.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"node{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == len(set(got)) and set(got) == ids


def test_mssql_migrations_are_idempotent(mssql_store) -> None:
    from slack_ai_addon.storage.db import LATEST_VERSION

    assert mssql_store.migrate() == []
    assert mssql_store.schema_version() == LATEST_VERSION
