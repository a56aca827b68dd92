"""The add-on's session: the runtime, the Slack agent, and what the panel shows.

Threads never touch this directly except through `post()`: they put small typed messages
on a queue, and the drain timer applies them on the main thread (`apply_messages`). The
panel reads the resulting plain attributes. Nothing here imports bpy, so the state logic is
testable with stubs; the operators and the timer call it from Blender's main thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.config import Settings
from ..core.jobs import Job, JobKind, Requester
from ..core.pipeline import JobEvent, JobPipeline
from .service_checks import ServiceCheckResult, service_urls, start_check

log = logging.getLogger(__name__)

RECENT_JOBS = 8
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class JobEventMessage:
    """A pipeline event, copied off the worker thread that emitted it."""

    event: JobEvent


@dataclass(frozen=True)
class AgentStopped:
    """The agent's stop() finished (it runs off the main thread)."""

    detail: str = ""


@dataclass
class JobRow:
    """One line of the panel's job list."""

    job_id: str
    kind: str
    status: str
    text: str
    updated_at: float
    output_dir: str = ""
    first_output: str = ""
    error: str = ""
    progress: float = 0.0  # 0..1 while rendering


@dataclass
class Session:
    runtime: Any = None  # slack_ai_addon.runtime.Runtime
    agent: Any = None  # slack_ai_addon.agent.service.AgentService
    settings: Settings | None = None
    refused: str = ""  # why the last connect was refused (online access, missing tokens)
    last_error: str = ""
    checks: dict[str, ServiceCheckResult] = field(default_factory=dict)
    checks_pending: set[str] = field(default_factory=set)
    jobs: dict[str, JobRow] = field(default_factory=dict)
    current_job_id: str = ""
    messages: queue.SimpleQueue[object] = field(default_factory=queue.SimpleQueue)
    stopping: list[threading.Thread] = field(default_factory=list)  # closers and checks to join
    changed: bool = False  # the panel needs a redraw


session = Session()

# Tests (and a future "worker only" mode) replace this to build a runtime from stubs.
RuntimeFactory = Callable[[Settings], Any]


def _default_runtime_factory(settings: Settings) -> Any:
    from ..runtime import build_runtime

    return build_runtime(settings, cli=False)


def _default_agent_factory(runtime: Any, settings: Settings) -> Any:
    from ..agent.service import AgentService

    return AgentService(runtime, settings=settings)


runtime_factory: RuntimeFactory = _default_runtime_factory
agent_factory: Callable[[Any, Settings], Any] = _default_agent_factory


def post(message: object) -> None:
    """Any thread: hand a message to the main thread."""
    session.messages.put(message)


class PanelJobListener:
    """Pipeline listener: copies events to the queue and returns at once (any thread)."""

    def on_job_event(self, event: JobEvent) -> None:
        post(JobEventMessage(event))


# ------------------------------------------------------------------ main thread only

def apply_messages(budget_s: float = 0.05) -> bool:
    """Apply queued messages within the budget; True when something changed."""
    deadline = time.monotonic() + budget_s
    changed = False
    while True:
        try:
            msg = session.messages.get_nowait()
        except queue.Empty:
            break
        changed = True
        if isinstance(msg, ServiceCheckResult):
            session.checks[msg.service] = msg
            session.checks_pending.discard(msg.service)
        elif isinstance(msg, JobEventMessage):
            _apply_job_event(msg.event)
        elif isinstance(msg, AgentStopped):
            session.stopping = [t for t in session.stopping if t.is_alive()]
        if time.monotonic() > deadline:
            break
    session.changed = session.changed or changed
    return changed


def _apply_job_event(event: JobEvent) -> None:
    job = event.job
    row = session.jobs.get(job.id) or JobRow(job.id, job.kind.value, job.status.value,
                                             job.request_text[:80], job.updated_at)
    row.status = job.status.value
    row.updated_at = time.time()
    row.error = job.error
    if event.kind == "started":
        session.current_job_id = job.id
        row.progress = 0.0
    if event.progress is not None:
        p = event.progress
        row.progress = min(1.0, p.frame / p.frames) if p.frames > 0 else 0.0
    if job.outputs:
        row.first_output = next((o.path for o in job.outputs if o.role in ("image", "video")), job.outputs[0].path)
    if session.runtime is not None and job.kind is JobKind.RENDER:
        row.output_dir = str(session.runtime.pipeline.job_dir(job))
    if event.kind in ("done", "failed", "cancelled"):
        row.progress = 1.0 if event.kind == "done" else row.progress
        if session.current_job_id == job.id:
            session.current_job_id = ""
    session.jobs[job.id] = row
    for old in sorted(session.jobs.values(), key=lambda r: r.updated_at)[:-RECENT_JOBS]:
        del session.jobs[old.job_id]


def recent_jobs() -> list[JobRow]:
    return sorted(session.jobs.values(), key=lambda r: r.updated_at, reverse=True)


def ensure_runtime(settings: Settings, *, online_access: bool = True) -> Any:
    """Build the runtime once (also without Slack: the panel can render locally).

    With Blender's online access off, services off this machine are left out (the offline
    interpreter, the local folder and SQLite stand in) and the panel says which.
    """
    if session.runtime is None:
        if not online_access:
            from ..core.config import local_only

            settings, dropped = local_only(settings)
            if dropped:
                session.refused = (f"Online access is off: {', '.join(dropped)} not used; jobs run on the "
                                   "embedded defaults (offline interpreter, local folder, SQLite)")
        rt = runtime_factory(settings)
        rt.add_listener(PanelJobListener())
        session.runtime = rt
        session.settings = settings
    return session.runtime


def dispatcher_pump(budget_s: float) -> bool:
    """Timer pump: drain the dispatcher; True while work is in flight."""
    rt = session.runtime
    if rt is None:
        return False
    # Incremental: a frame per tick, so the UI (progress bar, Cancel) lives during a render.
    dispatcher = rt.dispatcher(incremental=True, role="desktop")
    done = dispatcher.drain(budget_s)
    return bool(done) or not dispatcher.idle()


def ui_pump(budget_s: float) -> bool:
    """Timer pump: apply thread messages; redraws are the caller's business."""
    return apply_messages(min(budget_s, 0.02))


def network_refusal(settings: Settings, services: list[str], online_access: bool) -> str:
    """Why the network may not be used for these services, or "" when it may.

    Blender's rule: add-ons go online only when online access is allowed. Loopback
    addresses (the local sandbox, LM Studio on this machine) are not "online".
    """
    if online_access:
        return ""
    from ..core.config import is_loopback_url

    remote = [u for s in services for u in service_urls(s, settings) if not is_loopback_url(u)]
    if not remote:
        return ""
    return ("Online access is off in Blender (Preferences > System > Network > Allow Online Access, "
            "or start Blender with --online-mode)")


def connect(settings: Settings, *, online_access: bool) -> str:
    """Start the Slack agent. Returns "" on success, else the reason it was refused."""
    session.refused = ""
    if not (settings.slack_bot_token and settings.slack_app_token):
        session.refused = "Slack tokens missing: set the bot token (xoxb-) and app token (xapp-)"
        return session.refused
    refusal = network_refusal(settings, ["slack"], online_access)
    if refusal:
        session.refused = refusal
        return refusal
    if session.agent is not None:
        return ""
    rt = ensure_runtime(settings, online_access=online_access)
    agent = agent_factory(rt, settings)
    agent.start()
    session.agent = agent
    session.changed = True
    return ""


def disconnect() -> None:
    """Stop the agent off the main thread (a closing websocket can take seconds)."""
    agent = session.agent
    session.agent = None
    session.changed = True
    if agent is None:
        return

    def stop() -> None:
        try:
            agent.stop(STOP_TIMEOUT_S)
        except BaseException:  # the main thread must hear that the worker ended
            log.exception("agent stop failed")
        post(AgentStopped())

    # Daemon: Blender quitting must not wait for a websocket that never answers.
    thread = threading.Thread(target=stop, name="slackai-agent-stop", daemon=True)
    thread.start()
    session.stopping.append(thread)


def start_service_check(service: str, settings: Settings, *, online_access: bool) -> str:
    """Kick off one Test button; returns a refusal reason or ""."""
    refusal = network_refusal(settings, [service], online_access)
    if refusal:
        session.checks[service] = ServiceCheckResult(service, False, refusal)
        return refusal
    session.checks_pending.add(service)
    # Joined (bounded) on unregister like the agent's closer: no check outlives the add-on.
    session.stopping.append(start_check(service, settings, post))
    return ""


def submit_local_render(settings: Settings, prompt: str, *, engine: str = "", online_access: bool = True) -> Job:
    """The panel's "Render" button: a job through the same pipeline as Slack and the CLI."""
    rt = ensure_runtime(settings, online_access=online_access)
    job = Job(kind=JobKind.RENDER, request_text=prompt, requester=Requester(source="blender_ui"),
              options={"engine": engine} if engine and engine != "DEFAULT" else {})
    job = JobPipeline.validate_request(job)  # bad input is reported at once, without I/O
    # The insert runs off the main thread: a slow database must not freeze Blender. The
    # panel lists the job at once (so Cancel finds it before the insert is through).
    rt.dispatcher(incremental=True, role="desktop").submit(job)
    session.jobs[job.id] = JobRow(job.id, job.kind.value, job.status.value, job.request_text[:80], time.time())
    session.changed = True
    return job


def cancel_current() -> str:
    """Cancel the running (or newest unfinished) job; returns its id or ""."""
    rt = session.runtime
    if rt is None:
        return ""
    dispatcher = rt.dispatcher(incremental=True, role="desktop")
    job_id = session.current_job_id or dispatcher.current_job_id
    if not job_id:  # the newest unfinished job the panel knows of (in memory: no database here)
        live = [r for r in recent_jobs() if r.status in ("queued", "claimed", "running", "uploading")]
        job_id = live[0].job_id if live else ""
    if not job_id:
        return ""
    dispatcher.request_cancel(job_id)  # stops it here at once; the store hears on the I/O pool
    return str(job_id)


def connection_state() -> tuple[str, str]:
    """(state, detail) for the panel: connected, connecting, reconnecting, offline, error, refused."""
    if session.agent is None:
        if session.refused:
            return "refused", session.refused
        return "offline", ""
    try:
        status = session.agent.status()
    except Exception as exc:  # the panel must draw even if the agent is broken
        return "error", f"{type(exc).__name__}"
    return str(getattr(status, "state", "offline")), str(getattr(status, "detail", "") or "")


def node_role() -> str:
    if session.agent is not None:
        return "agent + renderer"
    if session.runtime is not None:
        return "renderer (no Slack)"
    return "idle"


def queue_length() -> int:
    """Queued jobs in the shared table, as the dispatcher's I/O pool last counted them
    (-1: the database did not answer). The panel draws often; it never waits on a database."""
    rt = session.runtime
    if rt is None:
        return 0
    return int(rt.dispatcher(incremental=True, role="desktop").queue_depth)


def shutdown(timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Unregister: stop the agent and the runtime, and wait for our threads (bounded)."""
    agent, session.agent = session.agent, None
    if agent is not None:
        try:
            agent.stop(timeout_s)
        except Exception:
            log.exception("agent stop failed")
    for thread in session.stopping:
        thread.join(timeout_s)
    rt, session.runtime = session.runtime, None
    if rt is not None:
        try:
            rt.close()
        except Exception:
            log.exception("runtime close failed")
    fresh = Session()
    for name in ("checks", "checks_pending", "jobs", "stopping", "refused", "last_error", "settings",
                 "current_job_id"):
        setattr(session, name, getattr(fresh, name))
    while True:
        try:
            session.messages.get_nowait()
        except queue.Empty:
            break
