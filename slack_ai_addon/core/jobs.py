"""Jobs: the plain-data record every part of the system passes around, and the store protocol.

A job is created by an intake (Slack, the CLI, the Blender panel), claimed atomically by one
node under a lease, prepared (interpretation, no bpy), rendered on Blender's main thread,
then finished (outputs stored, replies sent). The store is the durable queue; see
`storage/` for the SQLite and SQL Server backends.
"""

from __future__ import annotations

import copy
import dataclasses
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


# The one table of allowed status changes, applied identically by every store backend.
# QUEUED is reachable again from the in-flight states (lease expiry, a node handing a job
# back on shutdown).
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
LIVE_STATUSES: tuple[JobStatus, ...] = (JobStatus.CLAIMED, JobStatus.RUNNING, JobStatus.UPLOADING)


class InvalidTransition(RuntimeError):
    pass


def check_transition(old: JobStatus, new: JobStatus) -> None:
    if new is not old and new not in TRANSITIONS[old]:
        raise InvalidTransition(f"job cannot go from {old.value} to {new.value}")


def allowed_from(new: JobStatus) -> tuple[JobStatus, ...]:
    """The live statuses a fenced write may move to `new` from (the row must hold one)."""
    return tuple(old for old in LIVE_STATUSES if old is new or new in TRANSITIONS[old])


@dataclass(frozen=True)
class Lease:
    """The fencing token of one claim: a write naming it applies only while it is current.

    `attempt` is the job's `attempts` after the claim; every new claim raises it, so a node
    whose lease expired and whose job was claimed again can never write over the new owner
    even if it happens to have the same owner name (a restarted process with a fixed id).
    """

    job_id: str
    owner: str
    attempt: int


class Fenced(str, Enum):
    """What a fenced write did."""

    APPLIED = "applied"
    LOST = "lost"  # the lease is no longer ours (expired and taken, or the job is final): nothing written
    BUFFERED = "buffered"  # the database is unreachable: kept in the outbox, replayed under the same fence
    FAILED = "failed"  # neither the database nor the outbox took it (disk full): nothing written


class Renewal(str, Enum):
    KEPT = "kept"
    CANCEL = "cancel"  # still ours, and someone asked to cancel it
    LOST = "lost"
    UNKNOWN = "unknown"  # the database did not answer: keep going, ask again next beat


# What each kind of write owns: it writes these columns and nothing else. A claim and a
# renewal own the lease columns; `set_slack_ts` owns slack_ts; progress owns progress.
WRITE_COLUMNS: dict[str, tuple[str, ...]] = {
    "progress": ("progress",),
    "running": ("status", "spec", "result", "warnings", "timings"),
    "uploading": ("status", "outputs", "timings", "warnings"),
    "final": ("status", "spec", "result", "warnings", "timings", "outputs", "error", "render_s", "progress"),
    "release": ("status", "lease_owner", "progress"),
}


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
    slack_ts: str = ""  # the placeholder/progress message in Slack (the thread's root for a slash command)
    progress: dict[str, Any] = field(default_factory=dict)  # the running node's latest RenderProgress
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def copy(self) -> Job:
        return copy.deepcopy(self)

    @property
    def lease(self) -> Lease:
        """The fencing token of the claim this copy came from."""
        return Lease(self.id, self.lease_owner, self.attempts)

    @property
    def thread_root(self) -> str:
        """The Slack thread the job's replies belong in ("" when none is known yet)."""
        return self.requester.thread_ts or self.slack_ts

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


NODE_OFFLINE_AFTER_S = 60.0  # a node whose heartbeat is older than this is shown offline


@dataclass
class NodeInfo:
    """One node of the farm, as its heartbeat last wrote it (the `nodes` table)."""

    id: str
    host: str = ""
    role: str = "worker"  # listener | worker | both | desktop
    blender_version: str = ""
    engines: str = ""  # comma-separated: cycles,eevee,workbench
    gpu: str = ""  # "" = CPU only
    started_at: float = 0.0
    last_heartbeat: float = 0.0
    current_job: str = ""
    jobs_done: int = 0
    jobs_failed: int = 0
    state: str = "idle"  # idle | rendering | draining | blocked (too many failed renders) | offline

    def shown_state(self, now: float | None = None) -> str:
        """The state to show: offline when the heartbeat stopped, whatever the row says."""
        now = time.time() if now is None else now
        return "offline" if now - self.last_heartbeat > NODE_OFFLINE_AFTER_S else self.state


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


@runtime_checkable
class JobStore(ActivityRecorder, Protocol):
    """The durable job queue shared by every node, with the history tables beside it
    (ActivityRecorder). Implementations must be thread-safe.

    All methods take and return copies. Every change a node makes to a job it runs names the
    `Lease` it holds and writes only the columns that kind of write owns (`WRITE_COLUMNS`);
    there is no "save the whole row", so a stale copy can never undo another writer's work.
    """

    def add(self, job: Job) -> Job:
        """Insert a new job (status queued)."""
        ...

    def get(self, job_id: str) -> Job | None:
        ...

    def claim_next(self, owner: str, lease_s: float, kinds: tuple[JobKind, ...] | None = None) -> Job | None:
        """Atomically take the oldest queued job this owner has not failed: status claimed,
        lease set, attempts += 1. The returned job's `lease` is the fencing token."""
        ...

    def claim(self, job_id: str, owner: str, lease_s: float) -> Job | None:
        """Atomically take one specific queued job (the CLI's own job); None if taken."""
        ...

    def renew_lease(self, lease: Lease, lease_s: float) -> Renewal:
        """Heartbeat: push the lease's expiry; writes nothing else."""
        ...

    def transition(self, lease: Lease, write: str, job: Job, status: JobStatus | None = None) -> Fenced:
        """A fenced write: set `status` (checked against TRANSITIONS) and the columns `write`
        owns, taken from `job`, only while `lease` is current. Never raises for a lost lease."""
        ...

    def requeue_expired(self, now: float | None = None) -> list[str]:
        """Send in-flight jobs with expired leases back to queued (or failed after too many
        node failures); returns their ids."""
        ...

    def request_cancel(self, job_id: str) -> Job | None:
        """Queued jobs are cancelled at once; running ones get `cancel_requested`."""
        ...

    def set_slack_ts(self, job_id: str, ts: str) -> None:
        """Record the job's Slack placeholder. Touches only that column."""
        ...

    def set_outputs(self, job_id: str, outputs: list[JobOutput]) -> None:
        """Record late object-storage links on a finished job. Touches only that column."""
        ...

    def find_thread_job(self, channel_id: str, thread_ts: str) -> Job | None:
        """The newest render job whose Slack thread is (channel, thread_ts), from any node."""
        ...

    def list_jobs(self, *, user_id: str = "", statuses: tuple[JobStatus, ...] | None = None,
                  limit: int = 20) -> list[Job]:
        """Newest first."""
        ...

    def count(self, statuses: tuple[JobStatus, ...]) -> int:
        ...

    def flush_outbox(self) -> int:
        """Write what was buffered while the database was down; returns how many records."""
        ...

    def pending_writes(self, job_id: str) -> int:
        """How many of this job's writes still wait in the outbox."""
        ...

    def outbox_length(self) -> int:
        """How many records of any kind wait in the outbox (a metric)."""
        ...

    def upsert_node(self, node: NodeInfo) -> None:
        """Write this node's registry row (its heartbeat)."""
        ...

    def list_nodes(self) -> list[NodeInfo]:
        ...

    def close(self) -> None:
        ...
