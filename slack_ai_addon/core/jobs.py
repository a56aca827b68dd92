"""Jobs: the plain-data record every part of the system passes around, and the store protocol.

A job is created by an intake (Slack, the CLI, the Blender panel), claimed atomically by one
node under a lease, prepared (interpretation, no bpy), rendered on Blender's main thread,
then finished (outputs stored, replies sent). The store is the durable queue; see
`storage/` for the SQLite and SQL Server backends.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

MAX_NODE_FAILURES = 3  # a job that failed on this many different nodes fails for good
MAX_REQUEST_CHARS = 4000  # longer requests are truncated with a note


class JobKind(str, Enum):
    RENDER = "render"
    ANALYZE = "analyze"


class JobStatus(str, Enum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    RUNNING = "running"
    UPLOADING = "uploading"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


# Allowed transitions. QUEUED is reachable again from the in-flight states (lease expiry,
# a node failure that still leaves attempts).
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.CLAIMED, JobStatus.CANCELLED, JobStatus.FAILED}),
    # CLAIMED -> DONE: an analysis job has no render step (prepare, then finish).
    JobStatus.CLAIMED: frozenset({JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.FAILED, JobStatus.CANCELLED,
                                  JobStatus.DONE}),
    JobStatus.RUNNING: frozenset({JobStatus.UPLOADING, JobStatus.QUEUED, JobStatus.FAILED, JobStatus.CANCELLED,
                                  JobStatus.DONE}),
    JobStatus.UPLOADING: frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.QUEUED, JobStatus.CANCELLED}),
    JobStatus.DONE: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


class InvalidTransition(RuntimeError):
    pass


def check_transition(old: JobStatus, new: JobStatus) -> None:
    if new is not old and new not in TRANSITIONS[old]:
        raise InvalidTransition(f"job cannot go from {old.value} to {new.value}")


@dataclass
class Requester:
    """Who asked, and where the answer goes. All strings; empty when not from Slack."""

    team_id: str = ""
    channel_id: str = ""
    user_id: str = ""
    user_name: str = ""
    thread_ts: str = ""  # thread the result belongs in ("" = start one at the placeholder)
    response_url: str = ""
    source: str = "cli"  # cli | slack | blender_ui | farm


@dataclass
class JobOutput:
    """One produced file. `role` is image | video | poster | spec | blend."""

    role: str
    path: str
    content_type: str = "application/octet-stream"
    size_bytes: int = 0
    s3_key: str = ""
    url: str = ""
    slack_file_id: str = ""


def new_job_id() -> str:
    # Sortable by creation time and short enough to type in `/blender cancel`.
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


@dataclass
class Job:
    kind: JobKind
    request_text: str
    id: str = field(default_factory=new_job_id)
    status: JobStatus = JobStatus.QUEUED
    requester: Requester = field(default_factory=Requester)
    spec: dict[str, Any] | None = None  # SceneSpec as JSON data once interpreted
    parent_job_id: str = ""  # a thread follow-up edits this job's spec
    options: dict[str, Any] = field(default_factory=dict)  # e.g. {"engine": "workbench", "quality": "high"}
    result: dict[str, Any] = field(default_factory=dict)  # analysis result, interpreter notes, provider
    warnings: list[str] = field(default_factory=list)
    attempts: int = 0
    failed_nodes: list[str] = field(default_factory=list)
    lease_owner: str = ""
    lease_expires_at: float = 0.0
    cancel_requested: bool = False
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    outputs: list[JobOutput] = field(default_factory=list)
    error: str = ""
    slack_ts: str = ""  # the placeholder/progress message in Slack
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def copy(self) -> Job:
        return copy.deepcopy(self)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["kind"] = self.kind.value
        data["status"] = self.status.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        data = dict(data)
        data["kind"] = JobKind(data["kind"])
        data["status"] = JobStatus(data["status"])
        data["requester"] = Requester(**data.get("requester") or {})
        data["outputs"] = [JobOutput(**o) for o in data.get("outputs") or []]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@runtime_checkable
class JobStore(Protocol):
    """The durable job queue shared by every node. Implementations must be thread-safe.

    All methods take and return copies: mutating a returned Job changes nothing until it
    is passed back to `save`.
    """

    def add(self, job: Job) -> Job:
        """Insert a new job (status queued)."""
        ...

    def get(self, job_id: str) -> Job | None:
        ...

    def save(self, job: Job) -> None:
        """Write every field of an existing job (status transitions are checked)."""
        ...

    def claim_next(self, owner: str, lease_s: float, kinds: tuple[JobKind, ...] | None = None) -> Job | None:
        """Atomically take the oldest queued job: status claimed, lease set, attempts += 1."""
        ...

    def claim(self, job_id: str, owner: str, lease_s: float) -> Job | None:
        """Atomically take one specific queued job (the CLI's own job); None if taken."""
        ...

    def renew_lease(self, job_id: str, owner: str, lease_s: float) -> bool:
        """Heartbeat; False when the job is no longer ours (lease lost, cancelled)."""
        ...

    def requeue_expired(self, now: float | None = None) -> list[str]:
        """Send in-flight jobs with expired leases back to queued (or failed after too many
        node failures); returns their ids."""
        ...

    def request_cancel(self, job_id: str) -> Job | None:
        """Queued jobs are cancelled at once; running ones get `cancel_requested`."""
        ...

    def set_slack_ts(self, job_id: str, ts: str) -> None:
        """Record the job's Slack message. Touches only that column: a full `save` from a
        stale copy could undo a claim made meanwhile by another node."""
        ...

    def list_jobs(self, *, user_id: str = "", statuses: tuple[JobStatus, ...] | None = None,
                  limit: int = 20) -> list[Job]:
        """Newest first."""
        ...

    def count(self, statuses: tuple[JobStatus, ...]) -> int:
        ...


@runtime_checkable
class ActivityRecorder(Protocol):
    """History tables beside the jobs (messages, llm_calls, audit_log). Every backend of
    JobStore also implements this; calls must never raise into the caller's work (a down
    database buffers them)."""

    def record_message(self, *, correlation_id: str, direction: str, channel_id: str = "",
                       user_id: str = "", thread_ts: str = "", ts: str = "", kind: str = "",
                       text: str = "", job_id: str = "") -> None:
        """direction: "in" (a Slack request) or "out" (a reply we sent)."""
        ...

    def record_llm_call(self, *, correlation_id: str, provider: str, requested_model: str,
                        actual_model: str, task: str, latency_ms: float, prompt_tokens: int = 0,
                        completion_tokens: int = 0, cost_usd: float = 0.0, error_class: str = "",
                        job_id: str = "") -> None:
        ...

    def record_audit(self, *, actor: str, action: str, target: str = "", detail: str = "",
                     allowed: bool = True) -> None:
        ...


class InMemoryJobStore:
    """A JobStore in a dict, for tests and for a Blender session with no database."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.RLock()
        self.messages: list[dict[str, Any]] = []
        self.llm_calls: list[dict[str, Any]] = []
        self.audit: list[dict[str, Any]] = []

    def record_message(self, **fields: Any) -> None:
        with self._lock:
            self.messages.append(dict(fields, at=time.time()))

    def record_llm_call(self, **fields: Any) -> None:
        with self._lock:
            self.llm_calls.append(dict(fields, at=time.time()))

    def record_audit(self, **fields: Any) -> None:
        with self._lock:
            self.audit.append(dict(fields, at=time.time()))

    def close(self) -> None:
        pass

    def add(self, job: Job) -> Job:
        with self._lock:
            if job.id in self._jobs:
                raise ValueError(f"job {job.id} exists")
            self._jobs[job.id] = job.copy()
            return job.copy()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.copy() if job else None

    def save(self, job: Job) -> None:
        with self._lock:
            old = self._jobs.get(job.id)
            if old is None:
                raise KeyError(job.id)
            check_transition(old.status, job.status)
            job.updated_at = time.time()
            self._jobs[job.id] = job.copy()

    def _take(self, job: Job, owner: str, lease_s: float) -> Job:
        job.status = JobStatus.CLAIMED
        job.lease_owner = owner
        job.lease_expires_at = time.time() + lease_s
        job.attempts += 1
        job.updated_at = time.time()
        return job.copy()

    def claim_next(self, owner: str, lease_s: float, kinds: tuple[JobKind, ...] | None = None) -> Job | None:
        with self._lock:
            queued = [j for j in self._jobs.values() if j.status is JobStatus.QUEUED
                      and (kinds is None or j.kind in kinds) and owner not in j.failed_nodes]
            if not queued:
                return None
            job = min(queued, key=lambda j: (j.created_at, j.id))
            return self._take(job, owner, lease_s)

    def claim(self, job_id: str, owner: str, lease_s: float) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status is not JobStatus.QUEUED:
                return None
            return self._take(job, owner, lease_s)

    def renew_lease(self, job_id: str, owner: str, lease_s: float) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.lease_owner != owner or job.status.is_final or job.status is JobStatus.QUEUED:
                return False
            job.lease_expires_at = time.time() + lease_s
            return not job.cancel_requested

    def requeue_expired(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        ids = []
        with self._lock:
            for job in self._jobs.values():
                if job.status in (JobStatus.CLAIMED, JobStatus.RUNNING, JobStatus.UPLOADING) \
                        and job.lease_expires_at < now:
                    if job.lease_owner and job.lease_owner not in job.failed_nodes:
                        job.failed_nodes.append(job.lease_owner)
                    job.lease_owner = ""
                    if len(job.failed_nodes) >= MAX_NODE_FAILURES:
                        job.status = JobStatus.FAILED
                        job.error = f"failed on {len(job.failed_nodes)} nodes (lease expired)"
                    else:
                        job.status = JobStatus.QUEUED
                    job.updated_at = now
                    ids.append(job.id)
        return ids

    def request_cancel(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.status is JobStatus.QUEUED:
                job.status = JobStatus.CANCELLED
                job.error = "cancelled before it started"
            elif not job.status.is_final:
                job.cancel_requested = True
            job.updated_at = time.time()
            return job.copy()

    def set_slack_ts(self, job_id: str, ts: str) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                job.slack_ts = ts
                job.updated_at = time.time()

    def list_jobs(self, *, user_id: str = "", statuses: tuple[JobStatus, ...] | None = None,
                  limit: int = 20) -> list[Job]:
        with self._lock:
            jobs = [j for j in self._jobs.values()
                    if (not user_id or j.requester.user_id == user_id)
                    and (statuses is None or j.status in statuses)]
            jobs.sort(key=lambda j: (j.created_at, j.id), reverse=True)
            return [j.copy() for j in jobs[:limit]]

    def count(self, statuses: tuple[JobStatus, ...]) -> int:
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.status in statuses)
