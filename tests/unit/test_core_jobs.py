"""The in-memory job store: the reference semantics every database backend follows."""

import time

import pytest

from slack_ai_addon.core.jobs import (
    InMemoryJobStore,
    InvalidTransition,
    Job,
    JobKind,
    JobStatus,
    JobStore,
    Requester,
    check_transition,
)


def _job(text: str = "a cube", user: str = "U1") -> Job:
    return Job(kind=JobKind.RENDER, request_text=text, requester=Requester(user_id=user, channel_id="C1"))


def test_store_satisfies_protocol() -> None:
    assert isinstance(InMemoryJobStore(), JobStore)


def test_claim_is_oldest_first_and_exclusive() -> None:
    store = InMemoryJobStore()
    a, b = _job("first"), _job("second")
    b.created_at = a.created_at + 1
    store.add(b)
    store.add(a)
    got = store.claim_next("node-1", 30)
    assert got is not None and got.id == a.id
    assert got.status is JobStatus.CLAIMED and got.lease_owner == "node-1" and got.attempts == 1
    second = store.claim_next("node-2", 30)
    assert second is not None and second.id == b.id
    assert store.claim_next("node-3", 30) is None


def test_returned_jobs_are_copies() -> None:
    store = InMemoryJobStore()
    job = store.add(_job())
    job.request_text = "changed"
    stored = store.get(job.id)
    assert stored is not None and stored.request_text == "a cube"


def test_transitions_are_checked() -> None:
    store = InMemoryJobStore()
    job = store.add(_job())
    job.status = JobStatus.DONE
    with pytest.raises(InvalidTransition):
        store.save(job)
    with pytest.raises(InvalidTransition):
        check_transition(JobStatus.DONE, JobStatus.QUEUED)


def test_expired_lease_requeues_then_fails_after_three_nodes() -> None:
    store = InMemoryJobStore()
    job = store.add(_job())
    for i, node in enumerate(["n1", "n2", "n3"]):
        claimed = store.claim_next(node, 0.01)
        assert claimed is not None and claimed.id == job.id
        requeued = store.requeue_expired(time.time() + 1)
        assert requeued == [job.id]
        state = store.get(job.id)
        assert state is not None
        assert state.status is (JobStatus.QUEUED if i < 2 else JobStatus.FAILED)
    final = store.get(job.id)
    assert final is not None and final.failed_nodes == ["n1", "n2", "n3"] and "3 nodes" in final.error


def test_a_node_does_not_retake_a_job_it_failed() -> None:
    store = InMemoryJobStore()
    job = store.add(_job())
    store.claim_next("n1", 0.01)
    store.requeue_expired(time.time() + 1)
    assert store.claim_next("n1", 30) is None
    again = store.claim_next("n2", 30)
    assert again is not None and again.id == job.id


def test_cancel_queued_and_running() -> None:
    store = InMemoryJobStore()
    queued = store.add(_job("q"))
    running = store.add(_job("r"))
    running.created_at -= 10
    store.save(running)
    claimed = store.claim_next("n1", 30)
    assert claimed is not None and claimed.id == running.id
    c1 = store.request_cancel(queued.id)
    assert c1 is not None and c1.status is JobStatus.CANCELLED
    c2 = store.request_cancel(running.id)
    assert c2 is not None and c2.status is JobStatus.CLAIMED and c2.cancel_requested
    # The heartbeat learns about the cancel through renew_lease.
    assert store.renew_lease(running.id, "n1", 30) is False
    assert store.request_cancel("nope") is None


def test_list_jobs_newest_first_and_by_user() -> None:
    store = InMemoryJobStore()
    for i in range(5):
        j = _job(f"j{i}", user="U1" if i % 2 else "U2")
        j.created_at = 1000 + i
        store.add(j)
    assert [j.request_text for j in store.list_jobs(limit=3)] == ["j4", "j3", "j2"]
    assert [j.request_text for j in store.list_jobs(user_id="U1")] == ["j3", "j1"]
    assert store.count((JobStatus.QUEUED,)) == 5


def test_job_dict_round_trip() -> None:
    job = _job()
    job.spec = {"objects": []}
    job.timings["render_s"] = 1.5
    again = Job.from_dict(job.to_dict())
    assert again == job
