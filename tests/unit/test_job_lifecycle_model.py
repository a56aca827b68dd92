"""A model-based test of the job lifecycle over the real SQLite store.

Hypothesis drives several simulated nodes (each with its own `SqlJobStore` on one database
file, its own outbox and its own view of which leases it holds) through claims, renewals,
progress, the RUNNING/UPLOADING/final writes, hand-backs, node death and restart, lease
expiry on a clock the test controls, lease sweeps, cancels, and database outages of a
single node with an outbox replay afterwards. After every step it checks what must never
happen:

- a job is lost (a row disappears, or a live row has no owner);
- a job is finished twice, or has more than one final result (a node's applied final
  write, a sweep failing it after three nodes, or a cancel of a queued job);
- two nodes both hold the current lease of a job;
- `failed_nodes` shrinks;
- a stale owner (its lease expired and the job moved on) changes a row, directly or
  through its outbox;
- a final status changes.

CI runs a fixed number of examples with a fixed seed (a few thousand steps). Run longer:

    SLACK_AI_MODEL_EXAMPLES=2000 .venv/bin/python -m pytest tests/unit/test_job_lifecycle_model.py
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from slack_ai_addon.core.jobs import LIVE_STATUSES, Fenced, Job, JobKind, JobStatus, Lease, Renewal
from slack_ai_addon.storage.db import open_sql_store
from slack_ai_addon.storage.db.store import SqlJobStore

LEASE_S = 10.0
NODES = ("n0", "n1", "n2", "n3")
EXAMPLES = int(os.environ.get("SLACK_AI_MODEL_EXAMPLES", "60"))
STEPS = int(os.environ.get("SLACK_AI_MODEL_STEPS", "60"))


def _down() -> None:
    raise sqlite3.OperationalError("unable to open database file (injected outage)")


@dataclass
class Node:
    name: str
    store: SqlJobStore
    held: dict[str, tuple[Lease, str]] = field(default_factory=dict)  # job id -> (lease, phase)
    alive: bool = True
    cut_off: bool = False
    buffered: dict[str, set[Lease]] = field(default_factory=dict)  # job id -> leases with buffered writes


class JobLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="slackai-model-"))
        self.now = 1_000_000.0
        url = f"sqlite:///{self.dir / 'jobs.db'}"
        self.nodes: dict[str, Node] = {}
        for name in NODES:
            store = open_sql_store(url, outbox_path=self.dir / f"{name}-outbox.jsonl")
            store.clock = lambda: self.now
            self.nodes[name] = Node(name, store)
        self.reader = self.nodes[NODES[0]].store  # a node's store used only to look (never cut off)
        self.reader_store = open_sql_store(url, outbox_path=self.dir / "reader-outbox.jsonl")
        self.jobs: list[str] = []
        self.final_results: dict[str, int] = {}
        self.failed_seen: dict[str, list[str]] = {}
        self.final_seen: dict[str, JobStatus] = {}

    def teardown(self) -> None:
        for node in self.nodes.values():
            node.store.close()
        self.reader_store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ helpers
    def rows(self) -> dict[str, Job]:
        return {j.id: j for j in self.reader_store.list_jobs(limit=10_000)}

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def _count_final(self, job_id: str) -> None:
        self.final_results[job_id] = self.final_results.get(job_id, 0) + 1
        assert self.final_results[job_id] == 1, f"job {job_id} got a second final result"

    def _write(self, node: Node, job_id: str, write: str, status: JobStatus | None) -> Fenced:
        lease, phase = node.held[job_id]
        before = self.reader_store.get(job_id)
        assert before is not None
        current = before.status in LIVE_STATUSES and (before.lease_owner, before.attempts) == (lease.owner,
                                                                                               lease.attempt)
        job = before.copy()
        job.timings = {"step": self.now}
        job.progress = {"frame": int(self.now) % 24}
        job.error = f"{write} by {node.name}"
        result = node.store.transition(lease, write, job, status)
        after = self.reader_store.get(job_id)
        assert after is not None
        if result is Fenced.BUFFERED:
            node.buffered.setdefault(job_id, set()).add(lease)
            assert after.to_dict() == before.to_dict()
            return result
        if result is Fenced.FAILED:
            assert write == "progress" and node.cut_off
            return result
        if not current:
            # A stale owner: nothing written, and it is told so.
            assert result is Fenced.LOST, (write, before, lease)
            assert after.to_dict() == before.to_dict()
            node.held.pop(job_id, None)
            return result
        # A stale status move from a live owner is refused by the table (e.g. final -> ...);
        # otherwise it applies.
        assert result is Fenced.APPLIED, (write, status, before.status)
        if status is not None:
            assert after.status is status
        return result

    # ------------------------------------------------------------------ rules
    @initialize()
    def start(self) -> None:
        pass

    @rule(kind=st.sampled_from([JobKind.RENDER, JobKind.ANALYZE]))
    def add_job(self, kind: JobKind) -> None:
        job = self.reader_store.add(Job(kind=kind, request_text=f"job {len(self.jobs)}"))
        self.jobs.append(job.id)

    @rule(name=st.sampled_from(NODES))
    def claim(self, name: str) -> None:
        node = self.node(name)
        if not node.alive or node.cut_off:
            return
        before = self.rows()
        job = node.store.claim_next(name, LEASE_S)
        if job is None:
            return
        old = before[job.id]
        assert old.status is JobStatus.QUEUED and name not in old.failed_nodes
        assert job.attempts == old.attempts + 1 and job.lease_owner == name
        for other in self.nodes.values():  # nobody else thinks it holds this attempt
            held = other.held.get(job.id)
            assert held is None or held[0].attempt < job.attempts
        node.held[job.id] = (job.lease, "claimed")

    @precondition(lambda self: any(n.held for n in self.nodes.values()))
    @rule(data=st.data())
    def renew(self, data: st.DataObject) -> None:
        node = data.draw(st.sampled_from([n for n in self.nodes.values() if n.held]))
        job_id = data.draw(st.sampled_from(sorted(node.held)))
        lease, _ = node.held[job_id]
        before = self.reader_store.get(job_id)
        assert before is not None
        renewal = node.store.renew_lease(lease, LEASE_S)
        after = self.reader_store.get(job_id)
        assert after is not None
        current = before.status in LIVE_STATUSES and (before.lease_owner, before.attempts) == (lease.owner,
                                                                                               lease.attempt)
        if node.cut_off:
            assert renewal is Renewal.UNKNOWN
        elif current:
            assert renewal in (Renewal.KEPT, Renewal.CANCEL)
            assert after.lease_expires_at == self.now + LEASE_S
        else:
            assert renewal is Renewal.LOST and after.to_dict() == before.to_dict()
            node.held.pop(job_id, None)

    @precondition(lambda self: any(n.held for n in self.nodes.values()))
    @rule(data=st.data(), step=st.sampled_from(["progress", "running", "uploading", "final-done", "final-failed",
                                                "final-cancelled", "release"]))
    def write(self, data: st.DataObject, step: str) -> None:
        node = data.draw(st.sampled_from([n for n in self.nodes.values() if n.held]))
        job_id = data.draw(st.sampled_from(sorted(node.held)))
        lease, phase = node.held[job_id]
        row = self.reader_store.get(job_id)
        assert row is not None
        # A node only makes the moves its own pipeline makes from the phase it believes in.
        if step == "running" and phase != "claimed":
            return
        if step == "uploading" and phase != "running":
            return
        write, status = {
            "progress": ("progress", None), "running": ("running", JobStatus.RUNNING),
            "uploading": ("uploading", JobStatus.UPLOADING), "final-done": ("final", JobStatus.DONE),
            "final-failed": ("final", JobStatus.FAILED), "final-cancelled": ("final", JobStatus.CANCELLED),
            "release": ("release", JobStatus.QUEUED)}[step]
        result = self._write(node, job_id, write, status)
        if result is Fenced.APPLIED:
            if write == "final":
                self._count_final(job_id)
                node.held.pop(job_id, None)
            elif write == "release":
                node.held.pop(job_id, None)
            elif write in ("running", "uploading"):
                node.held[job_id] = (lease, write)
        elif result is Fenced.BUFFERED and write in ("final", "release"):
            node.held.pop(job_id, None)  # the node moves on; the outbox decides later

    @rule(seconds=st.sampled_from([1.0, 4.0, LEASE_S + 1]))
    def advance_clock(self, seconds: float) -> None:
        self.now += seconds

    @rule(name=st.sampled_from(NODES))
    def sweep(self, name: str) -> None:
        node = self.node(name)
        if not node.alive or node.cut_off:
            return
        before = self.rows()
        ids = node.store.requeue_expired()
        after = self.rows()
        for job_id in ids:
            old, new = before[job_id], after[job_id]
            assert old.status in LIVE_STATUSES and old.lease_expires_at < self.now
            assert new.status in (JobStatus.QUEUED, JobStatus.FAILED) and new.lease_owner == ""
            if new.status is JobStatus.FAILED:
                self._count_final(job_id)

    @rule(index=st.integers(min_value=0, max_value=50))
    def cancel(self, index: int) -> None:
        if not self.jobs:
            return
        job_id = self.jobs[index % len(self.jobs)]
        before = self.reader_store.get(job_id)
        got = self.reader_store.request_cancel(job_id)
        assert got is not None and before is not None
        if before.status is JobStatus.QUEUED:
            assert got.status is JobStatus.CANCELLED
            self._count_final(job_id)

    @rule(name=st.sampled_from(NODES))
    def kill(self, name: str) -> None:
        """SIGKILL: the process and its memory are gone; its rows wait for lease expiry."""
        node = self.node(name)
        node.alive = False
        node.held.clear()

    @rule(name=st.sampled_from(NODES))
    def restart(self, name: str) -> None:
        node = self.node(name)
        if not node.alive:
            node.alive = True  # same node id, no leases in memory; its outbox file is still there

    @rule(name=st.sampled_from(NODES))
    def cut_off(self, name: str) -> None:
        node = self.node(name)
        node.cut_off = True
        node.store.fault_hook = _down

    @rule(name=st.sampled_from(NODES))
    def reconnect(self, name: str) -> None:
        node = self.node(name)
        if not node.cut_off:
            return
        node.cut_off = False
        node.store.fault_hook = None
        before = self.rows()
        node.store.flush_outbox()
        after = self.rows()
        for job_id, leases in node.buffered.items():
            old = before[job_id]
            mine = any(old.status in LIVE_STATUSES and (old.lease_owner, old.attempts) == (lease.owner, lease.attempt)
                       for lease in leases)
            if not mine:
                # A stale owner's buffered writes never change the row.
                assert after[job_id].to_dict() == old.to_dict(), (job_id, leases)
            elif after[job_id].status.is_final and not old.status.is_final:
                self._count_final(job_id)  # the buffered final write landed: its reply goes out now
        node.buffered.clear()

    # ------------------------------------------------------------------ invariants
    @invariant()
    def nothing_lost_or_done_twice(self) -> None:
        rows = self.rows()
        assert set(self.jobs) <= set(rows), "a job row disappeared"
        for job_id, row in rows.items():
            if row.status in LIVE_STATUSES:
                assert row.lease_owner, f"live job {job_id} without an owner"
            previous_failed = self.failed_seen.get(job_id, [])
            assert row.failed_nodes[: len(previous_failed)] == previous_failed, "failed_nodes shrank"
            self.failed_seen[job_id] = list(row.failed_nodes)
            if job_id in self.final_seen:
                assert row.status is self.final_seen[job_id], "a final status changed"
            elif row.status.is_final:
                self.final_seen[job_id] = row.status
            assert self.final_results.get(job_id, 0) <= 1

    @invariant()
    def at_most_one_owner(self) -> None:
        rows = self.rows()
        for job_id, row in rows.items():
            owners = [n.name for n in self.nodes.values() if job_id in n.held
                      and (n.held[job_id][0].owner, n.held[job_id][0].attempt) == (row.lease_owner, row.attempts)
                      and row.status in LIVE_STATUSES]
            assert len(owners) <= 1, (job_id, owners)

    def check_every_finished_job_has_one_final_result(self) -> None:
        for job_id, row in self.rows().items():
            if row.status.is_final:
                assert self.final_results.get(job_id, 0) == 1, (job_id, row.status, self.final_results.get(job_id))


class FinalResults(JobLifecycle):
    def teardown(self) -> None:
        try:
            # Reconnect everybody so buffered final writes land, then every finished job
            # must have exactly one final result.
            for name in NODES:
                self.reconnect(name)
            self.check_every_finished_job_has_one_final_result()
        finally:
            super().teardown()


FinalResults.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, derandomize=True, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_job_lifecycle_model = FinalResults.TestCase


def test_the_model_checks_can_fail() -> None:
    """The invariants are not vacuous: a store that ignores the fence breaks them."""
    machine = FinalResults()
    try:
        machine.add_job(JobKind.RENDER)
        machine.claim("n0")
        machine.advance_clock(LEASE_S + 1)
        machine.sweep("n1")
        machine.claim("n1")
        (job_id,) = machine.jobs
        stale = machine.node("n0").held[job_id][0]
        # Forge a write that ignores the fencing token, as the old full-row save did.
        store = machine.node("n0").store
        with store._tx() as cur:  # noqa: SLF001 (deliberately going around the API)
            cur.execute("UPDATE jobs SET status = 'done', lease_owner = ? WHERE id = ?", (stale.owner, job_id))
        failed: Any = None
        try:
            machine.check_every_finished_job_has_one_final_result()
        except AssertionError as exc:
            failed = exc
        assert failed is not None
    finally:
        JobLifecycle.teardown(machine)
