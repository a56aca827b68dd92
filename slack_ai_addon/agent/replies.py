"""Slack replies for jobs: placeholder, progress, upload, final message.

`SlackReplier` is a `JobListener`. The pipeline calls it on whatever thread emits (a socket
worker on submit, Blender's main thread during a render, the I/O pool when finishing), so
`on_job_event` only queues the event; each job's events are then handled in order on the
agent's I/O pool ("lanes"), never on Blender's main thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from ..core.draft import mode_of as draft_mode_of
from ..core.draft import plan as draft_plan
from ..core.jobs import Job, JobKind, JobStore
from ..core.pipeline import EventKind, JobEvent
from ..core.scene_spec import SceneSpec
from ..core.variations import contact_sheet
from ..storage.db.budget import Priority, SlackBudget
from . import blocks as bk
from .dedupe import DedupeStore
from .deps import AgentDeps, ProvidesAgentDeps
from .pacing import FINAL_WAIT_S, ChannelPacer, UpdateCoalescer, retrying_web_client, use_slack_retries
from .timeline import Timelines

log = logging.getLogger(__name__)


class SerialLanes:
    """Run callables in submission order per key, different keys in parallel on a pool."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor
        self._lanes: dict[str, deque[Callable[[], None]]] = {}
        self._lock = threading.Lock()

    def submit(self, key: str, fn: Callable[[], None]) -> None:
        with self._lock:
            lane = self._lanes.get(key)
            if lane is not None:
                lane.append(fn)
                return
            self._lanes[key] = deque([fn])
        self._executor.submit(self._drain, key)

    def _drain(self, key: str) -> None:
        while True:
            with self._lock:
                lane = self._lanes[key]
                if not lane:
                    del self._lanes[key]
                    return
                fn = lane.popleft()
            try:
                fn()
            except BaseException:  # keep the lane alive: later events still need handling
                log.exception("reply task failed", extra={"lane": key})

    def busy(self) -> int:
        with self._lock:
            return len(self._lanes)


@dataclass
class ReplyTarget:
    """Where one job's replies go."""

    job_id: str
    channel: str
    user_id: str = ""
    thread_ts: str = ""  # the thread to reply in ("" for a slash command: the placeholder starts one)
    response_url: str = ""
    placeholder: bool = True  # post a placeholder message when the job is queued
    placeholder_ts: str = ""
    via_response_url: bool = False  # the bot cannot post here: everything goes through response_url
    cancelled_by: str = ""
    created_at: float = field(default_factory=time.time)
    finished: bool = False
    stage: str = ""  # the last progress stage queued: a new one is a stage change (spent first)

    @property
    def root_ts(self) -> str:
        return self.thread_ts or self.placeholder_ts


class SlackOutbox:
    """The agent's Web API calls, paced here and retried by the client (agent/pacing.py).
    Called on I/O threads only."""

    def __init__(self, web: WebClient, *, post_interval_s: float = 1.0, update_interval_s: float = 3.0,
                 executor: ThreadPoolExecutor, recorder: JobStore | None = None,
                 budget: SlackBudget | None = None) -> None:
        self.web = web
        self.pacer = ChannelPacer(post_interval_s)
        self.budget = budget  # the farm's shared Slack budget (None: this node's pacing only)
        # A 429 the client is about to wait out holds back every send to that channel.
        use_slack_retries(web).listeners.append(self._rate_limited)
        self.updates = UpdateCoalescer(self._raw_update, executor, interval_s=update_interval_s, budget=budget)
        self._recorder = recorder
        self._correlations: dict[str, str] = {}

    def _rate_limited(self, channel: str, wait_s: float) -> None:
        if channel:
            self.pacer.push_back(channel, wait_s)

    def _record(self, *, channel: str, ts: str = "", thread_ts: str = "", kind: str, text: str,
                job_id: str = "") -> None:
        if self._recorder is None:
            return
        try:
            self._recorder.record_message(correlation_id=self._correlation_id(job_id) or ts, direction="out",
                                          channel_id=channel, thread_ts=thread_ts, ts=ts, kind=kind,
                                          text=text[:4000], job_id=job_id)
        except Exception:  # history must never break a reply
            log.warning("could not record an outgoing message", exc_info=True)

    def _correlation_id(self, job_id: str) -> str:
        """The job's correlation id (as on its request and LLM calls), cached per job."""
        if not job_id:
            return ""
        cached = self._correlations.get(job_id)
        if cached is None:
            try:
                job = self._recorder.get(job_id) if self._recorder is not None else None
            except Exception:  # the database is away: the job id is a fine correlation id
                job = None
            cached = job.correlation_id if job is not None else job_id
            if len(self._correlations) > 1000:
                self._correlations.clear()
            self._correlations[job_id] = cached
        return cached

    def post(self, channel: str, text: str, blocks: bk.Blocks | None = None, *, thread_ts: str = "",
             job_id: str = "", kind: str = "reply") -> str:
        """chat.postMessage at most ~1/s per channel; returns the message ts. Every post is
        important (placeholder, error, final): it waits for the farm's budget, bounded."""
        self.pacer.wait_turn(channel)
        if self.budget is not None and not self.budget.acquire(self.budget.post, Priority.IMPORTANT, channel,
                                                               timeout=FINAL_WAIT_S):
            log.warning("no chat.postMessage budget for %s after %.0fs; posting anyway", channel, FINAL_WAIT_S)
        resp = self.web.chat_postMessage(channel=channel, text=bk.clip(text, bk.TEXT_LIMIT), blocks=blocks,
                                         thread_ts=thread_ts or None, unfurl_links=False)
        ts = str(resp.get("ts", ""))
        self._record(channel=channel, ts=ts, thread_ts=thread_ts, kind=kind, text=text, job_id=job_id)
        return ts

    def _raw_update(self, channel: str, ts: str, text: str, blocks: bk.Blocks) -> None:
        self.web.chat_update(channel=channel, ts=ts, text=bk.clip(text, bk.TEXT_LIMIT), blocks=blocks)

    def update_now(self, channel: str, ts: str, text: str, blocks: bk.Blocks, *, job_id: str = "",
                   kind: str = "final") -> None:
        """A final update: waits for the message's pacing slot (the client retries 429/5xx)."""
        self.updates.send_final(channel, ts, lambda: self._raw_update(channel, ts, text, blocks))
        self._record(channel=channel, ts=ts, kind=kind, text=text, job_id=job_id)

    def respond(self, response_url: str, text: str, blocks: bk.Blocks | None = None, *,
                in_channel: bool = False, job_id: str = "") -> bool:
        """Reply through a slash command's response_url (ephemeral unless in_channel)."""
        if not response_url:
            return False
        try:
            resp = WebhookClient(response_url, timeout=15).send(
                text=bk.clip(text, bk.TEXT_LIMIT), blocks=blocks,
                response_type="in_channel" if in_channel else "ephemeral", replace_original=False)
        except Exception:
            log.warning("response_url post failed", exc_info=True)
            return False
        if resp.status_code != 200:
            log.warning("response_url answered %s: %s", resp.status_code, resp.body[:200])
            return False
        self._record(channel="", kind="response_url", text=text, job_id=job_id)
        return True

    def ephemeral(self, channel: str, user: str, text: str, *, thread_ts: str = "") -> bool:
        try:
            self.web.chat_postEphemeral(channel=channel, user=user, text=bk.clip(text, bk.TEXT_LIMIT),
                                        thread_ts=thread_ts or None)
        except Exception:
            log.warning("chat.postEphemeral failed", exc_info=True)
            return False
        self._record(channel=channel, kind="ephemeral", text=text)
        return True

    def upload(self, channel: str, thread_ts: str, paths: list[tuple[str, str]], comment: str,
               job_id: str = "") -> list[str]:
        """files_upload_v2 of (path, title) pairs into a thread; returns Slack file ids. Its
        three Web API calls are retried by the client; a failure here is final."""
        uploads = [{"file": path, "filename": Path(path).name, "title": title} for path, title in paths]
        resp = self.web.files_upload_v2(file_uploads=uploads, channel=channel, thread_ts=thread_ts or None,
                                        initial_comment=comment)
        files = resp.get("files") or []
        self._record(channel=channel, thread_ts=thread_ts, kind="upload", text=comment, job_id=job_id)
        return [str(f.get("id", "")) for f in files if isinstance(f, dict)]


class SlackReplier:
    """Turns job events into Slack messages for the jobs the agent registered."""

    def __init__(self, outbox: SlackOutbox, store: JobStore, lanes: SerialLanes, *, dedupe: DedupeStore,
                 node_id: str = "") -> None:
        self.outbox = outbox
        self.store = store
        self.lanes = lanes
        self.dedupe = dedupe
        self.node_id = node_id
        self._targets: dict[str, ReplyTarget] = {}
        self._lock = threading.Lock()
        # The streamed task timeline in each render's thread (agent/timeline.py).
        self.timelines = Timelines(outbox.web, interval_s=outbox.updates.interval_s, budget=outbox.budget)

    # -- registration (router, before submit)
    def expect(self, target: ReplyTarget) -> None:
        with self._lock:
            self._targets[target.job_id] = target

    def target(self, job_id: str) -> ReplyTarget | None:
        with self._lock:
            return self._targets.get(job_id)

    def pending_targets(self) -> int:
        with self._lock:
            return sum(1 for t in self._targets.values() if not t.finished)

    # -- JobListener
    def on_job_event(self, event: JobEvent) -> None:
        if event.kind == "stored":
            self.lanes.submit(event.job.id, lambda: self._on_stored(event))
            return
        target = self.target(event.job.id) or self._adopt(event)
        if target is None:
            return
        # Called on whatever thread emits (Blender's main thread during a render): only queue.
        self.lanes.submit(event.job.id, lambda: self._handle(target, event))

    def _on_stored(self, event: JobEvent) -> None:
        """An upload queued during an object-storage outage went through: the link the final
        message promised goes into the job's thread (for the picture or video, not every file)."""
        job = event.job
        req = job.requester
        thread = req.thread_ts or job.slack_ts
        stored = [o for o in job.outputs if o.url == event.message and o.role in ("image", "video")]
        if req.source != "slack" or not req.channel_id or not thread or not stored:
            return
        out = stored[0]
        text = (f"📦 Object storage is back: <{out.url}|{bk.escape(Path(out.path).name)}> "
                f"(`{bk.escape(out.s3_key)}`)")
        try:
            self.outbox.post(req.channel_id, text, None, thread_ts=thread, job_id=job.id, kind="stored")
        except Exception:
            log.warning("could not post the storage link for job %s", job.id, exc_info=True)

    def _adopt(self, event: JobEvent) -> ReplyTarget | None:
        """A Slack job that another node received and this node runs (shared job table).

        The receiving node posted the placeholder and saved its ts on the job row; the node
        that renders is the one with progress and files, so it takes over the replies. No
        I/O here (this may run on Blender's main thread): a placeholder the claimed copy did
        not know yet is looked up in the job row on the reply lane (`_placeholder`).
        """
        job = event.job
        req = job.requester
        if req.source != "slack" or not req.channel_id or event.kind == "queued":
            return None
        target = ReplyTarget(job_id=job.id, channel=req.channel_id, user_id=req.user_id,
                             thread_ts=req.thread_ts, response_url=req.response_url, placeholder=False,
                             placeholder_ts=job.slack_ts, created_at=job.created_at)
        with self._lock:
            target = self._targets.setdefault(job.id, target)
        return target

    def cancelled_elsewhere(self, job: Job, by: str) -> None:
        """A queued job cancelled in the store emits no pipeline event: reply ourselves."""
        target = self.target(job.id)
        if target is None:
            return
        target.cancelled_by = by
        self.lanes.submit(job.id, lambda: self._handle(target, JobEvent(EventKind.CANCELLED, job)))

    def _placeholder(self, t: ReplyTarget) -> None:
        """An adopted job whose placeholder the claim did not know yet: read the job row (the
        receiving node may still have been posting it when this node claimed the job)."""
        if t.placeholder or t.placeholder_ts:
            return
        try:
            fresh = self.store.get(t.job_id)
        except Exception:
            log.warning("could not read the placeholder of job %s", t.job_id, exc_info=True)
            return
        if fresh is not None and fresh.slack_ts:
            t.placeholder_ts = fresh.slack_ts

    # -- handlers (I/O pool, in order per job)
    def _handle(self, t: ReplyTarget, event: JobEvent) -> None:
        if t.finished:
            return
        job = event.job
        kind = event.kind
        if kind != "queued":
            self._placeholder(t)
        if kind == "queued":
            self._on_queued(t, job)
        elif kind in ("started", "progress"):
            self._timeline(t, job, event)
            if t.placeholder_ts and job.kind is JobKind.RENDER:
                text, blocks = bk.progress_message(job, event.progress, time.time() - t.created_at)
                # The start and each new stage are spent before frame progress (farm budget).
                stage = event.progress.stage if event.progress is not None else "started"
                important, t.stage = stage != t.stage, stage
                self.outbox.updates.set(t.channel, t.placeholder_ts, text, blocks, important=important)
        elif kind == "draft":
            self._on_draft(t, job, event.message)
            self.timelines.draft_done(job.id)
        elif kind == "done":
            t.finished = True
            if job.kind is JobKind.ANALYZE:
                self._on_analysis(t, job)
            else:
                self._on_render_done(t, job)
        elif kind == "cancelled":
            t.finished = True
            self.timelines.finish(job.id, ok=False, note="cancelled")
            self._final(t, job, *bk.cancelled_message(job, t.cancelled_by, _frames_note(job)))
        elif kind == "failed":
            t.finished = True
            self.timelines.finish(job.id, ok=False, note="failed")
            message = event.message or job.error or "unknown error"
            text, blocks = bk.failed_message(job, message, time.time() - t.created_at)
            self._final(t, job, text, blocks)
            if t.placeholder_ts and not t.via_response_url and not t.thread_ts:
                # A slash command's placeholder sits in the channel: the error also lands in
                # its thread, where the conversation about the job goes on. (A follow-up's
                # placeholder is already in the thread: once is enough.) Escaped: errors may
                # quote the request.
                self._safe_post(t, f"❌ {bk.escape(bk.clip(message, 1500))}", job_id=job.id, kind="error")
        if t.finished:
            with self._lock:
                self._targets.pop(t.job_id, None)

    def _timeline(self, t: ReplyTarget, job: Job, event: JobEvent) -> None:
        if job.kind is not JobKind.RENDER or t.via_response_url or not t.root_ts:
            return
        if event.kind == "started":
            self.timelines.start(job.id, channel=t.channel, thread_ts=t.root_ts, user_id=t.user_id,
                                 is_dm=t.channel.startswith("D"), draft=_plans_draft(job),
                                 provider=str(job.result.get("provider") or ""))
        else:
            self.timelines.progress(job.id, event.progress)

    def _on_queued(self, t: ReplyTarget, job: Job) -> None:
        if not t.placeholder:
            return
        if job.kind is JobKind.ANALYZE:
            text, blocks = bk.plain(f"🔎 Analyzing: _{bk.escape(bk.clip(job.request_text, 300))}_")
        else:
            text, blocks = bk.queued_message(job)
        try:
            t.placeholder_ts = self.outbox.post(t.channel, text, blocks, thread_ts=t.thread_ts, job_id=job.id,
                                                kind="placeholder")
        except SlackApiError as exc:
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            log.warning("placeholder failed (%s); falling back to response_url", error)
            # Any error (not only not_in_channel) leaves response_url as the one way to answer.
            if t.response_url:
                t.via_response_url = True
                self.outbox.respond(t.response_url, f"{text}\n_(I can't post in this channel, so I'll answer "
                                    "here; invite me with `/invite @Blender` for progress and uploads.)_",
                                    job_id=job.id)
            return
        except Exception:
            log.exception("placeholder failed")
            return
        self.outbox.updates.started(t.channel, t.placeholder_ts)
        if job.kind is JobKind.RENDER:
            self.dedupe.remember_thread(t.channel, t.root_ts, job.id)
            # Saved at once so that any node that claims the job can update this message.
            self._record_slack_ts(job.id, t.placeholder_ts)

    def _final(self, t: ReplyTarget, job: Job, text: str, blocks: bk.Blocks) -> None:
        """The last word on a job: update the placeholder, else post, else response_url."""
        if t.placeholder_ts and not t.via_response_url:
            try:
                self.outbox.update_now(t.channel, t.placeholder_ts, text, blocks, job_id=job.id)
                return
            except Exception:
                log.warning("final chat.update failed; posting instead", exc_info=True)
        if not t.via_response_url and self._safe_post(t, text, blocks, job_id=job.id, kind="final"):
            return
        if not self.outbox.respond(t.response_url, text, blocks, job_id=job.id):
            log.error("could not tell the user about job %s: %s", job.id, text)

    def _safe_post(self, t: ReplyTarget, text: str, blocks: bk.Blocks | None = None, *, job_id: str,
                   kind: str) -> bool:
        try:
            self.outbox.post(t.channel, text, blocks, thread_ts=t.root_ts, job_id=job_id, kind=kind)
            return True
        except Exception:
            log.warning("chat.postMessage failed", exc_info=True)
            return False

    def _on_analysis(self, t: ReplyTarget, job: Job) -> None:
        text, blocks = bk.analysis_message(job)
        if t.via_response_url:
            self.outbox.respond(t.response_url, text, blocks, job_id=job.id)
            return
        if not self._safe_post(t, text, blocks, job_id=job.id, kind="analysis"):
            self.outbox.respond(t.response_url, text, blocks, job_id=job.id)
            return
        if t.placeholder_ts:
            short = f"🔎 Analysis: *{bk.escape(str(job.result.get('sentiment', '?')))}*, details in the thread"
            try:
                self.outbox.update_now(t.channel, t.placeholder_ts, short.replace("*", ""), [bk.section(short)],
                                       job_id=job.id)
            except Exception:
                log.warning("analysis placeholder update failed", exc_info=True)

    def _on_render_done(self, t: ReplyTarget, job: Job) -> None:
        total_s = time.time() - t.created_at
        if job.result.get("variants") and not t.via_response_url:
            self.timelines.uploading(job.id)
            shown = self._post_variants(t, job)
            self.timelines.finish(job.id, ok=shown, note="" if shown else "upload failed")
            text, blocks = bk.done_message(job, total_s, shown)
            self._final(t, job, text, blocks)
            self._record_slack_ts(job.id, t.placeholder_ts)
            return
        files = [(o.path, _title(o.role, job)) for o in upload_outputs(job)]
        uploaded = False
        if files and not t.via_response_url:
            self.outbox.updates.discard(t.channel, t.placeholder_ts)
            self.timelines.uploading(job.id)
            uploaded = self._upload(t, job, files)
        elif t.via_response_url:
            links = _links(job)
            self.outbox.respond(t.response_url, "Result files:\n" + links if links else "No files were produced.",
                                job_id=job.id)
        text, blocks = bk.done_message(job, total_s, uploaded or not files)
        self.timelines.finish(job.id, ok=uploaded or not files, note="" if uploaded or not files else "upload failed")
        self._final(t, job, text, blocks)
        self._record_slack_ts(job.id, t.placeholder_ts)

    def _post_variants(self, t: ReplyTarget, job: Job) -> bool:
        """The variants as one carousel of cards in the thread; where Slack refuses the
        carousel, one numbered contact sheet with numbered Final / Vary buttons."""
        self.outbox.updates.discard(t.channel, t.placeholder_ts)
        variants = [v for v in job.result["variants"] if v.get("image") and Path(v["image"]).is_file()]
        files = [(v["image"], f"Variant {v['number']} ({job.id})") for v in variants]
        if not files:
            return False
        try:
            ids = self.outbox.upload(t.channel, t.root_ts, files, f"Variations of job `{job.id}`", job_id=job.id)
            self._remember_files(job, files, ids)
        except Exception:
            log.warning("variant upload failed", exc_info=True)
            return self._upload(t, job, [])
        try:
            text, blocks = bk.variants_carousel(job, ids)
            self.outbox.post(t.channel, text, blocks, thread_ts=t.root_ts, job_id=job.id, kind="variants")
            return True
        except SlackApiError as exc:
            log.info("carousel refused (%s); posting a contact sheet", exc.response.get("error", ""))
        sheet = contact_sheet([v["image"] for v in variants], str(Path(variants[0]["image"]).parents[1] /
                                                                   "variants.png"))
        try:
            self.outbox.upload(t.channel, t.root_ts, [(sheet, f"Variations ({job.id})")], "", job_id=job.id)
            text, blocks = bk.variants_sheet(job)
            self.outbox.post(t.channel, text, blocks, thread_ts=t.root_ts, job_id=job.id, kind="variants")
            return True
        except Exception:
            log.warning("contact sheet failed", exc_info=True)
            return False

    def _on_draft(self, t: ReplyTarget, job: Job, path: str) -> None:
        """The draft image goes into the thread at once; the final follows under it (an
        uploaded file's message cannot be replaced)."""
        if t.via_response_url or not t.root_ts or not Path(path).is_file():
            return
        comment = f"Draft of job `{job.id}` (the final is rendering): _{bk.escape(bk.clip(job.request_text, 300))}_"
        try:
            self.outbox.upload(t.channel, t.root_ts, [(path, f"Draft ({job.id})")], comment, job_id=job.id)
        except Exception:
            log.warning("draft upload failed; the final will follow", exc_info=True)

    def _upload(self, t: ReplyTarget, job: Job, files: list[tuple[str, str]]) -> bool:
        """Upload the results into the thread; when that fails (after the client's retries),
        say so in the thread with where the files are instead."""
        comment = f"Job `{job.id}`: _{bk.escape(bk.clip(job.request_text, 300))}_"
        try:
            ids = self.outbox.upload(t.channel, t.root_ts, files, comment, job_id=job.id)
            self._remember_files(job, files, ids)
            return True
        except SlackApiError as exc:
            last_error = str(exc.response.get("error", "")) if exc.response is not None else str(exc)
        except Exception as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        log.warning("upload failed: %s", last_error)
        links = _links(job, self.node_id)
        self._safe_post(t, f"⚠️ I could not upload the result to Slack ({bk.escape(bk.clip(last_error, 200))}). "
                        f"The files are here:\n{links}", job_id=job.id, kind="upload_failed")
        return False

    def _remember_files(self, job: Job, files: list[tuple[str, str]], ids: list[str]) -> None:
        """The Slack file id of each uploaded output (the App Home gallery shows them)."""
        by_path = {path: file_id for (path, _title), file_id in zip(files, ids, strict=False) if file_id}
        if not by_path:
            return
        for out in job.outputs:
            out.slack_file_id = by_path.get(out.path, out.slack_file_id)
        try:
            self.store.set_outputs(job.id, job.outputs)
        except Exception:  # only the gallery's thumbnail is lost
            log.warning("could not save the Slack file ids of job %s", job.id, exc_info=True)

    def _record_slack_ts(self, job_id: str, ts: str) -> None:
        if not ts:
            return
        try:
            self.store.set_slack_ts(job_id, ts)
        except Exception:  # a lost ts only costs follow-ups after a restart (dedupe has it too)
            log.warning("could not save the Slack ts of job %s", job_id, exc_info=True)


def _plans_draft(job: Job) -> bool:
    """Whether the pipeline renders a draft before this job's final (core/draft.py)."""
    if not job.spec:
        return False
    try:
        draft, _final = draft_plan(SceneSpec.model_validate(job.spec), draft_mode_of(job.options, job.request_text))
    except ValueError:
        return False
    return draft is not None


def upload_outputs(job: Job) -> list[Any]:
    """What goes to Slack: poster + video for an animation, else the still (one image)."""
    present = [o for o in job.outputs if Path(o.path).is_file()]
    videos = [o for o in present if o.role == "video"]
    stills = [o for o in present if o.role == "image"] or [o for o in present if o.role == "poster"]
    chosen = ([o for o in present if o.role == "poster"][:1] + videos) if videos else stills[:1]
    if job.options.get("save_blend"):
        chosen += [o for o in present if o.role == "blend"][:1]
    return chosen


def _title(role: str, job: Job) -> str:
    label = {"poster": "Poster frame", "image": "Render", "video": "Animation", "blend": "Blender file"}[role]
    return f"{label} ({job.id})"


def _frames_note(job: Job) -> str:
    frames = [o for o in job.outputs if o.role in ("image", "poster", "video")]
    return "partial outputs kept" if frames else ""


def _links(job: Job, node_id: str = "") -> str:
    lines = []
    for o in job.outputs:
        if o.role == "spec":
            continue
        where = (bk.escape(o.url) or (f"s3: `{bk.escape(o.s3_key)}`" if o.s3_key else
                 f"`{bk.escape(o.path)}`" + (f" on {bk.escape(node_id)}" if node_id else "")))
        lines.append(f"• {o.role}: {where}")
    return "\n".join(lines)


class ThreadReplies:
    """Replies in Slack threads for a node with no Socket Mode connection (a farm worker).

    Whichever node rendered a job answers in its thread with the bot token: the thread
    reference (channel, placeholder ts) is in the job row, so a worker that never saw the
    request still updates its placeholder, uploads the result and posts the final message.
    """

    def __init__(self, node: AgentDeps | ProvidesAgentDeps, *, post_interval_s: float = 1.0,
                 update_interval_s: float = 3.0, io_workers: int = 4) -> None:
        self.deps = node if isinstance(node, AgentDeps) else node.agent_deps()
        settings = self.deps.settings
        self.web = retrying_web_client(settings.slack_bot_token, settings.slack_api_url)
        self.io = ThreadPoolExecutor(max_workers=io_workers, thread_name_prefix="slackai-replies")
        self.outbox = SlackOutbox(self.web, post_interval_s=post_interval_s, update_interval_s=update_interval_s,
                                  executor=self.io, recorder=self.deps.store,
                                  budget=SlackBudget.for_node(settings, self.deps.store))
        self.replier = SlackReplier(self.outbox, self.deps.store, SerialLanes(self.io), dedupe=DedupeStore(None),
                                    node_id=self.deps.node_id)
        self.deps.add_listener(self.replier)

    def busy(self) -> bool:
        return self.replier.lanes.busy() > 0

    def close(self, timeout_s: float = 30.0) -> None:
        """Let the replies already queued go out (bounded), then stop."""
        deadline = time.monotonic() + timeout_s
        while self.busy() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.deps.remove_listener(self.replier)
        self.io.shutdown(wait=False, cancel_futures=True)
