"""The farm's Slack budget (storage/db/budget.py): token buckets in the slack_budget table.

Real SQLite files shared by real processes; the SQL Server statements parsed as T-SQL; the
outage path (database down or hung) spending the node's local share; and the pacing layer
spending important updates before frame progress."""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from pymssql import _mssql

from slack_ai_addon.agent.pacing import UpdateCoalescer
from slack_ai_addon.core.jobs import NodeInfo
from slack_ai_addon.storage.db import backends, budget
from slack_ai_addon.storage.db.budget import Priority, SlackBudget
from slack_ai_addon.storage.db.outbox import Outbox
from slack_ai_addon.storage.db.sql import TSQL, Queries
from slack_ai_addon.storage.db.store import SqlJobStore
from tests.job_store import temp_job_store
from tests.unit.test_sql_tsql import RecordingConnection

pytestmark = pytest.mark.timeout(60)

PER_MINUTE = 600.0  # chat.update: the bucket refills (600 * 0.8 - 4) / 60 = 7.93 tokens a second


def _budget(store: Any, workspace: str = "T1", per_minute: float = PER_MINUTE) -> SlackBudget:
    return SlackBudget(store, workspace=workspace, updates_per_minute=per_minute, posts_per_second=1.0)


def _take_all(b: SlackBudget, priority: Priority = Priority.IMPORTANT, channel: str = "") -> int:
    n = 0
    while b.try_take(b.update, priority, channel) == 0.0:
        n += 1
        assert n < 100
    return n


# ------------------------------------------------------------------------------ the bucket


def test_a_full_bucket_gives_its_burst_then_refills_at_the_rate(tmp_path: Path) -> None:
    b = _budget(temp_job_store(tmp_path))
    spec = b.update
    assert spec.rate == pytest.approx((PER_MINUTE * 0.8 - 4) / 60)
    assert _take_all(b) == 4  # the burst, no more
    wait = b.try_take(spec, Priority.IMPORTANT)
    assert 0 < wait <= 1 / spec.rate + 0.05  # told how long until the next token
    time.sleep(2.5 / spec.rate)  # 2.5 tokens' worth
    assert _take_all(b) == 2
    assert b.taken["db"] == 6 and b.taken["local"] == 0


def test_progress_needs_more_than_the_reserve_important_sends_do_not(tmp_path: Path) -> None:
    b = _budget(temp_job_store(tmp_path))
    assert b.try_take(b.update, Priority.IMPORTANT) == 0.0  # 3 left
    assert b.try_take(b.update, Priority.PROGRESS) == 0.0  # 3 >= reserve 2 + 1: 2 left
    assert b.try_take(b.update, Priority.PROGRESS) > 0  # 2 left: kept for important sends
    assert b.try_take(b.update, Priority.IMPORTANT) == 0.0
    assert b.try_take(b.update, Priority.IMPORTANT) == 0.0
    assert b.try_take(b.update, Priority.IMPORTANT) > 0  # empty


def test_posts_have_one_bucket_per_channel(tmp_path: Path) -> None:
    b = _budget(temp_job_store(tmp_path))
    for channel in ("C1", "C2"):
        assert b.try_take(b.post, Priority.IMPORTANT, channel) == 0.0
        assert b.try_take(b.post, Priority.IMPORTANT, channel) == 0.0  # burst 2 per channel
        assert b.try_take(b.post, Priority.IMPORTANT, channel) > 0
    assert b.bucket(b.post, "C1") != b.bucket(b.post, "C2") != b.bucket(b.update)


def _taker(db: str, start_at: float, seconds: float, out: Any) -> None:
    store = SqlJobStore(backends.backend_for_url(f"sqlite:///{db}"), Outbox(Path(db).with_suffix(".outbox")),
                        migrate=False)
    b = _budget(store)
    stamps = []
    time.sleep(max(0.0, start_at - time.time()))
    while time.time() < start_at + seconds:
        wait = b.try_take(b.update, Priority.IMPORTANT)
        if wait == 0.0:
            stamps.append(time.time())
        else:
            time.sleep(min(wait, 0.05))
    out.put(stamps)


def test_two_processes_share_one_bucket_and_never_exceed_its_rate(tmp_path: Path) -> None:
    store = temp_job_store(tmp_path)  # migrated here; the takers open the same file
    db = str(store.backend.redacted_url).removeprefix("sqlite:///")
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    seconds = 2.0
    start_at = time.time() + 4.0  # both interpreters are up by then
    procs = [ctx.Process(target=_taker, args=(db, start_at, seconds, out)) for _ in range(2)]
    for p in procs:
        p.start()
    per_process = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(10)
    stamps = sorted(s for run in per_process for s in run)
    rate = _budget(None).update.rate
    assert all(len(run) >= 3 for run in per_process), [len(r) for r in per_process]  # both were served
    # Together they got one bucket's worth: the burst plus the rate, not twice that.
    assert len(stamps) <= 4 + rate * seconds + 1, len(stamps)
    assert len(stamps) >= 0.75 * rate * seconds, len(stamps)
    # ...and in no one-second window more than the burst plus one second of refill.
    most = max(sum(1 for s in stamps if t <= s < t + 1.0) for t in stamps)
    assert most <= 4 + rate + 1, most


# ------------------------------------------------------------------------------ outages


def test_a_database_that_is_down_gives_the_local_share_of_the_live_nodes(tmp_path: Path) -> None:
    store = temp_job_store(tmp_path)
    now = time.time()
    for node in ("n1", "n2", "n3"):  # two alive, one whose heartbeat stopped long ago
        store.upsert_node(NodeInfo(id=node, last_heartbeat=now if node != "n3" else now - 3600))
    b = _budget(store)
    assert b.try_take(b.update, Priority.IMPORTANT) == 0.0  # shared; reads the registry
    assert b.share() == 2

    def down() -> None:
        raise OSError("connection refused (injected)")

    store.fault_hook = down
    started = time.monotonic()
    granted = 0
    while time.monotonic() - started < 1.0:
        if b.try_take(b.update, Priority.IMPORTANT) == 0.0:
            granted += 1
        time.sleep(0.01)
    # Half the rate and half the burst: this node's share while it cannot ask the others.
    rate = b.update.rate
    assert 1 <= granted <= 4 / 2 + rate / 2 * 1.0 + 1, granted
    assert b.taken["local"] == granted
    # A final never waits on the database: a full local bucket answers at once.
    store.fault_hook = None
    b2 = _budget(store, workspace="T2")
    b2._db_down_until = time.monotonic() + 60  # noqa: SLF001 (as after a failure)
    t0 = time.monotonic()
    assert b2.acquire(b2.update, Priority.IMPORTANT, timeout=5.0)
    assert time.monotonic() - t0 < 0.5


def test_a_hung_database_costs_a_send_at_most_the_bounded_wait(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    store = temp_job_store(tmp_path)
    monkeypatch.setattr(budget, "DB_WAIT_S", 0.3)
    release = threading.Event()

    def hang() -> None:  # the database answers nothing
        release.wait(10)

    store.fault_hook = hang
    b = _budget(store)
    try:
        t0 = time.monotonic()
        assert b.try_take(b.update, Priority.IMPORTANT) == 0.0  # from the local share
        assert time.monotonic() - t0 < 1.0
        assert b.share() == budget.FALLBACK_NODES  # the registry never answered: a cautious share
        t0 = time.monotonic()
        b.try_take(b.update, Priority.IMPORTANT)  # no second wait while the database is marked down
        assert time.monotonic() - t0 < 0.1
    finally:
        release.set()
        store.fault_hook = None


def test_without_a_database_the_node_spends_the_whole_budget_alone() -> None:
    b = _budget(None)
    assert b.share() == 1
    assert _take_all(b) == 4 and b.taken["local"] == 4


# ------------------------------------------------------------------------------ SQL Server


def test_the_budget_statements_parse_as_tsql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[tuple[str, dict[str, Any] | None]] = []
    backend = backends.backend_for_url("mssql+pymssql://sa:pw@db.example:1433/slack_ai")
    monkeypatch.setattr(backend, "connect", lambda: RecordingConnection(log))
    store = SqlJobStore(backend, Outbox(tmp_path / "outbox.jsonl"))
    b = _budget(store)
    assert b.try_take(b.update, Priority.PROGRESS) == 0.0  # the recording cursor says 1 row changed
    assert b.try_take(b.post, Priority.IMPORTANT, "C1") == 0.0
    store.close()
    takes = [(s, p) for s, p in log if s.startswith("UPDATE slack_budget")]
    assert len(takes) == 2 and takes[0][1] is not None and takes[0][1]["need"] == 3.0
    q = Queries(TSQL)
    params: dict[str, Any] = {"bucket": "chat.update@T1", "now": 1.5e9, "rate": 0.5, "capacity": 4.0, "need": 1.0,
                              "tokens": 3.0}
    for sql in (q.budget_take(), q.budget_level(), q.budget_insert()):
        used = {k: v for k, v in params.items() if f"%({k})s" in sql}
        bound = _mssql.substitute_params(sql, used).decode()
        assert len(sqlglot.parse(bound, read="tsql", error_level=sqlglot.ErrorLevel.RAISE)) == 1, bound
        assert "LEAST" not in sql and "MIN(" not in sql  # CASE works on every SQL Server version


# ------------------------------------------------------------------------------ pacing


def test_the_coalescer_spends_stage_changes_and_finals_first_and_coalesces_progress(tmp_path: Path) -> None:
    # 60 chat.update a minute: (48 - 4) / 60 = 0.73 tokens a second, a burst of 4, reserve 2.
    b = _budget(temp_job_store(tmp_path), per_minute=60.0)
    sent: list[str] = []
    pool = ThreadPoolExecutor(2)
    co = UpdateCoalescer(lambda ch, ts, text, blocks: sent.append(text), pool, interval_s=0.05, budget=b)
    try:
        co.started("C1", "1.0")
        co.set("C1", "1.0", "stage: building", [], important=True)
        time.sleep(0.2)
        co.set("C1", "1.0", "stage: rendering", [], important=True)
        time.sleep(0.2)
        for frame in range(1, 30):  # frame progress, far faster than the budget
            co.set("C1", "1.0", f"frame {frame}", [])
            time.sleep(0.01)
        time.sleep(0.3)
        co.send_final("C1", "1.0", lambda: sent.append("final"), timeout=10)
    finally:
        co.stop()
        pool.shutdown()
    assert sent[:2] == ["stage: building", "stage: rendering"]
    assert sent[-1] == "final"
    progress = [s for s in sent if s.startswith("frame")]
    # 2 tokens left after the stages: progress needed 3, so at most the refill of ~0.6 s
    # (under one token) let one through; the rest was coalesced, and the final still went.
    assert len(progress) <= 1, sent


def test_a_row_created_by_another_node_at_the_same_moment_is_not_an_outage(tmp_path: Path) -> None:
    store = temp_job_store(tmp_path)
    b = _budget(store)
    assert b.try_take(b.update, Priority.IMPORTANT) == 0.0
    other = _budget(store, workspace="T2")
    # The INSERT of a first take loses the race (SQL Server has no BEGIN IMMEDIATE): the
    # primary key refuses the second row. That node asks again; it does not go local.
    with store._tx() as cur:  # noqa: SLF001
        cur.execute("INSERT INTO slack_budget (bucket, tokens, updated_at) VALUES (?, 0, ?)",
                    (other.bucket(other.update), time.time() + 3600))
    real_level = store.q.budget_level
    store.q.budget_level = lambda: "SELECT NULL AS tokens WHERE 0 = 1"  # as if the row were not there yet
    try:
        assert other.try_take(other.update, Priority.IMPORTANT) == 0.01
    finally:
        store.q.budget_level = real_level
    assert other._db_down_until == 0.0  # noqa: SLF001
    assert other.taken == {"db": 0, "local": 0}
