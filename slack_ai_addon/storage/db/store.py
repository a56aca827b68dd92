"""`SqlJobStore`: the JobStore + ActivityRecorder over SQLite or SQL Server.

One class for both backends; the SQL comes from `sql.Queries` for the backend's dialect.
Each thread gets its own connection (neither driver's connections are thread-safe).
Every unit of work is one write transaction. When the database is unreachable, `save`
and the `record_*` calls go to the outbox and are replayed, in order, by the next call
that reaches the database (or by `flush_outbox()`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ...core.jobs import (
    FAIR_SHARE_WINDOW_S,
    LIVE_STATUSES,
    MAX_NODE_FAILURES,
    WRITE_COLUMNS,
    Fenced,
    Job,
    JobKind,
    JobOutput,
    JobRequirements,
    JobStatus,
    Lease,
    NodeCapabilities,
    NodeInfo,
    Renewal,
    Requester,
    allowed_from,
)
from ...textutil import clip, fit_request
from .backends import Backend, DatabaseUnavailable
from .outbox import Outbox, StillUnavailable
from .schema import LATEST_VERSION, MIGRATION_LOCK_RESOURCE, MIGRATIONS
from .sql import COLUMN_LIMITS, HISTORY_TABLES, JOB_COLUMNS_V6, NODE_COLUMNS_V6, Queries, in_params

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 40_000  # free text in history rows (messages, audit details, errors)
LIVE = tuple(s.value for s in LIVE_STATUSES)
_JSON_COLUMNS = {c for c, k in JOB_COLUMNS_V6 if k == "json"}
_KINDS = dict(JOB_COLUMNS_V6)
_NODE_PLAIN = tuple((c, k) for c, k in NODE_COLUMNS_V6 if c != "tags")  # tags: a JSON list


def _clip_column(kind: str, value: str) -> str:
    limit = COLUMN_LIMITS.get(kind)
    if limit is None:
        return value
    # Bounded columns hold ids and names: cut short without a note (the note would not fit).
    return value[:limit]


def job_to_row(job: Job) -> dict[str, Any]:
    r = job.requester
    render_s = job.timings.get("render_s", job.timings.get("render_total_s"))
    row: dict[str, Any] = {
        "id": job.id, "kind": job.kind.value, "status": job.status.value,
        "team_id": r.team_id, "channel_id": r.channel_id, "user_id": r.user_id, "user_name": r.user_name,
        "thread_ts": r.thread_ts, "response_url": r.response_url, "source": r.source,
        "request_text": job.request_text, "spec": job.spec, "parent_job_id": job.parent_job_id,
        "options": job.options, "result": job.result, "warnings": job.warnings, "attempts": int(job.attempts),
        "failed_nodes": job.failed_nodes, "lease_owner": job.lease_owner,
        "lease_expires_at": float(job.lease_expires_at), "cancel_requested": 1 if job.cancel_requested else 0,
        "timings": job.timings, "outputs": [o.__dict__ for o in job.outputs], "error": job.error,
        "slack_ts": job.slack_ts, "created_at": float(job.created_at), "updated_at": float(job.updated_at),
        "correlation_id": job.correlation_id, "render_s": float(render_s) if render_s is not None else None,
        "progress": job.progress,
        "req_engine": job.requirements.engine, "req_gpu": 1 if job.requirements.gpu else 0,
        "req_blender": int(job.requirements.blender), "req_tags": list(job.requirements.tags),
        "claimed_at": float(job.claimed_at) if job.claimed_at else None,
    }
    for col in _JSON_COLUMNS:
        row[col] = json.dumps(row[col], default=str)
    for col, kind in _KINDS.items():
        if isinstance(row[col], str):
            row[col] = _clip_column(kind, row[col])
    return row


def row_to_job(row: dict[str, Any]) -> Job:
    def js(col: str, default: Any) -> Any:
        raw = row.get(col)
        return json.loads(raw) if raw else default

    return Job(
        id=row["id"], kind=JobKind(row["kind"]), status=JobStatus(row["status"]),
        requester=Requester(team_id=row["team_id"] or "", channel_id=row["channel_id"] or "",
                            user_id=row["user_id"] or "", user_name=row["user_name"] or "",
                            thread_ts=row["thread_ts"] or "", response_url=row["response_url"] or "",
                            source=row["source"] or ""),
        request_text=row["request_text"] or "", spec=js("spec", None), parent_job_id=row["parent_job_id"] or "",
        options=js("options", {}), result=js("result", {}), warnings=js("warnings", []),
        attempts=int(row["attempts"] or 0), failed_nodes=js("failed_nodes", []),
        lease_owner=row["lease_owner"] or "", lease_expires_at=float(row["lease_expires_at"] or 0.0),
        cancel_requested=bool(row["cancel_requested"]), timings=js("timings", {}),
        outputs=[JobOutput(**o) for o in js("outputs", [])], error=row["error"] or "",
        slack_ts=row["slack_ts"] or "", created_at=float(row["created_at"]), updated_at=float(row["updated_at"]),
        correlation_id=row["correlation_id"] or "", progress=js("progress", {}),
        # Rows written before migration 6 (or by an older release) have NULL requirements.
        requirements=JobRequirements(engine=row.get("req_engine") or "", gpu=bool(row.get("req_gpu")),
                                     blender=int(row.get("req_blender") or 0),
                                     tags=tuple(str(t) for t in js("req_tags", []))),
        claimed_at=float(row.get("claimed_at") or 0.0),
    )


def _fit_request(job: Job) -> Job:
    """Huge requests are cut to the job limit with a warning, the same cut the pipeline makes."""
    job.request_text, warning = fit_request(job.request_text)
    if warning:
        job.warnings.append(warning)
    return job


class SqlJobStore:
    """JobStore + ActivityRecorder on a SQL database. Thread- and multi-process safe."""

    def __init__(self, backend: Backend, outbox: Outbox, *, migrate: bool = True) -> None:
        self.backend = backend
        self.q = Queries(backend.dialect)
        self.outbox = outbox
        # Test hook: called before every database round trip; raise a driver error from it
        # to simulate an outage.
        self.fault_hook: Callable[[], None] | None = None
        # Lease times come from here; a model-based test drives its own clock.
        self.clock: Callable[[], float] = time.time
        self._local = threading.local()
        self._conns: list[tuple[int | None, Any]] = []  # (thread ident, connection)
        self._conns_lock = threading.Lock()
        self._closed = False
        if migrate:
            self.migrate()

    # ------------------------------------------------------------------ plumbing
    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.backend.connect()
            self._local.conn = conn
            with self._conns_lock:
                # Threads come and go (a dispatcher per CLI job, pools shut down): close the
                # connections of threads that ended, or they would pile up until close().
                alive = {t.ident for t in threading.enumerate()}
                for owner, old in [c for c in self._conns if c[0] not in alive]:
                    self._conns.remove((owner, old))
                    try:
                        old.close()
                    except Exception:
                        log.debug("closing a dead thread's connection failed", exc_info=True)
                self._conns.append((threading.get_ident(), conn))
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._conns_lock:
                self._conns = [c for c in self._conns if c[1] is not conn]
            try:
                conn.close()
            except Exception:  # already broken; nothing to save
                log.debug("closing a broken connection failed", exc_info=True)

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One write transaction; driver outages become DatabaseUnavailable."""
        if self._closed:
            raise DatabaseUnavailable("job store is closed")
        try:
            if self.fault_hook is not None:
                self.fault_hook()
            conn = self._conn()
            cur = conn.cursor()
            self.backend.begin(conn, cur)
        except self.backend.unavailable_errors as exc:
            self._drop_conn()
            raise DatabaseUnavailable(f"database unavailable ({self.backend.redacted_url}): "
                                      f"{type(exc).__name__}: {exc}") from exc
        try:
            yield cur
            self.backend.commit(conn, cur)
        except BaseException as exc:
            try:
                self.backend.rollback(conn, cur)
            except Exception:
                self._drop_conn()
            if isinstance(exc, self.backend.unavailable_errors) and not isinstance(exc, self.backend.integrity_errors):
                self._drop_conn()
                raise DatabaseUnavailable(f"database unavailable ({self.backend.redacted_url}): "
                                          f"{type(exc).__name__}: {exc}") from exc
            raise

    @staticmethod
    def _exec(cur: Any, sql: str, params: dict[str, Any] | None = None) -> Any:
        if params:
            cur.execute(sql, params)
        else:
            cur.execute(sql)
        return cur

    @staticmethod
    def _rows(cur: Any) -> list[dict[str, Any]]:
        if cur.description is None:
            return []
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=False)) for row in cur.fetchall()]

    def close(self) -> None:
        """Close every connection this store opened (from any thread)."""
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for _, conn in conns:
            try:
                conn.close()
            except Exception:
                log.debug("closing a connection failed", exc_info=True)

    # ------------------------------------------------------------------ migrations
    def migrate(self, target: int | None = None) -> list[int]:
        """Apply pending migrations up to `target` (default: all). Returns the versions applied."""
        target = LATEST_VERSION if target is None else target
        applied_now: list[int] = []
        with self._tx() as cur:
            lock = self.q.migration_lock()
            if lock:
                self._exec(cur, lock, {"resource": MIGRATION_LOCK_RESOURCE})
            self._exec(cur, self.q.create_schema_version())
            done = {int(r["version"]) for r in self._rows(self._exec(cur, self.q.applied_versions()))}
            for m in MIGRATIONS:
                if m.version in done or m.version > target:
                    continue
                for statement in m.statements(self.q):
                    self._exec(cur, statement)
                self._exec(cur, self.q.record_version(),
                           {"version": m.version, "name": m.name, "applied_at": time.time()})
                applied_now.append(m.version)
        if applied_now:
            log.info("database migrated", extra={"versions": applied_now, "db": self.backend.redacted_url})
        return applied_now

    def schema_version(self) -> int:
        with self._tx() as cur:
            rows = self._rows(self._exec(cur, self.q.applied_versions()))
        return max((int(r["version"]) for r in rows), default=0)

    # ------------------------------------------------------------------ outbox
    def flush_outbox(self) -> int:
        """Write buffered records now; returns how many (what stays waits for the next try)."""
        return self.outbox.replay(self._apply_outbox_entry)

    def pending_writes(self, job_id: str) -> int:
        return self.outbox.entries_for_job(job_id)

    def outbox_length(self) -> int:
        return len(self.outbox.entries())

    # ------------------------------------------------------------------ node registry
    def upsert_node(self, node: NodeInfo) -> None:
        # UPDATE, then INSERT when there was no row: the same two statements on both
        # backends, in one transaction (a node id is written by one node only).
        row = {c: (_clip_column(k, v) if isinstance(v := getattr(node, c), str) else v) for c, k in _NODE_PLAIN}
        row["tags"] = json.dumps(list(node.tags))
        with self._tx() as cur:
            if not self._exec(cur, self.q.update_node(), row).rowcount:
                self._exec(cur, self.q.insert_node(), row)

    def list_nodes(self) -> list[NodeInfo]:
        with self._tx() as cur:
            rows = self._rows(self._exec(cur, self.q.list_nodes()))
        blank = NodeInfo(id="")
        return [NodeInfo(**{c: (r[c] if r[c] is not None else getattr(blank, c)) for c, _ in _NODE_PLAIN},
                         tags=[str(t) for t in json.loads(r.get("tags") or "[]")])
                for r in rows]

    def _apply_outbox_entry(self, entry: dict[str, Any]) -> None:
        data = entry["data"]
        kind = entry["type"]
        try:
            if kind == "transition":
                lease = Lease(str(data["job_id"]), str(data["owner"]), int(data["attempt"]))
                status = JobStatus(data["status"]) if data.get("status") else None
                result = self._transition_now(lease, str(data["write"]), dict(data["row"]), status,
                                              float(data["at"]))
                if result is Fenced.LOST:
                    # The lease moved on while we were cut off (expired, another node took the
                    # job): the newer state wins; the dropped write is noted in the audit log.
                    log.warning("outbox: dropped a stale %s write of job %s (lease lost)", data["write"],
                                lease.job_id)
                    self._insert_record("audit_log", {
                        "record_key": entry["key"], "created_at": self.clock(), "actor": "outbox",
                        "action": "stale_write_dropped", "target": lease.job_id,
                        "detail": f"{data['write']} by {lease.owner} attempt {lease.attempt}: lease lost",
                        "allowed": 0})
            elif kind in HISTORY_TABLES:
                self._insert_record(kind, data)
            else:
                raise ValueError(f"unknown outbox record type {kind!r}")
        except DatabaseUnavailable as exc:
            raise StillUnavailable(str(exc)) from exc

    def _catch_up(self) -> None:
        """Replay the outbox before a new write, so records stay in order. Raises
        DatabaseUnavailable when the database is still down."""
        if self.outbox.pending():
            self.flush_outbox()
            if self.outbox.pending():
                raise DatabaseUnavailable("database unavailable: buffered writes are still waiting")

    # ------------------------------------------------------------------ JobStore
    def add(self, job: Job) -> Job:
        job = _fit_request(job.copy())
        row = job_to_row(job)
        with self._tx() as cur:
            try:
                self._exec(cur, self.q.insert_job(), row)
            except self.backend.integrity_errors:
                raise ValueError(f"job {job.id} exists") from None
        return job.copy()

    def get(self, job_id: str) -> Job | None:
        with self._tx() as cur:
            rows = self._rows(self._exec(cur, self.q.get_job(), {"id": job_id}))
        return row_to_job(rows[0]) if rows else None

    def transition(self, lease: Lease, write: str, job: Job, status: JobStatus | None = None) -> Fenced:
        columns = WRITE_COLUMNS[write]
        if ("status" in columns) != (status is not None):
            raise ValueError(f"a {write} write {'needs' if 'status' in columns else 'takes no'} status")
        job = _fit_request(job.copy())
        if status is not None:
            job.status = status
        if write == "release":
            job.lease_owner = ""
        if write in ("final", "release"):
            job.progress = {}  # no render is going on any more
        full = job_to_row(job)
        row = {c: full[c] for c in columns}
        now = self.clock()
        try:
            self._catch_up()
            return self._transition_now(lease, write, row, status, now)
        except DatabaseUnavailable as exc:
            entry = {"job_id": lease.job_id, "owner": lease.owner, "attempt": lease.attempt, "write": write,
                     "status": status.value if status is not None else "", "row": row, "at": now}
            if write == "progress":
                return Fenced.FAILED  # stale by the next beat: not worth buffering
            log.warning("database unavailable; %s write of job %s buffered: %s", write, lease.job_id, exc)
            if self.outbox.append("transition", uuid.uuid4().hex, entry):
                return Fenced.BUFFERED
            return Fenced.FAILED

    def _transition_now(self, lease: Lease, write: str, row: dict[str, Any], status: JobStatus | None,
                        now: float) -> Fenced:
        allowed = allowed_from(status) if status is not None else LIVE_STATUSES
        columns = WRITE_COLUMNS[write]
        params = dict(row, id=lease.job_id, owner=lease.owner, attempt=lease.attempt, now=now,
                      **in_params("old", [s.value for s in allowed]))
        with self._tx() as cur:
            changed = self._exec(cur, self.q.fenced_update(columns, len(allowed)), params).rowcount
        return Fenced.APPLIED if changed else Fenced.LOST

    def _claim(self, sql: str, params: dict[str, Any]) -> Job | None:
        with self._tx() as cur:
            rows = self._rows(self._exec(cur, sql, params))
        return row_to_job(rows[0]) if rows else None

    def _claim_params(self, owner: str, lease_s: float) -> dict[str, Any]:
        now = self.clock()
        return {"claimed": JobStatus.CLAIMED.value, "queued": JobStatus.QUEUED.value, "owner": owner,
                "expires": now + lease_s, "now": now}

    def claim_next(self, owner: str, lease_s: float, kinds: tuple[JobKind, ...] | None = None,
                   capabilities: NodeCapabilities | None = None) -> Job | None:
        self._catch_up()  # buffered saves first: a job finished during an outage is not claimable
        kind_values = [k.value for k in kinds] if kinds is not None else []
        if kinds is not None and not kind_values:
            return None
        params = dict(self._claim_params(owner, lease_s), **in_params("kind", kind_values), **in_params("live", LIVE))
        params["recent_since"] = params["now"] - FAIR_SHARE_WINDOW_S
        if capabilities is not None:
            params.update(node_engines=json.dumps(list(capabilities.engines)),
                          node_tags=json.dumps(list(capabilities.tags)),
                          node_gpu=1 if capabilities.gpu else 0, node_blender=int(capabilities.blender))
        sql = self.q.claim_next(len(kind_values), capabilities=capabilities is not None)
        return self._claim(sql, params)

    def queued_requirements(self) -> list[tuple[str, JobRequirements]]:
        with self._tx() as cur:
            rows = self._rows(self._exec(cur, self.q.queued_requirements(), {"queued": JobStatus.QUEUED.value}))
        return [(r["id"], JobRequirements(engine=r["req_engine"] or "", gpu=bool(r["req_gpu"]),
                                          blender=int(r["req_blender"] or 0),
                                          tags=tuple(str(t) for t in json.loads(r["req_tags"] or "[]"))))
                for r in rows]

    def fail_queued(self, job_id: str, error: str) -> Job | None:
        with self._tx() as cur:
            rows = self._rows(self._exec(cur, self.q.fail_queued(), {
                "failed": JobStatus.FAILED.value, "queued": JobStatus.QUEUED.value,
                "error": clip(error, MAX_TEXT_CHARS, say_length=True), "now": self.clock(), "id": job_id}))
        return row_to_job(rows[0]) if rows else None

    def claim(self, job_id: str, owner: str, lease_s: float) -> Job | None:
        return self._claim(self.q.claim_one(), dict(self._claim_params(owner, lease_s), id=job_id))

    def renew_lease(self, lease: Lease, lease_s: float) -> Renewal:
        params = dict({"id": lease.job_id, "owner": lease.owner, "attempt": lease.attempt,
                       "expires": self.clock() + lease_s}, **in_params("live", LIVE))
        try:
            with self._tx() as cur:
                rows = self._rows(self._exec(cur, self.q.renew_lease(), params))
        except DatabaseUnavailable as exc:
            # We cannot tell; calling it lost would stop a healthy render.
            log.warning("database unavailable; lease of %s not renewed this beat: %s", lease.job_id, exc)
            return Renewal.UNKNOWN
        if not rows:
            return Renewal.LOST
        return Renewal.CANCEL if rows[0]["cancel_requested"] else Renewal.KEPT

    def requeue_expired(self, now: float | None = None) -> list[str]:
        # Buffered saves first: a job this node finished while the database was down still
        # looks "running" with an old lease, and must not be handed to another node.
        self._catch_up()
        now = self.clock() if now is None else now
        ids: list[str] = []
        with self._tx() as cur:
            params = dict({"now": now}, **in_params("live", LIVE))
            expired = self._rows(self._exec(cur, self.q.expired_leases(), params))
            for row in expired:
                failed = json.loads(row["failed_nodes"] or "[]")
                owner = row["lease_owner"] or ""
                if owner and owner not in failed:
                    failed.append(owner)
                error = row["error"] or ""
                if len(failed) >= MAX_NODE_FAILURES:
                    status = JobStatus.FAILED.value
                    error = f"failed on {len(failed)} nodes (lease expired)"
                else:
                    status = JobStatus.QUEUED.value
                changed = self._exec(cur, self.q.requeue_one(), {
                    "status": status, "failed_nodes": json.dumps(failed), "error": error, "now": now,
                    "id": row["id"], "old_status": row["status"], "old_owner": owner}).rowcount
                if changed:
                    ids.append(row["id"])
        return ids

    def request_cancel(self, job_id: str) -> Job | None:
        now = self.clock()
        with self._tx() as cur:
            self._exec(cur, self.q.cancel_queued(), {"cancelled": JobStatus.CANCELLED.value, "queued":
                                                    JobStatus.QUEUED.value, "error": "cancelled before it started",
                                                    "now": now, "id": job_id})
            self._exec(cur, self.q.cancel_running(), dict({"now": now, "id": job_id}, **in_params("live", LIVE)))
            rows = self._rows(self._exec(cur, self.q.get_job(), {"id": job_id}))
        return row_to_job(rows[0]) if rows else None

    def set_slack_ts(self, job_id: str, ts: str) -> None:
        with self._tx() as cur:
            self._exec(cur, self.q.set_slack_ts(), {"ts": _clip_column("name", ts), "now": self.clock(),
                                                    "id": job_id})

    def set_outputs(self, job_id: str, outputs: list[JobOutput]) -> None:
        with self._tx() as cur:
            self._exec(cur, self.q.set_outputs(), {"outputs": json.dumps([o.__dict__ for o in outputs]),
                                                   "now": self.clock(), "id": job_id})

    def find_thread_job(self, channel_id: str, thread_ts: str) -> Job | None:
        if not channel_id or not thread_ts:
            return None
        with self._tx() as cur:
            rows = self._rows(self._exec(cur, self.q.find_thread_job(), {
                "channel": channel_id, "ts": thread_ts, "kind": JobKind.RENDER.value}))
        return row_to_job(rows[0]) if rows else None

    def list_jobs(self, *, user_id: str = "", statuses: tuple[JobStatus, ...] | None = None,
                  limit: int = 20) -> list[Job]:
        if statuses is not None and not statuses:
            return []
        values = [s.value for s in statuses] if statuses else []
        params: dict[str, Any] = dict({"limit": max(0, int(limit))}, **in_params("st", values))
        if user_id:
            params["user_id"] = user_id
        with self._tx() as cur:
            rows = self._rows(self._exec(cur, self.q.list_jobs(by_user=bool(user_id), statuses=len(values)), params))
        return [row_to_job(r) for r in rows]

    def count(self, statuses: tuple[JobStatus, ...]) -> int:
        if not statuses:
            return 0
        with self._tx() as cur:
            row = self._exec(cur, self.q.count_jobs(len(statuses)),
                             in_params("st", [s.value for s in statuses])).fetchone()
        return int(row[0])

    # ------------------------------------------------------------------ ActivityRecorder
    def _insert_record(self, table: str, data: dict[str, Any]) -> None:
        kinds = dict(HISTORY_TABLES[table])
        params = {}
        for col, kind in kinds.items():
            value = data.get(col, 0 if kind in ("int", "float") else "")
            if isinstance(value, str):
                value = clip(value, MAX_TEXT_CHARS, say_length=True) if kind == "text" else _clip_column(kind, value)
            params[col] = value
        with self._tx() as cur:
            self._exec(cur, self.q.insert_record(table), params)

    def _record(self, table: str, data: dict[str, Any]) -> None:
        data = dict(data, record_key=uuid.uuid4().hex, created_at=time.time())
        try:
            self._catch_up()
            self._insert_record(table, data)
        except DatabaseUnavailable as exc:
            log.warning("database unavailable; %s record buffered in the outbox: %s", table, exc)
            self.outbox.append(table, data["record_key"], data)
        except Exception:  # the contract: history never breaks the caller's work
            log.exception("could not record %s", table)

    def record_message(self, *, correlation_id: str, direction: str, channel_id: str = "",
                       user_id: str = "", thread_ts: str = "", ts: str = "", kind: str = "",
                       text: str = "", job_id: str = "") -> None:
        """direction: "in" (a Slack request) or "out" (a reply we sent)."""
        self._record("messages", {"correlation_id": correlation_id, "direction": direction,
                                  "channel_id": channel_id, "user_id": user_id, "thread_ts": thread_ts,
                                  "ts": ts, "kind": kind, "body": text, "job_id": job_id})

    def record_llm_call(self, *, correlation_id: str, provider: str, requested_model: str,
                        actual_model: str, task: str, latency_ms: float, prompt_tokens: int = 0,
                        completion_tokens: int = 0, cost_usd: float = 0.0, error_class: str = "",
                        job_id: str = "") -> None:
        self._record("llm_calls", {"correlation_id": correlation_id, "provider": provider,
                                   "requested_model": requested_model, "actual_model": actual_model,
                                   "task": task, "latency_ms": float(latency_ms),
                                   "prompt_tokens": int(prompt_tokens), "completion_tokens": int(completion_tokens),
                                   "cost_usd": float(cost_usd), "error_class": error_class, "job_id": job_id})

    def record_audit(self, *, actor: str, action: str, target: str = "", detail: str = "",
                     allowed: bool = True) -> None:
        self._record("audit_log", {"actor": actor, "action": action, "target": target, "detail": detail,
                                   "allowed": 1 if allowed else 0})

    # ------------------------------------------------------------------ analytics
    def analytics(self, since: float, *, top: int = 5) -> dict[str, Any]:
        """Raw aggregates since an epoch time; `storage.stats.build_stats` shapes them."""
        with self._tx() as cur:
            by_status = self._rows(self._exec(cur, self.q.stats_by_status(), {"since": since}))
            per_day = self._rows(self._exec(cur, self.q.stats_per_day(),
                                            {"since": since, "failed": JobStatus.FAILED.value}))
            users = self._rows(self._exec(cur, self.q.stats_top("user_id", "user_name"),
                                          {"since": since, "limit": top}))
            channels = self._rows(self._exec(cur, self.q.stats_top("channel_id", "channel_id"),
                                             {"since": since, "limit": top}))
            render = self._rows(self._exec(cur, self.q.stats_render_seconds(),
                                           {"since": since, "done": JobStatus.DONE.value}))
            llm = self._rows(self._exec(cur, self.q.stats_llm(), {"since": since}))
            feedback = self._rows(self._exec(cur, self.q.stats_feedback(), {"since": since}))
        return {
            "by_status": {r["status"]: int(r["jobs"]) for r in by_status},
            "per_day": [{"day": str(r["day_utc"]), "jobs": int(r["jobs"]), "failed": int(r["failed"] or 0),
                         "render_s": float(r["render_s"] or 0)} for r in per_day],
            "top_users": [{"user_id": r["key_id"], "user_name": r["label"] or "", "jobs": int(r["jobs"]),
                           "render_s": float(r["render_s"] or 0)} for r in users],
            "top_channels": [{"channel_id": r["key_id"], "jobs": int(r["jobs"]),
                              "render_s": float(r["render_s"] or 0)} for r in channels],
            "render_seconds": [float(r["render_s"]) for r in render],
            "llm_by_provider": [{"provider": r["provider"], "calls": int(r["calls"]),
                                 "cost_usd": float(r["cost_usd"] or 0),
                                 "prompt_tokens": int(r["prompt_tokens"] or 0),
                                 "completion_tokens": int(r["completion_tokens"] or 0),
                                 "errors": int(r["errors"] or 0)} for r in llm],
            "feedback": {str(r["kind"]).split(":", 1)[1]: int(r["clicks"]) for r in feedback},
        }

    # ------------------------------------------------------------------ quotas (core/admission.py)
    def quota_usage(self, scope: str, key: str, *, minute_since: float, day_since: float,
                    open_statuses: tuple[JobStatus, ...]) -> dict[str, float]:
        """One user's or channel's use, counted from the jobs table: `recent` jobs created
        since `minute_since` and the `oldest_recent` of them (0 when none), `render_s` of the
        jobs created since `day_since`, and `open` jobs in `open_statuses`."""
        values = [s.value for s in open_statuses]
        with self._tx() as cur:
            window = self._rows(self._exec(cur, self.q.quota_window(scope), {
                "key": key, "minute_since": minute_since, "day_since": day_since,
                "since": min(minute_since, day_since)}))
            row = self._exec(cur, self.q.quota_open(scope, len(values)),
                             dict({"key": key}, **in_params("st", values))).fetchone()
        w = window[0] if window else {}
        return {"recent": float(w.get("recent") or 0), "oldest_recent": float(w.get("oldest_recent") or 0.0),
                "render_s": float(w.get("render_s") or 0.0), "open": float(row[0]) if row else 0.0}
