"""The JobStore/ActivityRecorder contract, checked against the SQLite backend here and against
a live SQL Server in tests/e2e/test_mssql_live.py (which loads the CHECKS from this file)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from slack_ai_addon.core.jobs import (
    MAX_REQUEST_CHARS,
    ActivityRecorder,
    Fenced,
    Job,
    JobKind,
    JobOutput,
    JobStatus,
    JobStore,
    Lease,
    Renewal,
    Requester,
)
from slack_ai_addon.storage.db import open_sql_store


def _job(text: str = "a red cube", created: float | None = None, **kw) -> Job:
    job = Job(kind=kw.pop("kind", JobKind.RENDER), request_text=text, **kw)
    if created is not None:
        job.created_at = created
    return job


def check_protocols_and_roundtrip(store) -> None:
    assert isinstance(store, JobStore) and isinstance(store, ActivityRecorder)
    job = _job(requester=Requester(team_id="T1", channel_id="C1", user_id="U1", user_name="ann",
                                   thread_ts="1.2", source="slack"),
               spec={"objects": [{"shape": "cube"}]}, options={"engine": "workbench"})
    job.outputs.append(JobOutput("image", "/tmp/x.png", "image/png", 12, "k", "u", "F1"))
    added = store.add(job)
    added.request_text = "mutated"  # copies out: the store is not affected
    got = store.get(job.id)
    assert got is not None and got.to_dict() == job.to_dict()
    with pytest.raises(ValueError):
        store.add(job)
    assert store.get("nope") is None


def check_fenced_transitions(store) -> None:
    job = store.add(_job())
    # No lease yet: nothing a node may write.
    assert store.transition(Lease(job.id, "n1", 0), "final", job, JobStatus.DONE) is Fenced.LOST
    assert store.get(job.id).status is JobStatus.QUEUED
    claimed = store.claim(job.id, "n1", 30)
    assert claimed.lease == Lease(job.id, "n1", 1)
    claimed.timings = {"interpret_s": 0.5}
    claimed.result = {"provider": "offline"}
    claimed.spec = {"objects": []}
    assert store.transition(claimed.lease, "running", claimed, JobStatus.RUNNING) is Fenced.APPLIED
    got = store.get(job.id)
    assert got.status is JobStatus.RUNNING and got.timings == {"interpret_s": 0.5} and got.spec == {"objects": []}
    # A write owns its columns only: progress does not touch the timings or the status.
    claimed.timings = {"bogus": 1.0}
    claimed.progress = {"stage": "rendering", "frame": 3, "frames": 24}
    assert store.transition(claimed.lease, "progress", claimed) is Fenced.APPLIED
    got = store.get(job.id)
    assert got.progress["frame"] == 3 and got.timings == {"interpret_s": 0.5} and got.status is JobStatus.RUNNING
    # The wrong owner, or the right owner with an old attempt, changes nothing.
    assert store.transition(Lease(job.id, "n2", 1), "final", claimed, JobStatus.DONE) is Fenced.LOST
    assert store.transition(Lease(job.id, "n1", 0), "final", claimed, JobStatus.DONE) is Fenced.LOST
    assert store.get(job.id).status is JobStatus.RUNNING
    claimed.timings = {"render_s": 1.25}
    claimed.outputs = [JobOutput("image", "/tmp/x.png", "image/png", 3)]
    assert store.transition(claimed.lease, "final", claimed, JobStatus.DONE) is Fenced.APPLIED
    got = store.get(job.id)
    assert got.status is JobStatus.DONE and got.timings == {"render_s": 1.25} and got.outputs[0].path == "/tmp/x.png"
    assert got.progress == {}
    # Final states are final, even for the owner: a second final write is dropped.
    assert store.transition(claimed.lease, "final", claimed, JobStatus.FAILED) is Fenced.LOST
    assert store.transition(claimed.lease, "running", claimed, JobStatus.RUNNING) is Fenced.LOST
    assert store.get(job.id).status is JobStatus.DONE
    with pytest.raises(ValueError):
        store.transition(claimed.lease, "progress", claimed, JobStatus.DONE)  # progress owns no status


def check_stale_owner_never_changes_a_row(store) -> None:
    """The bug a new user hit: a node's in-memory copy must not undo a renewal, a claim by
    another node, the Slack ts, or the failed_nodes list."""
    job = store.add(_job())
    first = store.claim(job.id, "n1", 0.0)  # a lease that is already over
    assert store.requeue_expired(time.time() + 1) == [job.id]
    second = store.claim_next("n2", 60)
    assert second.id == job.id and second.attempts == 2
    store.set_slack_ts(job.id, "1700000000.000200")
    before = store.get(job.id)
    first.error = "stale"
    for write, status in (("running", JobStatus.RUNNING), ("uploading", JobStatus.UPLOADING),
                          ("final", JobStatus.FAILED), ("release", JobStatus.QUEUED), ("progress", None)):
        assert store.transition(first.lease, write, first, status) is Fenced.LOST
    assert store.renew_lease(first.lease, 60) is Renewal.LOST
    after = store.get(job.id)
    assert after.to_dict() == before.to_dict()
    assert after.failed_nodes == ["n1"] and after.lease_owner == "n2" and after.slack_ts == "1700000000.000200"
    # The same owner name with a newer claim (a restarted node with a fixed id) is a new lease.
    assert store.transition(Lease(job.id, "n2", 1), "final", first, JobStatus.DONE) is Fenced.LOST


def check_release_hands_back_without_a_failure(store) -> None:
    job = store.add(_job())
    claimed = store.claim(job.id, "n1", 60)
    assert store.transition(claimed.lease, "release", claimed, JobStatus.QUEUED) is Fenced.APPLIED
    got = store.get(job.id)
    assert got.status is JobStatus.QUEUED and got.lease_owner == "" and got.failed_nodes == []
    again = store.claim_next("n1", 60)  # not counted as a failure here: the same node may take it
    assert again.id == job.id and again.attempts == 2


def check_claim_order_kinds_and_leases(store) -> None:
    now = time.time()
    a = store.add(_job("first", created=now - 30))
    b = store.add(_job("second", created=now - 20, kind=JobKind.ANALYZE))
    c = store.add(_job("third", created=now - 10))
    first = store.claim_next("n1", 60)
    assert first.id == a.id and first.status is JobStatus.CLAIMED and first.attempts == 1
    assert first.lease_owner == "n1" and first.lease_expires_at > now + 50
    assert store.claim_next("n1", 60, (JobKind.ANALYZE,)).id == b.id
    assert store.claim(c.id, "n2", 60).id == c.id
    assert store.claim(c.id, "n3", 60) is None  # already taken
    assert store.claim_next("n1", 60) is None
    before = store.get(a.id).lease_expires_at
    assert store.renew_lease(first.lease, 120) is Renewal.KEPT
    assert store.get(a.id).lease_expires_at > before
    assert store.renew_lease(Lease(a.id, "n2", 1), 60) is Renewal.LOST  # not ours
    assert store.count((JobStatus.CLAIMED,)) == 3


def check_requeue_and_three_node_rule(store) -> None:
    job = store.add(_job())
    for i, node in enumerate(["n1", "n2", "n3"]):
        if i > 0:  # n1 never takes back a job whose lease ran out on it
            assert store.claim_next("n1", 60) is None
        claimed = store.claim_next(node, 0.0)
        assert claimed is not None and claimed.id == job.id and claimed.attempts == i + 1
        ids = store.requeue_expired(time.time() + 1)
        assert ids == [job.id]
        assert store.get(job.id).failed_nodes == ["n1", "n2", "n3"][: i + 1]
    final = store.get(job.id)
    assert final.status is JobStatus.FAILED and final.failed_nodes == ["n1", "n2", "n3"]
    assert "3 nodes" in final.error
    assert store.requeue_expired(time.time() + 1) == []


def check_failed_node_is_skipped(store) -> None:
    job = store.add(_job())
    store.claim_next("n1", 0.0)
    store.requeue_expired(time.time() + 1)
    assert store.claim_next("n1", 60) is None  # failed here once: let another node try
    assert store.claim_next("n2", 60).id == job.id


def check_cancel(store) -> None:
    queued = store.add(_job())
    cancelled = store.request_cancel(queued.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.error
    running = store.add(_job())
    job = store.claim(running.id, "n1", 60)
    assert store.transition(job.lease, "running", job, JobStatus.RUNNING) is Fenced.APPLIED
    flagged = store.request_cancel(running.id)
    assert flagged.status is JobStatus.RUNNING and flagged.cancel_requested
    assert store.renew_lease(job.lease, 60) is Renewal.CANCEL  # the heartbeat hears the cancel
    job.timings["render_s"] = 2.0  # the worker's own writes do not clear the request
    assert store.transition(job.lease, "progress", job) is Fenced.APPLIED
    assert store.get(running.id).cancel_requested
    assert store.request_cancel("missing") is None


def check_list_and_count(store) -> None:
    now = time.time()
    ids = [store.add(_job(f"job {i}", created=now + i, requester=Requester(user_id="U1" if i % 2 else "U2"))).id
           for i in range(5)]
    assert [j.id for j in store.list_jobs(limit=3)] == ids[::-1][:3]
    assert [j.id for j in store.list_jobs(user_id="U1")] == [ids[3], ids[1]]
    store.claim(ids[0], "n", 60)
    assert [j.id for j in store.list_jobs(statuses=(JobStatus.CLAIMED,))] == [ids[0]]
    assert store.count((JobStatus.QUEUED,)) == 4 and store.count((JobStatus.QUEUED, JobStatus.CLAIMED)) == 5
    assert store.count(()) == 0


def check_hostile_text_is_data(store) -> None:
    evil = "'; DROP TABLE jobs; --"
    bobby = "Robert'); DROP TABLE messages; --"
    job = store.add(_job(evil, requester=Requester(user_id="U'1", user_name=bobby, channel_id="C%_[x]")))
    store.record_message(correlation_id=job.correlation_id, direction="in", text=evil, user_id=bobby, job_id=job.id)
    store.record_audit(actor=bobby, action="cancel", target=job.id, detail=evil, allowed=False)
    got = store.get(job.id)
    assert got.request_text == evil and got.requester.user_name == bobby and got.requester.channel_id == "C%_[x]"
    assert [j.id for j in store.list_jobs(user_id="U'1")] == [job.id]
    assert store.count((JobStatus.QUEUED,)) >= 1  # the table is still there


def check_huge_prompt_truncated(store) -> None:
    job = store.add(_job("x" * (MAX_REQUEST_CHARS * 3)))
    got = store.get(job.id)
    assert len(got.request_text) == MAX_REQUEST_CHARS
    assert any("only the first" in w for w in got.warnings)


def check_analytics(store) -> None:
    from slack_ai_addon.storage.stats import build_stats

    now = time.time()
    for i, (user, status, secs) in enumerate([("U1", JobStatus.DONE, 1.0), ("U1", JobStatus.DONE, 3.0),
                                              ("U2", JobStatus.FAILED, 0.0)]):
        job = store.add(_job(created=now - i, requester=Requester(user_id=user, user_name=user.lower(),
                                                                  channel_id="C1")))
        job = store.claim(job.id, "n", 60)
        assert store.transition(job.lease, "running", job, JobStatus.RUNNING) is Fenced.APPLIED
        job.timings = {"render_s": secs} if secs else {}
        assert store.transition(job.lease, "final", job, status) is Fenced.APPLIED
    store.record_llm_call(correlation_id="c", provider="openai", requested_model="gpt-4o-mini",
                          actual_model="gpt-4o-mini", task="interpret", latency_ms=120.0, prompt_tokens=100,
                          completion_tokens=20, cost_usd=0.0015)
    store.record_llm_call(correlation_id="c", provider="routellm", requested_model="route-llm",
                          actual_model="x", task="interpret", latency_ms=50.0, error_class="Timeout")
    stats = build_stats(store, 1, now=now + 1)
    assert stats["jobs"] == 3 and stats["by_status"] == {"done": 2, "failed": 1}
    assert stats["success_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert stats["render_s"]["p50"] == pytest.approx(2.0) and stats["render_s"]["count"] == 2
    assert stats["top_users"][0] == {"user_id": "U1", "user_name": "u1", "jobs": 2, "render_s": 4.0}
    assert stats["top_channels"][0]["jobs"] == 3
    assert stats["llm"]["calls"] == 2 and stats["llm"]["cost_usd"] == pytest.approx(0.0015)
    assert stats["llm"]["errors"] == 1
    assert sum(d["jobs"] for d in stats["per_day"]) == 3


def check_set_slack_ts_touches_only_that_column(store) -> None:
    job = store.add(_job())
    claimed = store.claim(job.id, "n1", 30)
    assert claimed is not None
    store.set_slack_ts(job.id, "1700000000.000100")  # e.g. the receiving node, after the claim
    got = store.get(job.id)
    assert got.slack_ts == "1700000000.000100"
    assert got.status is JobStatus.CLAIMED and got.lease_owner == "n1" and got.attempts == 1
    # ...and the renderer's later writes keep it.
    assert store.transition(claimed.lease, "running", claimed, JobStatus.RUNNING) is Fenced.APPLIED
    assert store.transition(claimed.lease, "final", claimed, JobStatus.DONE) is Fenced.APPLIED
    assert store.get(job.id).slack_ts == "1700000000.000100"


def check_thread_lookup(store) -> None:
    slash = store.add(_job("a cube", created=time.time() - 10,
                           requester=Requester(channel_id="C1", user_id="U1", source="slack")))
    store.set_slack_ts(slash.id, "100.1")
    mention = store.add(_job("a sphere", requester=Requester(channel_id="C1", thread_ts="200.2", source="slack")))
    edit = store.add(_job("make it blue", requester=Requester(channel_id="C1", thread_ts="100.1", source="slack")))
    assert store.find_thread_job("C1", "100.1").id == edit.id  # the newest job of the thread
    assert store.find_thread_job("C1", "200.2").id == mention.id
    assert store.find_thread_job("C2", "100.1") is None
    assert store.find_thread_job("C1", "") is None


def check_late_outputs_touch_only_outputs(store) -> None:
    job = store.add(_job())
    claimed = store.claim(job.id, "n1", 60)
    claimed.outputs = [JobOutput("image", "/tmp/a.png")]
    assert store.transition(claimed.lease, "final", claimed, JobStatus.DONE) is Fenced.APPLIED
    store.set_outputs(job.id, [JobOutput("image", "/tmp/a.png", s3_key="k", url="https://x/k")])
    got = store.get(job.id)
    assert got.outputs[0].s3_key == "k" and got.status is JobStatus.DONE


def check_same_owner_with_an_older_attempt_loses_the_renewal(store) -> None:
    """A node that lost a job and claimed it again (`claim` has no failed-node filter) holds a
    new lease under the same owner name: a heartbeat of its old attempt must not renew it."""
    job = store.add(_job())
    old = store.claim(job.id, "n1", 0.0)  # a lease that is already over
    assert old.lease == Lease(job.id, "n1", 1)
    assert store.requeue_expired(time.time() + 1) == [job.id]
    again = store.claim(job.id, "n1", 60)
    assert again is not None and again.lease == Lease(job.id, "n1", 2)
    before = store.get(job.id)
    assert store.renew_lease(old.lease, 3600) is Renewal.LOST
    after = store.get(job.id)
    assert after.to_dict() == before.to_dict()  # the expiry is not pushed out an hour
    assert after.lease_expires_at == before.lease_expires_at and after.attempts == 2
    assert store.renew_lease(again.lease, 60) is Renewal.KEPT  # the current attempt still may


def check_claim_next_takes_only_the_kinds_asked_for(store) -> None:
    """A node that only analyzes (or a busy renderer asking for analyses) must not be handed
    an older render."""
    now = time.time()
    render = store.add(_job("a render", created=now - 20))
    analyze = store.add(_job("an analysis", created=now - 10, kind=JobKind.ANALYZE))
    assert store.claim_next("n1", 60, (JobKind.ANALYZE,)).id == analyze.id
    assert store.claim_next("n1", 60, (JobKind.ANALYZE,)) is None  # the render stays queued
    assert store.get(render.id).status is JobStatus.QUEUED
    assert store.claim_next("n1", 60, (JobKind.RENDER,)).id == render.id


def check_node_registry(store) -> None:
    from slack_ai_addon.core.jobs import NODE_OFFLINE_AFTER_S, NodeInfo

    now = time.time()
    node = NodeInfo(id="render-07", host="farm-a", role="worker", blender_version="5.0.1", engines="cycles,workbench",
                    started_at=now - 100, last_heartbeat=now, state="idle")
    store.upsert_node(node)
    node.state, node.current_job = "rendering", "20261206-000000-abcdef"
    node.jobs_done, node.last_heartbeat = 3, now + 1
    store.upsert_node(node)  # the next beat updates the same row
    store.upsert_node(NodeInfo(id="render-08", role="worker", last_heartbeat=now - NODE_OFFLINE_AFTER_S - 5))
    (first, second) = store.list_nodes()
    assert first == node and first.shown_state(now + 1) == "rendering"
    assert second.id == "render-08" and second.shown_state(now) == "offline"  # its heartbeat stopped


CHECKS = [check_node_registry, check_set_slack_ts_touches_only_that_column, check_thread_lookup,
          check_late_outputs_touch_only_outputs,
          check_fenced_transitions, check_stale_owner_never_changes_a_row, check_release_hands_back_without_a_failure,
          check_protocols_and_roundtrip, check_claim_order_kinds_and_leases,
          check_requeue_and_three_node_rule, check_failed_node_is_skipped, check_cancel, check_list_and_count,
          check_hostile_text_is_data, check_huge_prompt_truncated, check_analytics,
          check_same_owner_with_an_older_attempt_loses_the_renewal, check_claim_next_takes_only_the_kinds_asked_for]


@pytest.fixture()
def sqlite_store(tmp_path: Path):
    store = open_sql_store(f"sqlite:///{tmp_path / 'sub' / 'jobs.db'}", outbox_path=tmp_path / "outbox.jsonl")
    yield store
    store.close()


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_sqlite_contract(sqlite_store, check) -> None:
    check(sqlite_store)


def test_sqlite_is_wal(sqlite_store, tmp_path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(tmp_path / "sub" / "jobs.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
