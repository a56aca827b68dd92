"""Jobs: the plain-data record every part of the system passes around, and the store protocol.

A job is created by an intake (Slack, the CLI, the Blender panel), claimed atomically by one
node under a lease, prepared (interpretation, no bpy), rendered on Blender's main thread,
then finished (outputs stored, replies sent). The store is the durable queue; see
`storage/` for the SQLite and SQL Server backends.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

MAX_NODE_FAILURES = 3  # a job that failed on this many different nodes fails for good
MAX_REQUEST_CHARS = 4000  # longer requests are truncated with a note
# Fair scheduling: a requester's jobs claimed this recently (or still in flight) count as
# their current use of the farm; the requester with the least use is served first.
FAIR_SHARE_WINDOW_S = 600.0


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
    # A release also records an engine requirement learnt while preparing (capability routing).
    "release": ("status", "lease_owner", "progress", "req_engine"),
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


ENGINES: tuple[str, ...] = ("cycles", "eevee", "workbench")
_ENGINE_NAMES = {"cycles": "Cycles", "eevee": "EEVEE", "workbench": "Workbench"}


def blender_version_number(text: str) -> int:
    """A Blender version as one comparable integer: "4.2" -> 40200, "5.0.1" -> 50001; 0 if none."""
    parts = [int(p) for p in re.findall(r"\d+", str(text or ""))[:3]]
    if not parts:
        return 0
    parts += [0] * (3 - len(parts))
    return parts[0] * 10000 + min(parts[1], 99) * 100 + min(parts[2], 99)


def blender_version_text(number: int) -> str:
    major, rest = divmod(int(number), 10000)
    minor, patch = divmod(rest, 100)
    return f"{major}.{minor}" + (f".{patch}" if patch else "")


def capability_tags(value: Any) -> tuple[str, ...]:
    """Capability tags from a comma-separated string or a list: trimmed, lower-case, in order, once each."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    seen: dict[str, None] = {}
    for item in items:
        tag = str(item).strip().lower()
        if tag:
            seen.setdefault(tag, None)
    return tuple(seen)


@dataclass(frozen=True)
class JobRequirements:
    """What a node must offer to claim a job (capability routing). Empty: any render node."""

    engine: str = ""  # "" or one of ENGINES
    gpu: bool = False
    blender: int = 0  # minimum Blender version (blender_version_number); 0 = any
    tags: tuple[str, ...] = ()  # every one must be among the node's tags

    @property
    def empty(self) -> bool:
        return not (self.engine or self.gpu or self.blender or self.tags)

    def merged(self, admin: JobRequirements) -> JobRequirements:
        """These (the job's own) with the admin's farm-wide requirements: the admin's engine
        wins, a GPU is needed if either says so, the higher minimum version, all tags."""
        return JobRequirements(engine=admin.engine or self.engine, gpu=self.gpu or admin.gpu,
                               blender=max(self.blender, admin.blender), tags=capability_tags(self.tags + admin.tags))

    def describe(self) -> str:
        parts = []
        if self.gpu:
            parts.append("a GPU")
        if self.engine:
            parts.append(_ENGINE_NAMES.get(self.engine, self.engine))
        if self.blender:
            parts.append(f"Blender {blender_version_text(self.blender)} or newer")
        if self.tags:
            parts.append("tag" + ("s " if len(self.tags) > 1 else " ") + ", ".join(self.tags))
        return ", ".join(parts) or "nothing special"

    @classmethod
    def of_job(cls, job: Job) -> JobRequirements:
        """What the job itself asks for, before the admin's settings: the engine it chose
        (an explicit engine option, or the engine of a finished spec it carries with no text
        left to interpret), and a GPU, a minimum Blender version or tags from its options.
        A spec still to be interpreted names no engine yet: the text decides it on the node."""
        if job.kind is not JobKind.RENDER:
            return cls()
        options = job.options or {}
        engine = str(options.get("engine") or "").strip().lower()
        if not engine and job.spec is not None and not job.request_text.strip():
            engine = str((job.spec.get("output") or {}).get("engine") or "").strip().lower()
        return cls(engine=engine if engine in ENGINES else "", gpu=bool(options.get("gpu")),
                   blender=blender_version_number(str(options.get("min_blender") or "")),
                   tags=capability_tags(options.get("tags") or ()))

    @classmethod
    def from_settings(cls, require_engine: str = "", require_gpu: bool = False,
                      require_blender: str = "") -> JobRequirements:
        engine = str(require_engine or "").strip().lower()
        return cls(engine=engine if engine in ENGINES else "", gpu=bool(require_gpu),
                   blender=blender_version_number(require_blender))


@dataclass(frozen=True)
class NodeCapabilities:
    """What one node can render: its engines, GPU ("" = none), Blender version and tags."""

    engines: tuple[str, ...] = ()
    gpu: str = ""
    blender: int = 0
    tags: tuple[str, ...] = ()

    def missing(self, req: JobRequirements) -> list[str]:
        """What this node lacks for `req` (empty: it can run it)."""
        lacks = []
        if req.gpu and not self.gpu:
            lacks.append("a GPU")
        if req.engine and req.engine not in self.engines:
            lacks.append(_ENGINE_NAMES.get(req.engine, req.engine))
        if req.blender and self.blender < req.blender:
            lacks.append(f"Blender {blender_version_text(req.blender)}")
        lacks.extend(f"tag {t}" for t in req.tags if t not in self.tags)
        return lacks

    def can_run(self, req: JobRequirements) -> bool:
        return not self.missing(req)

    @classmethod
    def of_node(cls, node: NodeInfo) -> NodeCapabilities:
        return cls(engines=capability_tags(node.engines), gpu=node.gpu,
                   blender=blender_version_number(node.blender_version), tags=capability_tags(node.tags))


def live_render_nodes(nodes: list[NodeInfo], now: float | None = None) -> list[NodeCapabilities]:
    """The capabilities of the registry's nodes that can take a render now: a heartbeat
    within NODE_OFFLINE_AFTER_S, not blocked, draining or offline, and some engine."""
    now = time.time() if now is None else now
    return [NodeCapabilities.of_node(n) for n in nodes
            if n.shown_state(now) in ("idle", "rendering") and n.engines.strip()]


def unrunnable_reason(req: JobRequirements, nodes: list[NodeCapabilities]) -> str:
    """Why none of `nodes` (the live render nodes) can run a job needing `req`; "" if one can.
    Names each requirement no live node meets, else says no node meets all of them at once."""
    if req.empty or any(n.can_run(req) for n in nodes):
        return ""
    unmet = []
    if req.gpu and not any(c.gpu for c in nodes):
        unmet.append("it needs a GPU node; the farm has 0 live GPU nodes")
    if req.engine and not any(req.engine in c.engines for c in nodes):
        unmet.append(f"it needs {_ENGINE_NAMES.get(req.engine, req.engine)}; no live node offers it")
    if req.blender and not any(c.blender >= req.blender for c in nodes):
        unmet.append(f"it needs Blender {blender_version_text(req.blender)} or newer; no live node runs it")
    unmet.extend(f"it needs the tag {tag}; no live node carries it" for tag in req.tags
                 if not any(tag in c.tags for c in nodes))
    text = "; ".join(unmet) or f"it needs {req.describe()}, and no live node has all of these at once"
    total = len(nodes)
    return f"No render node can run this job: {text} ({total} live render node{'' if total == 1 else 's'} in all)."


def new_job_id() -> str:
    # Sortable by creation time and short enough to type in `/blender cancel`. 32 random bits
    # per second: a farm creating 2,000 jobs in one second collides with odds of about 1 in
    # 2,000 (24 bits made that about 1 in 8, and bench_db met it).
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


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
    requirements: JobRequirements = field(default_factory=JobRequirements)  # what a node needs to claim it
    claimed_at: float = 0.0  # time of the latest claim (fair scheduling weighs recent claims per user)
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
        req = data.get("requirements") or {}
        if isinstance(req, dict):
            data["requirements"] = JobRequirements(**dict(req, tags=tuple(req.get("tags") or ())))
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
    tags: list[str] = field(default_factory=list)  # capability tags (Settings.node_tags)

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

    def claim_next(self, owner: str, lease_s: float, kinds: tuple[JobKind, ...] | None = None,
                   capabilities: NodeCapabilities | None = None) -> Job | None:
        """Atomically take the next queued job this owner has not failed and can run
        (`capabilities`; None: no capability filter): status claimed, lease set, attempts
        += 1, claimed_at set. Fair across requesters: the job of the requester with the
        fewest recent claims goes first, then the oldest. The returned job's `lease` is the
        fencing token."""
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

    def queued_requirements(self) -> list[tuple[str, JobRequirements]]:
        """The queued jobs that need something of a node (capability routing), with what."""
        ...

    def fail_queued(self, job_id: str, error: str) -> Job | None:
        """Fail a job that is still queued (no node can run it); the row when this call did
        it, None when it was no longer queued (so exactly one caller announces it)."""
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
