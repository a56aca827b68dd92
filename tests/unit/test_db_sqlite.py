"""SQLite backend: migrations, multi-process claims, outage buffering through the outbox."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import time
from pathlib import Path

import pytest

from slack_ai_addon.core.jobs import Fenced, Job, JobKind, JobStatus, Renewal
from slack_ai_addon.storage.db import LATEST_VERSION, MIGRATIONS, DatabaseUnavailable, open_sql_store


def _open(tmp_path: Path, **kw):
    return open_sql_store(f"sqlite:///{tmp_path / 'jobs.db'}", outbox_path=tmp_path / "outbox.jsonl", **kw)


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def test_migrations_from_empty_are_recorded_and_idempotent(tmp_path: Path) -> None:
    store = _open(tmp_path)
    assert store.schema_version() == LATEST_VERSION
    assert {"jobs", "messages", "llm_calls", "audit_log", "schema_version"} <= _tables(tmp_path / "jobs.db")
    assert store.migrate() == []  # a second start applies nothing
    store.close()
    again = _open(tmp_path)
    assert again.migrate() == []
    conn = sqlite3.connect(tmp_path / "jobs.db")
    assert [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")] == \
        [m.version for m in MIGRATIONS]
    conn.close()
    again.close()


@pytest.mark.parametrize("old_version", [m.version for m in MIGRATIONS[:-1]])
def test_migrations_from_each_older_version_keep_data(tmp_path: Path, old_version: int) -> None:
    old = _open(tmp_path, migrate=False)
    assert old.migrate(target=old_version) == list(range(1, old_version + 1))
    # Write a job with the old schema's columns only, as an old release would have.
    conn = sqlite3.connect(tmp_path / "jobs.db")
    conn.execute("INSERT INTO jobs (id, kind, status, request_text, attempts, failed_nodes, lease_expires_at, "
                 "cancel_requested, created_at, updated_at, team_id, channel_id, user_id, user_name, thread_ts, "
                 "response_url, source, parent_job_id, lease_owner, error, slack_ts, correlation_id) "
                 "VALUES ('old-1', 'render', 'queued', 'a cube', 0, '[]', 0, 0, 1, 1, '', '', 'U1', '', '', '', "
                 "'cli', '', '', '', '', 'c')")
    conn.commit()
    conn.close()
    old.close()
    new = _open(tmp_path)
    assert new.schema_version() == LATEST_VERSION
    job = new.get("old-1")
    assert job is not None and job.request_text == "a cube" and job.spec is None and job.options == {}
    assert new.claim_next("n1", 60).id == "old-1"
    new.close()


def _migrate_worker(url: str, outbox: str, q: mp.Queue) -> None:
    from slack_ai_addon.storage.db import open_sql_store as open_store

    store = open_store(url, outbox_path=Path(outbox))
    q.put(store.schema_version())
    store.close()


def test_two_nodes_starting_at_once_migrate_once(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    procs = [ctx.Process(target=_migrate_worker, args=(url, str(tmp_path / f"o{i}.jsonl"), q)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [q.get(timeout=5), q.get(timeout=5)] == [LATEST_VERSION, LATEST_VERSION]
    conn = sqlite3.connect(tmp_path / "jobs.db")
    assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def _claim_worker(url: str, outbox: str, node: str, q: mp.Queue) -> None:
    from slack_ai_addon.storage.db import open_sql_store as open_store

    store = open_store(url, outbox_path=Path(outbox))
    got = []
    while (job := store.claim_next(node, 60)) is not None:
        got.append(job.id)
    store.close()
    q.put((node, got))


def test_concurrent_claims_from_four_processes_never_share_a_job(tmp_path: Path) -> None:
    store = _open(tmp_path)
    ids = {store.add(Job(kind=JobKind.RENDER, request_text=f"job {i}")).id for i in range(120)}
    store.close()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    procs = [ctx.Process(target=_claim_worker, args=(url, str(tmp_path / f"o{i}.jsonl"), f"node{i}", q))
             for i in range(4)]
    for p in procs:
        p.start()
    results = dict(q.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    claimed = [job_id for got in results.values() for job_id in got]
    assert len(claimed) == len(set(claimed)), "a job was handed to two nodes"
    assert set(claimed) == ids
    check = _open(tmp_path)
    assert check.count((JobStatus.CLAIMED,)) == 120
    owners = {j.id: j.lease_owner for j in check.list_jobs(limit=200)}
    for node, got in results.items():
        assert all(owners[j] == node for j in got)
    check.close()


def _down() -> None:
    raise sqlite3.OperationalError("disk I/O error (injected)")


def test_outage_buffers_transitions_and_records_then_replays_exactly_once(tmp_path: Path) -> None:
    store = _open(tmp_path)
    job = store.add(Job(kind=JobKind.RENDER, request_text="a cube"))
    job = store.claim(job.id, "n1", 60)

    store.fault_hook = _down  # the database goes away while the job is in flight
    assert store.transition(job.lease, "running", job, JobStatus.RUNNING) is Fenced.BUFFERED
    store.record_message(correlation_id=job.correlation_id, direction="in", text="first", job_id=job.id)
    store.record_llm_call(correlation_id=job.correlation_id, provider="offline", requested_model="",
                          actual_model="", task="interpret", latency_ms=1.0, job_id=job.id)
    assert store.renew_lease(job.lease, 60) is Renewal.UNKNOWN  # keep going rather than self-cancel
    with pytest.raises(DatabaseUnavailable):
        store.get(job.id)  # no made-up answers while the database is away
    job.timings = {"render_s": 0.5}
    assert store.transition(job.lease, "final", job, JobStatus.DONE) is Fenced.BUFFERED
    store.record_message(correlation_id=job.correlation_id, direction="out", text="second", job_id=job.id)
    assert len((tmp_path / "outbox.jsonl").read_text().splitlines()) == 5

    # Back up, but the replay is interrupted after two records (a second outage).
    calls = {"n": 0}

    def flaky() -> None:
        calls["n"] += 1
        if calls["n"] > 2:  # the buffered RUNNING write and one message
            _down()

    store.fault_hook = flaky
    assert store.flush_outbox() == 2
    assert len((tmp_path / "outbox.jsonl").read_text().splitlines()) == 3

    store.fault_hook = None
    store.record_audit(actor="U1", action="status")  # the next write replays what is left first
    assert (tmp_path / "outbox.jsonl").read_text() == ""
    assert store.flush_outbox() == 0

    conn = sqlite3.connect(tmp_path / "jobs.db")
    bodies = [r[0] for r in conn.execute("SELECT body FROM messages ORDER BY id")]
    assert bodies == ["first", "second"]  # in order, once each
    assert conn.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0] == 1
    assert conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0] == 1
    conn.close()
    final = store.get(job.id)
    assert final.status is JobStatus.DONE and final.timings == {"render_s": 0.5}
    store.close()


def test_replaying_the_same_outbox_twice_writes_nothing_new(tmp_path: Path) -> None:
    store = _open(tmp_path)
    store.fault_hook = _down
    store.record_message(correlation_id="c", direction="in", text="hello")
    saved = (tmp_path / "outbox.jsonl").read_text()
    store.fault_hook = None
    assert store.flush_outbox() == 1
    (tmp_path / "outbox.jsonl").write_text(saved)  # e.g. a crash before the file was rewritten
    assert store.flush_outbox() == 1
    conn = sqlite3.connect(tmp_path / "jobs.db")
    assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 1
    conn.close()
    store.close()


def test_stale_buffered_write_is_dropped_and_audited(tmp_path: Path) -> None:
    store = _open(tmp_path)
    job = store.claim(store.add(Job(kind=JobKind.RENDER, request_text="x")).id, "n1", 0.0)
    store.fault_hook = _down
    assert store.transition(job.lease, "running", job, JobStatus.RUNNING) is Fenced.BUFFERED
    store.fault_hook = None
    other = open_sql_store(f"sqlite:///{tmp_path / 'jobs.db'}", outbox_path=tmp_path / "other-outbox.jsonl")
    assert other.requeue_expired(time.time() + 1) == [job.id]  # another node's sweep got there first
    other.close()
    assert store.flush_outbox() == 1  # the lease is gone: the stale write loses
    got = store.get(job.id)
    assert got.status is JobStatus.QUEUED and got.failed_nodes == ["n1"]
    conn = sqlite3.connect(tmp_path / "jobs.db")
    assert conn.execute("SELECT action, target FROM audit_log").fetchall() == [("stale_write_dropped", job.id)]
    conn.close()
    store.close()


def test_a_job_finished_during_an_outage_is_not_requeued_when_the_database_returns(tmp_path: Path) -> None:
    store = _open(tmp_path)
    job = store.claim(store.add(Job(kind=JobKind.RENDER, request_text="cube")).id, "n1", 0.2)
    store.fault_hook = _down
    assert store.transition(job.lease, "running", job, JobStatus.RUNNING) is Fenced.BUFFERED
    assert store.transition(job.lease, "final", job, JobStatus.DONE) is Fenced.BUFFERED
    time.sleep(0.3)  # the lease runs out meanwhile
    store.fault_hook = None
    assert store.requeue_expired() == []  # the buffered DONE landed first
    assert store.get(job.id).status is JobStatus.DONE
    assert store.claim_next("n2", 60) is None  # nobody renders it twice
    store.close()


def test_a_buffered_write_loses_to_a_newer_claim_by_another_node(tmp_path: Path) -> None:
    n1 = _open(tmp_path)
    job = n1.claim(n1.add(Job(kind=JobKind.RENDER, request_text="cube")).id, "n1", 0.0)
    n1.fault_hook = _down  # n1 is cut off and finishes on its own
    n1.transition(job.lease, "running", job, JobStatus.RUNNING)
    n1.transition(job.lease, "final", job, JobStatus.DONE)
    n2 = open_sql_store(f"sqlite:///{tmp_path / 'jobs.db'}", outbox_path=tmp_path / "n2-outbox.jsonl")
    assert n2.requeue_expired(time.time() + 1) == [job.id]  # n1's lease ran out: n2 takes over
    taken = n2.claim_next("n2", 60)
    assert taken is not None and taken.id == job.id and taken.attempts == 2
    n1.fault_hook = None
    n1.flush_outbox()  # n1 comes back: its stale RUNNING/DONE must not overwrite n2's claim
    now = n2.get(job.id)
    assert now.status is JobStatus.CLAIMED and now.lease_owner == "n2" and now.failed_nodes == ["n1"]
    n1.close()
    n2.close()


def test_a_poisoned_outbox_entry_is_quarantined_and_the_rest_still_apply(tmp_path: Path) -> None:
    store = _open(tmp_path)
    job = store.claim(store.add(Job(kind=JobKind.RENDER, request_text="cube")).id, "n1", 60)
    store.fault_hook = _down
    store.record_message(correlation_id="c", direction="in", text="before")
    # A lone surrogate (half of an emoji, cut by a client) is valid JSON but no driver can
    # encode it: before, this one entry blocked every later write, claim and sweep.
    store.record_message(correlation_id="c", direction="in", text="broken \ud83d text")
    (tmp_path / "outbox.jsonl").open("a").write("{not json\n")
    store.record_message(correlation_id="c", direction="in", text="after")
    assert store.transition(job.lease, "final", job, JobStatus.DONE) is Fenced.BUFFERED
    store.fault_hook = None
    assert store.claim_next("n2", 60) is None  # the claim replays first and is not blocked
    assert not store.outbox.pending()
    conn = sqlite3.connect(tmp_path / "jobs.db")
    assert [r[0] for r in conn.execute("SELECT body FROM messages ORDER BY id")] == ["before", "after"]
    conn.close()
    assert store.get(job.id).status is JobStatus.DONE
    quarantined = store.outbox.quarantined()
    assert len(quarantined) == 2
    assert "UnicodeEncodeError" in quarantined[0]["reason"] and "unreadable" in quarantined[1]["reason"]
    store.close()


def test_disk_full_while_buffering_is_reported_and_loses_nothing_already_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import errno
    import os as os_module


    store = _open(tmp_path)
    job = store.claim(store.add(Job(kind=JobKind.RENDER, request_text="cube")).id, "n1", 60)
    store.fault_hook = _down
    store.record_message(correlation_id="c", direction="in", text="kept")
    assert store.transition(job.lease, "running", job, JobStatus.RUNNING) is Fenced.BUFFERED
    before = (tmp_path / "outbox.jsonl").read_bytes()

    real_fsync = os_module.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os_module, "fsync", full)  # every atomic write fsyncs: the disk is full
    store.record_message(correlation_id="c", direction="in", text="does not fit")  # no exception
    assert store.transition(job.lease, "final", job, JobStatus.DONE) is Fenced.FAILED  # told, not raised
    assert "No space left on device" in store.outbox.last_error
    assert "could not buffer" in caplog.text
    assert (tmp_path / "outbox.jsonl").read_bytes() == before  # what was there is intact
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    monkeypatch.setattr(os_module, "fsync", real_fsync)

    store.fault_hook = None
    assert store.flush_outbox() == 2
    assert store.get(job.id).status is JobStatus.RUNNING
    store.close()


def test_unknown_database_url_is_a_clear_error(tmp_path: Path) -> None:
    from slack_ai_addon.storage.db import DatabaseUrlError
    from slack_ai_addon.storage.db import open_sql_store as open_store

    with pytest.raises(DatabaseUrlError):
        open_store("postgres://x/y")
