"""Fair claims over the real SQLite store: the requester with the least recent use of the farm
(jobs claimed in the last FAIR_SHARE_WINDOW_S, or still in flight) is served first, then the
oldest job. One user's 20 queued jobs delay another user's first job by at most one job.

The model-based test drives several nodes (each its own store on one database file, with and
without a GPU) through submissions by several users, claims, finishes and lease expiries on
a clock it controls, and checks after every step: no job is claimed twice at once, no job is
lost, every claim is one the node can run, and a user with no recent use never waits behind
more than one job of any other user.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from slack_ai_addon.core.jobs import (
    FAIR_SHARE_WINDOW_S,
    LIVE_STATUSES,
    Job,
    JobKind,
    JobRequirements,
    JobStatus,
    NodeCapabilities,
    Requester,
)
from slack_ai_addon.storage.db import open_sql_store
from slack_ai_addon.storage.db.store import SqlJobStore

EXAMPLES = int(os.environ.get("SLACK_AI_MODEL_EXAMPLES", "40"))
STEPS = int(os.environ.get("SLACK_AI_MODEL_STEPS", "50"))
CPU = NodeCapabilities(engines=("cycles", "eevee", "workbench"), blender=50200)
GPU = NodeCapabilities(engines=("cycles", "eevee", "workbench"), gpu="GPU", blender=50200)


def _store(tmp_path: Path, name: str = "n") -> SqlJobStore:
    return open_sql_store(f"sqlite:///{tmp_path / 'jobs.db'}", outbox_path=tmp_path / f"{name}.jsonl")


def _job(user: str, created: float, job_id: str = "", **req: object) -> Job:
    job = Job(kind=JobKind.RENDER, request_text=f"job of {user}", requester=Requester(user_id=user),
              created_at=created, updated_at=created, requirements=JobRequirements(**req))  # type: ignore[arg-type]
    if job_id:
        job.id = job_id  # the model needs ids that are the same on every run
    return job


def test_b_starts_next_or_after_one_of_as_twenty(tmp_path: Path) -> None:
    store = _store(tmp_path)
    t0 = time.time() - 100
    a_jobs = [store.add(_job("UA", t0 + i)).id for i in range(20)]
    b_job = store.add(_job("UB", t0 + 30)).id  # sent after all of A's
    order = []
    while (claimed := store.claim_next("node", 60)) is not None:
        order.append(claimed.id)
        assert claimed.claimed_at >= time.time() - 5  # set on claim
    assert order.index(b_job) <= 1, order.index(b_job)
    assert [j for j in order if j != b_job] == a_jobs  # A's own jobs stay oldest first
    store.close()


def test_b_is_next_even_while_a_keeps_a_node_busy(tmp_path: Path) -> None:
    """A's jobs already running count as A's use: B's new job jumps A's queue at once."""
    store = _store(tmp_path)
    t0 = time.time() - 100
    for i in range(20):
        store.add(_job("UA", t0 + i))
    running = [store.claim_next(f"node-{i}", 60) for i in range(3)]
    assert {j.requester.user_id for j in running if j} == {"UA"}
    b_job = store.add(_job("UB", t0 + 50))
    assert store.claim_next("node-3", 60).id == b_job.id  # type: ignore[union-attr]
    store.close()


def test_three_users_take_turns(tmp_path: Path) -> None:
    store = _store(tmp_path)
    t0 = time.time() - 100
    for i in range(4):
        store.add(_job("UA", t0 + i))
    for i in range(4):
        store.add(_job("UB", t0 + 10 + i))
    store.add(_job("UC", t0 + 20))
    users = [store.claim_next("n", 60).requester.user_id for _ in range(9)]  # type: ignore[union-attr]
    assert users[:3] == ["UA", "UB", "UC"]  # one each before anyone's second
    assert users[3:] == ["UA", "UB", "UA", "UB", "UA", "UB"]
    store.close()


def test_old_use_is_forgotten_after_the_window(tmp_path: Path) -> None:
    store = _store(tmp_path)
    now = [time.time()]
    store.clock = lambda: now[0]
    a_old = store.add(_job("UA", now[0] - 10))
    claimed = store.claim_next("n", 60)
    assert claimed is not None and claimed.id == a_old.id
    store.transition(claimed.lease, "final", claimed, JobStatus.DONE)
    b = store.add(_job("UB", now[0] - 5))
    a = store.add(_job("UA", now[0] - 8))
    now[0] += FAIR_SHARE_WINDOW_S + 1  # A's claim is out of the window: both have no recent use
    assert store.claim_next("n", 60).id == a.id  # type: ignore[union-attr]  # so the oldest goes first
    assert store.claim_next("n", 60).id == b.id  # type: ignore[union-attr]
    store.close()


# ---------------------------------------------------------------- the model

USERS = ("UA", "UB", "UC")
NODES = {"cpu-1": CPU, "cpu-2": CPU, "gpu-1": GPU}
LEASE_S = 20.0


class FairClaims(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="slackai-fair-"))
        self.now = 2_000_000.0
        self.stores = {name: _store(self.dir, name) for name in NODES}
        for s in self.stores.values():
            s.clock = lambda: self.now
        self.reader = _store(self.dir, "reader")
        self.jobs: dict[str, str] = {}  # job id -> user
        self.held: dict[str, str] = {}  # job id -> node holding it (as this model believes)
        # job id -> {other user: (claims of theirs made while this job waited and its user had no
        # use, since when)}
        self.waited_behind: dict[str, dict[str, tuple[int, float]]] = {}

    def teardown(self) -> None:
        for s in [*self.stores.values(), self.reader]:
            s.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def rows(self) -> dict[str, Job]:
        return {j.id: j for j in self.reader.list_jobs(limit=10_000)}

    def use(self, rows: dict[str, Job], user: str) -> int:
        """The store's measure of a user's use, computed independently from the rows."""
        since = self.now - FAIR_SHARE_WINDOW_S
        return sum(1 for j in rows.values() if j.requester.user_id == user
                   and (j.claimed_at >= since or j.status in LIVE_STATUSES))

    @rule(user=st.sampled_from(USERS), count=st.integers(1, 6), gpu=st.booleans())
    def submit(self, user: str, count: int, gpu: bool) -> None:
        for _ in range(count):
            self.now += 0.01
            job = self.reader.add(_job(user, self.now, f"job-{len(self.jobs):04d}", gpu=gpu))
            self.jobs[job.id] = user
            self.waited_behind[job.id] = {}

    @rule(node=st.sampled_from(sorted(NODES)))
    def claim(self, node: str) -> None:
        before = self.rows()
        caps = NODES[node]
        job = self.stores[node].claim_next(node, LEASE_S, None, caps)
        def could_take(j: Job) -> bool:  # queued, runnable here, and not failed here before
            return j.status is JobStatus.QUEUED and caps.can_run(j.requirements) and node not in j.failed_nodes

        if job is None:
            assert not any(could_take(j) for j in before.values())
            return
        old = before[job.id]
        assert old.status is JobStatus.QUEUED, "claimed a job that was not queued"
        assert job.id not in self.held, "a job claimed twice"
        assert caps.can_run(job.requirements), "claimed a job the node cannot run"
        assert job.claimed_at == self.now
        claimer = self.jobs[job.id]
        claimed_use = self.use(before, claimer)
        for other_id, other in before.items():
            if other_id == job.id or not could_take(other):
                continue
            other_use = self.use(before, other.requester.user_id)
            # Fair: nobody this node could have served instead had less use of the farm.
            assert claimed_use <= other_use, (claimer, claimed_use, other.requester.user_id, other_use)
            if other_use == 0 and other.requester.user_id != claimer:
                # Counted per window: a claimer's use is forgotten FAIR_SHARE_WINDOW_S later.
                behind = self.waited_behind[other_id]
                count, since = behind.get(claimer, (0, self.now))
                if self.now - since > FAIR_SHARE_WINDOW_S:
                    count, since = 0, self.now
                behind[claimer] = (count + 1, since)
        self.held[job.id] = node

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), status=st.sampled_from([JobStatus.DONE, JobStatus.FAILED]))
    def finish(self, data: st.DataObject, status: JobStatus) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.held)))
        node = self.held.pop(job_id)
        row = self.reader.get(job_id)
        assert row is not None
        self.stores[node].transition(row.lease, "final", row, status)

    @rule(seconds=st.sampled_from([0.5, 3.0, LEASE_S + 1]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule(node=st.sampled_from(sorted(NODES)))
    def sweep(self, node: str) -> None:
        for job_id in self.stores[node].requeue_expired():
            self.held.pop(job_id, None)

    @invariant()
    def nothing_lost_and_one_owner(self) -> None:
        rows = self.rows()
        assert set(self.jobs) <= set(rows), "a job row disappeared"
        live = {i for i, r in rows.items() if r.status in LIVE_STATUSES}
        assert live == set(self.held), (live, set(self.held))
        for job_id, node in self.held.items():
            assert rows[job_id].lease_owner == node

    @invariant()
    def nobody_waits_behind_more_than_one_job_of_another_user(self) -> None:
        for job_id, behind in self.waited_behind.items():
            assert all(n <= 1 for n, _ in behind.values()), (job_id, self.jobs[job_id], behind)


FairClaims.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, derandomize=True, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_fair_claims_model = FairClaims.TestCase
