"""Every statement the SQL Server backend issues parses as T-SQL.

The MSSQL store runs its whole behaviour (migrations, every JobStore and ActivityRecorder
method, analytics, an outbox replay) against a recording fake DB-API connection that returns
canned rows. Each recorded statement is then bound exactly as pymssql binds it
(`_mssql.substitute_params`) and parsed with sqlglot's tsql dialect.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from pymssql import _mssql
from sqlglot import exp

from slack_ai_addon.core.jobs import Job, JobKind, JobOutput, JobStatus, NodeCapabilities, Requester
from slack_ai_addon.storage.db import backends
from slack_ai_addon.storage.db.outbox import Outbox
from slack_ai_addon.storage.db.schema import LATEST_VERSION
from slack_ai_addon.storage.db.sql import JOB_COLUMNS_V4
from slack_ai_addon.storage.db.store import SqlJobStore

EVIL = "'; DROP TABLE jobs; --"
BOBBY = "Robert'); --"


def _job_row() -> dict[str, Any]:
    job = Job(kind=JobKind.RENDER, request_text=EVIL, requester=Requester(user_name=BOBBY))
    row = {c: None for c, _ in JOB_COLUMNS_V4}
    row.update(id=job.id, kind="render", status="running", request_text=EVIL, user_name=BOBBY, attempts=1,
               failed_nodes="[]", lease_owner="n1", lease_expires_at=time.time() + 60, cancel_requested=0,
               created_at=job.created_at, updated_at=job.created_at, options="{}", result="{}", warnings="[]",
               timings="{}", outputs="[]", team_id="", channel_id="", user_id="U1", thread_ts="",
               response_url="", source="slack", parent_job_id="", error="", slack_ts="", correlation_id="c1")
    return row


def _canned(sql: str) -> list[dict[str, Any]]:
    if "FROM schema_version" in sql:
        return []
    if "OUTPUT inserted.cancel_requested" in sql:
        return [{"cancel_requested": 0}]
    if "OUTPUT inserted.*" in sql or sql.startswith("SELECT * FROM jobs") or "* FROM jobs WHERE 1 = 1" in sql:
        return [_job_row()]
    if sql.startswith("SELECT status FROM jobs"):
        return [{"status": "running"}]
    if sql.startswith("SELECT id, status, lease_owner"):
        return [{"id": "j1", "status": "running", "lease_owner": "n1", "failed_nodes": json.dumps(["n0", "n2"]),
                 "error": ""}]
    if sql.startswith("SELECT COUNT(*)"):
        return [{"n": 3}]
    if "GROUP BY status" in sql:
        return [{"status": "done", "jobs": 2}]
    if "day_utc" in sql:
        return [{"day_utc": "2025-01-01", "jobs": 2, "failed": 0, "render_s": 3.0}]
    if "key_id" in sql:
        return [{"key_id": "U1", "label": BOBBY, "jobs": 2, "render_s": 3.0}]
    if sql.startswith("SELECT render_s"):
        return [{"render_s": 1.0}, {"render_s": 2.0}]
    if "FROM llm_calls" in sql:
        return [{"provider": "openai", "calls": 1, "cost_usd": 0.01, "prompt_tokens": 5, "completion_tokens": 1,
                 "errors": 0}]
    return []


class RecordingCursor:
    def __init__(self, log: list[tuple[str, dict[str, Any] | None]]) -> None:
        self.log = log
        self.description: list[tuple[str, ...]] | None = None
        self._rows: list[tuple[Any, ...]] = []
        self.rowcount = -1

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self.log.append((sql, params))
        rows = _canned(sql)
        if rows:
            names = list(rows[0])
            self.description = [(n,) for n in names]
            self._rows = [tuple(r[n] for n in names) for r in rows]
        else:
            self.description = None if not sql.startswith("SELECT") else [("x",)]
            self._rows = []
        self.rowcount = 1 if sql.startswith(("UPDATE", "INSERT", "WITH")) else len(self._rows)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None


class RecordingConnection:
    def __init__(self, log: list[tuple[str, dict[str, Any] | None]]) -> None:
        self.log = log
        self.commits = 0

    def cursor(self) -> RecordingCursor:
        return RecordingCursor(self.log)

    def commit(self) -> None:
        self.commits += 1

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


def _exercise(store: SqlJobStore) -> None:
    """Every public operation, including the outage path and an outbox replay."""
    job = store.add(Job(kind=JobKind.RENDER, request_text=EVIL, requester=Requester(user_name=BOBBY)))
    store.get(job.id)
    store.claim_next("node-1", 60)
    store.claim_next("node-1", 60, (JobKind.RENDER, JobKind.ANALYZE))
    # Capability routing: the node's engines and tags travel as bound JSON arrays.
    store.claim_next("node-1", 60, None, NodeCapabilities(engines=("cycles", "eevee"), gpu="RTX (OPTIX)",
                                                          blender=50002, tags=(EVIL, "assets:props")))
    store.queued_requirements()
    store.fail_queued(job.id, EVIL)
    claimed = store.claim(job.id, "node-1", 60)
    assert claimed is not None
    store.renew_lease(claimed.lease, 60)
    store.set_slack_ts(job.id, "1700000000.000100")
    store.set_outputs(job.id, [JobOutput("image", "/tmp/x.png")])
    store.find_thread_job("C1", "1700000000.000100")
    for write, status in (("running", JobStatus.RUNNING), ("progress", None), ("uploading", JobStatus.UPLOADING),
                          ("final", JobStatus.DONE), ("release", JobStatus.QUEUED)):
        store.transition(claimed.lease, write, claimed, status)
    store.requeue_expired()
    from slack_ai_addon.core.jobs import NodeInfo

    store.upsert_node(NodeInfo(id="node-1", host=BOBBY, role="worker", state="idle"))
    store.list_nodes()
    store.request_cancel(job.id)
    store.list_jobs()
    store.list_jobs(user_id=BOBBY, statuses=(JobStatus.QUEUED, JobStatus.DONE), limit=5)
    store.count((JobStatus.QUEUED,))
    store.record_message(correlation_id="c", direction="in", text=EVIL, user_id=BOBBY)
    store.record_llm_call(correlation_id="c", provider="openai", requested_model="m", actual_model="m",
                          task="interpret", latency_ms=1.0, cost_usd=0.01)
    store.record_audit(actor=BOBBY, action="cancel", target=job.id, detail=EVIL, allowed=False)
    store.analytics(0.0)

    def down() -> None:
        raise OSError("connection refused (injected)")

    store.fault_hook = down
    store.transition(claimed.lease, "final", claimed, JobStatus.DONE)
    store.record_message(correlation_id="c", direction="out", text="buffered")
    store.fault_hook = None
    assert store.flush_outbox() == 2


@pytest.fixture()
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any] | None]]:
    log: list[tuple[str, dict[str, Any] | None]] = []
    backend = backends.backend_for_url("mssql+pymssql://sa:S3cret%21@db.example:1433/slack_ai")
    assert isinstance(backend, backends.MssqlBackend)
    monkeypatch.setattr(backend, "connect", lambda: RecordingConnection(log))
    store = SqlJobStore(backend, Outbox(tmp_path / "outbox.jsonl"))
    _exercise(store)
    store.close()
    return log


def test_every_statement_parses_as_tsql(recorded: list[tuple[str, dict[str, Any] | None]]) -> None:
    assert len(recorded) > 40
    for sql, params in recorded:
        bound = _mssql.substitute_params(sql, params).decode() if params else sql
        trees = sqlglot.parse(bound, read="tsql", error_level=sqlglot.ErrorLevel.RAISE)
        # One statement per call; the one batch is the migration lock (DECLARE, EXEC, IF).
        expected = 3 if "sp_getapplock" in sql else 1
        assert len(trees) == expected, f"{expected} statement(s) expected: {bound[:200]}"
        assert not any(list(t.find_all(exp.Drop)) for t in trees), bound[:200]
        # The template itself parses too, with @name parameters in place of %(name)s.
        template = sqlglot.parse(sql.replace("%(", "@").replace(")s", ""), read="tsql")
        assert len(template) == expected


def test_tsql_uses_the_documented_locking_and_output(recorded: list[tuple[str, dict[str, Any] | None]]) -> None:
    sqls = [s for s, _ in recorded]
    claim = next(s for s in sqls if s.startswith("WITH next_job"))
    assert "TOP (1)" in claim and "WITH (UPDLOCK, READPAST, ROWLOCK)" in claim
    assert "j.created_at, j.id) UPDATE next_job" in claim and "OUTPUT inserted.*" in claim
    assert "OPENJSON(j.failed_nodes)" in claim
    # Fair claims: ordered by the requester's recent use first, counted past locked rows.
    assert "SELECT TOP (1) j.* FROM jobs AS j WITH (UPDLOCK, READPAST, ROWLOCK) LEFT JOIN (SELECT x.user_id, " \
        "COUNT(*) AS n FROM (SELECT r.id, r.user_id FROM jobs AS r WITH (READPAST) WHERE" in claim
    assert "ORDER BY COALESCE(u.n, 0), j.created_at, j.id) UPDATE next_job" in claim
    routed = next(s for s in sqls if s.startswith("WITH next_job") and "req_gpu" in s)
    assert "OPENJSON(j.req_tags) AS rt" in routed and "OPENJSON(%(node_tags)s) AS nt" in routed
    assert "OPENJSON(%(node_engines)s) AS ne" in routed
    assert any("EXEC @lock_result = sp_getapplock" in s for s in sqls)
    assert not any("LIMIT" in s or "RETURNING" in s or "json_each" in s for s in sqls)


def test_values_are_always_bound_never_formatted(recorded: list[tuple[str, dict[str, Any] | None]]) -> None:
    for sql, params in recorded:
        assert EVIL not in sql and BOBBY not in sql and "S3cret" not in sql
        if params:
            bound = _mssql.substitute_params(sql, params).decode()
            if any(v == EVIL for v in params.values()):
                assert "N'''; DROP TABLE jobs; --'" in bound  # quoted as one string literal


def test_migrations_run_inside_the_applock(recorded: list[tuple[str, dict[str, Any] | None]]) -> None:
    sqls = [s for s, _ in recorded]
    lock = sqls.index(next(s for s in sqls if "EXEC @lock_result = sp_getapplock" in s))
    assert "IF @lock_result < 0 RAISERROR" in sqls[lock]  # a lock timeout stops the migration
    first_create = sqls.index(next(s for s in sqls if s.startswith("CREATE TABLE jobs")))
    assert lock < first_create
    assert sqls[lock + 1].startswith("IF OBJECT_ID(N'schema_version', N'U') IS NULL CREATE TABLE")
    assert sum(1 for s in sqls if s.startswith("INSERT INTO schema_version")) == LATEST_VERSION


def test_password_never_in_redacted_url() -> None:
    url = "mssql+pymssql://sa:S3cret%21@db.example:1433/slack_ai"
    assert "S3cret" not in backends.redact_url(url)
    kind, params = backends.parse_database_url(url)
    assert kind == "mssql" and params.password == "S3cret!" and params.database == "slack_ai"
