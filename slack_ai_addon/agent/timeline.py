"""A render's progress as Slack's streamed task timeline, in the job's thread.

One streamed message per job (chat.startStream / chat.appendStream / chat.stopStream with
`task_update` chunks): interpret → build → draft → render → encode → upload, each step
pending, in progress, complete or error, the render's title carrying its frames or percent.

Rules kept (docs/RESULTS.md, "Timeline"): a stream is a thread reply; in a channel it names
the requester as recipient (`recipient_user_id`, `recipient_team_id`); appends are sent only
when a step changes or, for the render's percent, at most once per `interval_s`; titles stay
short. The placeholder's paced chat.update progress (with its Cancel button) goes on beside
the stream, so the stream adds no risk: when Slack refuses to stream (an error on start, an
older workspace) or a stream ends early (its lifetime, an append refused), the timeline
stops trying and the chat.update progress is what the user sees, as before streaming.

Called on the reply lanes only (agent/replies.py), in order per job.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from ..core.pipeline import RenderProgress
from ..storage.db.budget import BucketSpec, Priority, SlackBudget
from .blocks import clip, escape

log = logging.getLogger(__name__)

STEPS: tuple[tuple[str, str], ...] = (
    ("interpret", "Interpret the request"),
    ("build", "Build the scene"),
    ("draft", "Render a draft"),
    ("render", "Render"),
    ("encode", "Encode"),
    ("upload", "Upload to Slack"),
)
TITLE_MAX = 120
# chat.appendStream in the farm's Slack budget: ASSUMPTION Tier 4 (100 a minute per app),
# a small burst, and a reserve that frame progress leaves to step changes.
APPEND_PER_MINUTE = 100.0
APPEND_BURST = 4.0
APPEND_RESERVE = 2.0


@dataclass
class _Step:
    id: str
    title: str
    status: str = "pending"
    details: str = ""  # sent once (Slack appends details)


@dataclass
class Timeline:
    """One job's streamed timeline."""

    channel: str
    thread_ts: str
    steps: list[_Step]
    ts: str = ""
    live: bool = False  # started and not stopped or refused
    refused: str = ""  # the error that ended streaming for this job
    last_append: float = 0.0
    sent: dict[str, tuple[str, str]] = field(default_factory=dict)  # step id -> (status, title) Slack has

    def step(self, step_id: str) -> _Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def set(self, step_id: str, status: str, title: str = "", details: str = "") -> None:
        s = self.step(step_id)
        if s is None:
            return
        s.status = status
        if title:
            s.title = title[:TITLE_MAX]
        if details and not s.details:
            s.details = details[:500]

    def changes(self) -> list[dict[str, Any]]:
        """task_update chunks for what changed since the last send."""
        chunks = []
        for s in self.steps:
            if self.sent.get(s.id) != (s.status, s.title):
                chunk: dict[str, Any] = {"type": "task_update", "id": s.id, "title": s.title, "status": s.status}
                if s.details and s.id not in self.sent:
                    chunk["details"] = s.details
                chunks.append(chunk)
        return chunks

    def mark_sent(self) -> None:
        self.sent = {s.id: (s.status, s.title) for s in self.steps}


class Timelines:
    """The timelines of the jobs this node replies for."""

    def __init__(self, web: WebClient, *, interval_s: float = 3.0, enabled: bool = True,
                 budget: SlackBudget | None = None, appends_per_minute: float = APPEND_PER_MINUTE) -> None:
        self.web = web
        self.interval_s = interval_s
        self.enabled = enabled
        # The farm's shared budget (agent/pacing.py, storage/db/budget.py): appends of every
        # node together stay under the method's limit; frame progress spends only the surplus.
        self.budget = budget
        self.append_spec = BucketSpec("chat.appendStream", appends_per_minute, 60.0, APPEND_BURST, APPEND_RESERVE)
        self._jobs: dict[str, Timeline] = {}
        self._team_id = ""
        self._lock = threading.Lock()

    def get(self, job_id: str) -> Timeline | None:
        with self._lock:
            return self._jobs.get(job_id)

    def live(self, job_id: str) -> bool:
        tl = self.get(job_id)
        return tl is not None and tl.live

    def _team(self) -> str:
        if not self._team_id:
            self._team_id = str(self.web.auth_test().get("team_id") or "")
        return self._team_id

    # -- lifecycle (reply lanes)
    def start(self, job_id: str, *, channel: str, thread_ts: str, user_id: str, is_dm: bool, draft: bool,
              provider: str = "") -> None:
        """Open the stream: the request is interpreted, the next step runs."""
        if not self.enabled or not thread_ts or self.get(job_id) is not None:
            return
        steps = [_Step(i, title) for i, title in STEPS if draft or i != "draft"]
        tl = Timeline(channel, thread_ts, steps)
        with self._lock:
            self._jobs[job_id] = tl
        # A provider's name is chosen by an LLM server: escaped like all text echoed to Slack.
        tl.set("interpret", "complete", details=f"interpreted by {escape(clip(provider, 100))}" if provider else "")
        tl.set("draft" if draft else "build", "in_progress")
        kwargs: dict[str, Any] = {}
        try:
            if not is_dm:
                kwargs = {"recipient_user_id": user_id, "recipient_team_id": self._team()}
            resp = self.web.chat_startStream(channel=channel, thread_ts=thread_ts, chunks=tl.changes(),
                                             task_display_mode="timeline", **kwargs)
        except Exception as exc:
            self._give_up(tl, exc, "start")
            return
        tl.ts, tl.live, tl.last_append = str(resp.get("ts") or ""), True, time.monotonic()
        tl.mark_sent()

    def progress(self, job_id: str, progress: RenderProgress | None) -> None:
        tl = self.get(job_id)
        if tl is None or not tl.live or progress is None:
            return
        stage = progress.stage
        changed_step = False
        if stage == "building":
            changed_step = self._advance(tl, "build")
        elif stage == "rendering":
            changed_step = self._advance(tl, "render")
            if progress.frames > 1:
                pct = round(100 * progress.frame / progress.frames)
                tl.set("render", "in_progress", f"Render: frame {progress.frame}/{progress.frames} ({pct}%)")
            else:
                tl.set("render", "in_progress", "Render: the still" if progress.frame == 0 else "Render: done")
        elif stage == "encoding":
            changed_step = self._advance(tl, "encode")
        else:
            return
        self._append(tl, force=changed_step)

    def draft_done(self, job_id: str) -> None:
        tl = self.get(job_id)
        if tl is not None and tl.live:
            tl.set("draft", "complete", details="posted in the thread")
            tl.set("build", "in_progress")
            self._append(tl, force=True)

    def uploading(self, job_id: str) -> None:
        tl = self.get(job_id)
        if tl is not None and tl.live:
            self._advance(tl, "upload")
            self._append(tl, force=True)

    def finish(self, job_id: str, *, ok: bool, note: str = "", blocks: list[dict[str, Any]] | None = None) -> None:
        """Close the stream: every step complete, or the running one in error (cancel, failure)."""
        with self._lock:
            tl = self._jobs.pop(job_id, None)
        if tl is None or not tl.live:
            return
        if ok:
            for s in tl.steps:
                s.status = "complete"
            if blocks is None:
                blocks = []
        else:
            current = next((s for s in tl.steps if s.status == "in_progress"), None) or \
                next((s for s in tl.steps if s.status == "pending"), tl.steps[-1])
            current.status = "error"
            if note:
                current.title = f"{current.title}: {note}"[:TITLE_MAX]
            for s in tl.steps:
                if s.status in ("pending", "in_progress"):
                    s.status = "pending"
        try:
            kwargs: dict[str, Any] = {"blocks": blocks} if blocks else {}
            self.web.chat_stopStream(channel=tl.channel, ts=tl.ts, chunks=tl.changes(), **kwargs)
        except Exception as exc:
            self._give_up(tl, exc, "stop")
        tl.live = False

    # -- helpers
    @staticmethod
    def _advance(tl: Timeline, step_id: str) -> bool:
        """`step_id` runs; every step before it is complete. True when that changed a step."""
        changed = False
        for s in tl.steps:
            if s.id == step_id:
                if s.status != "in_progress":
                    s.status, changed = "in_progress", True
                break
            if s.status != "complete":
                s.status, changed = "complete", True
        return changed

    def _append(self, tl: Timeline, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - tl.last_append < self.interval_s:
            return  # the next event carries newer progress
        chunks = tl.changes()
        if not chunks:
            return
        if self.budget is not None:
            # Never waits (a reply lane must not stall): without a token the change stays
            # unsent, and the next append, or the stop, carries it.
            priority = Priority.IMPORTANT if force else Priority.PROGRESS
            try:
                if self.budget.try_take(self.append_spec, priority) > 0:
                    return
            except Exception:  # the budget falls back by itself; a bug here must not stop the job
                log.exception("Slack budget failed; sending the append anyway")
        try:
            self.web.chat_appendStream(channel=tl.channel, ts=tl.ts, chunks=chunks)
        except Exception as exc:
            self._give_up(tl, exc, "append")
            return
        tl.last_append = now
        tl.mark_sent()

    @staticmethod
    def _give_up(tl: Timeline, exc: Exception, where: str) -> None:
        error = str(exc.response.get("error", "")) if isinstance(exc, SlackApiError) and exc.response is not None \
            else type(exc).__name__
        tl.live, tl.refused = False, error or "error"
        log.info("streamed timeline %s refused (%s); the placeholder's progress updates carry on", where, error)
