"""Routing of Socket Mode requests: slash commands, events, button clicks.

Two steps per envelope, both on a Socket Mode worker thread:

1. `ack_payload(type, payload)`: pure and cheap (no I/O), so the ack goes out first; for
   slash commands it carries the immediate answer (`in_channel`, or an ephemeral usage hint).
2. `dispatch(type, payload, envelope_id)`: dedupe, filter, then enqueue a job
   (`pipeline.submit`, one store write) or hand slower work (intent classification, store
   queries, replies) to the agent's I/O pool.

Nothing from Slack is executed: text becomes a job's request text, ids become lookups.
"""

from __future__ import annotations

import html
import json
import logging
import re
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.admission import Admission, Refusal
from ..core.config import Settings
from ..core.cost import CostPolicy, CostRefused, fmt_s
from ..core.jobs import Job, JobKind, JobStatus, JobStore, Requester
from ..core.pipeline import UserError
from ..core.scene_spec import MAX_RESOLUTION, MAX_SAMPLES, SpecError, parse_scene_spec
from ..providers.offline.intent import keyword_intent as keyword_intent  # the offline strategy, for service.py
from ..providers.offline.interpreter import OfflineInterpreter
from ..textutil import clean_control, defuse_markup
from . import blocks as bk
from .dedupe import DedupeStore
from .home import ACTION_BLEND as HOME_ACTION_BLEND
from .home import ACTION_PAGE as HOME_ACTION_PAGE
from .home import ACTION_RERENDER as HOME_ACTION_RERENDER
from .home import HOME_PREFIX, HomeTab
from .replies import ReplyTarget, SlackOutbox, SlackReplier

log = logging.getLogger(__name__)

# Message subtypes that are someone talking; everything else (bot_message, message_changed,
# message_deleted, channel_join, ...) is ignored so the bot cannot answer itself in a loop.
_USER_SUBTYPES = frozenset({"", "thread_broadcast", "file_share"})
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!([A-Za-z]+)(?:\^[^|>]*)?(?:\|([^>]*))?>")  # <!here>, <!subteam^S1|@team>
_CHANNEL = re.compile(r"<#([CG][A-Z0-9]+)(?:\|([^>]*))?>")
# Anything Slack would read as markup once its brackets are live again.
_CONTROL = re.compile(r"<([!@#][^<>]*|[A-Za-z][A-Za-z0-9+.-]*:[^<>]*)>")
_JOB_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}(?:[0-9a-f]{2})?$")  # 6 hex digits before 2026-12
# Classifier providers that are not an LLM: for them the offline interpreter decides whether
# a thread reply asks for a change.
OFFLINE_CLASSIFIERS = frozenset({"offline", "keywords", ""})
THREAD_HINT = ("💬 I re-render only when a reply asks for a change, e.g. _make it blue_, _add a sphere_ or _4k_; "
               "`/blender help` lists the rest.")
HQ_OF = "high_quality_of"  # job option: the job a high-quality re-render was made from
# A second click on the same result button within this window (a double click, an impatient
# click while the first is being queued) is answered with a pointer, not a second job.
REPEAT_CLICK_S = 60.0


@dataclass
class BotIdentity:
    user_id: str = ""
    bot_id: str = ""
    team_id: str = ""


def _s(data: Any, key: str) -> str:
    """A string field of untrusted JSON, or "" for anything missing or of another type."""
    if not isinstance(data, dict):
        return ""
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _d(data: Any, key: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        return {}
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def clean_text(text: str, bot_user_id: str = "") -> str:
    """Slack mrkdwn to plain words: drop the bot's mention, unwrap links, unescape.

    The result holds no live Slack markup: Slack sends what a user typed as `&lt;!channel&gt;`,
    and unescaping that must not make a `<!channel>` (or a `<@U…>`, or a labelled link) the
    bot could echo. Control characters and lone surrogates are dropped (before the text
    reaches the database, an LLM or Blender)."""
    def mention(m: re.Match[str]) -> str:
        return "" if bot_user_id and m.group(1) == bot_user_id else f"@{m.group(1)}"
    text = clean_control(text)
    text = _MENTION.sub(mention, text)
    text = _SPECIAL.sub(lambda m: m.group(2) or f"@{m.group(1)}", text)
    text = _CHANNEL.sub(lambda m: f"#{m.group(2) or m.group(1)}", text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = html.unescape(text)
    # What the user typed as markup stays words: `<!channel>` becomes `!channel`; whatever
    # is left (`<<!here>>` after that pass) loses its opening bracket, one character for one,
    # so no new pair can form.
    text = defuse_markup(_CONTROL.sub(lambda m: m.group(1), text))
    return clean_control(text).strip()


class AgentRouter:
    def __init__(self, *, submit: Callable[[Job], Job], store: JobStore, settings: Settings, replier: SlackReplier,
                 outbox: SlackOutbox,
                 dedupe: DedupeStore, io: ThreadPoolExecutor, identity: BotIdentity,
                 classify: Callable[[str], tuple[str, str]], status_text: Callable[[], str],
                 cancel_local: Callable[[str], None], on_submit: Callable[[Job], None] | None = None,
                 cost_policy: CostPolicy | None = None) -> None:
        self.submit = submit
        self.cost_policy = cost_policy or CostPolicy.from_settings(settings)  # the pipeline's, from AgentDeps
        self.store = store
        self.settings = settings
        self.replier = replier
        self.outbox = outbox
        self.dedupe = dedupe
        self.io = io
        self.identity = identity
        self.classify = classify
        self.status_text = status_text
        self.cancel_local = cancel_local
        self.on_submit = on_submit
        self.admission = Admission(settings, store)  # allowlists and quotas
        self._clicks: dict[tuple[str, str], float] = {}  # (action, job id) -> when it was accepted
        self.home = HomeTab(outbox.web, store, admins=lambda: self.settings.admins, status_text=status_text)
        self._clicks_lock = threading.Lock()

    # ------------------------------------------------------------------ step 1: the ack
    def ack_payload(self, envelope_type: str, payload: Any) -> dict[str, Any] | None:
        """What to send with the ack. Pure: must never raise or touch the network."""
        try:
            if envelope_type != "slash_commands":
                return None
            command = _s(payload, "command").lower()
            text = clean_text(_s(payload, "text"), self.identity.user_id)  # what _slash will read
            refusal = self.admission.check_access(team_id=_s(payload, "team_id"),
                                                  channel_id=_s(payload, "channel_id"), user_id=_s(payload, "user_id"))
            if refusal is not None:  # pure (settings only): the ack itself says no, to the user alone
                return {"response_type": "ephemeral", "text": refusal.message}
            if command == "/render":
                if not text:
                    return {"response_type": "ephemeral",
                            "text": "Tell me what to render, e.g. `/render a red cube on a checkered floor, rotating`"}
                return {"response_type": "in_channel"}
            if command == "/analyze":
                if not text:
                    return {"response_type": "ephemeral",
                            "text": 'Give me some text to analyze, e.g. `/analyze I love this new AI system!`'}
                return {"response_type": "in_channel"}
            if command == "/blender":
                sub = text.split()[0].lower() if text.split() else "help"
                if sub == "help":
                    return {"response_type": "ephemeral", "text": bk.HELP_TEXT}
                if sub in ("status", "jobs", "stats", "cancel", "assets"):
                    return None  # answered through response_url once the lookups are done
                return {"response_type": "ephemeral",
                        "text": f"I don't know `/blender {bk.escape(bk.clip(sub, 40))}`.\n\n{bk.HELP_TEXT}"}
            return {"response_type": "ephemeral",
                    "text": f"I don't handle `{bk.escape(bk.clip(command, 40)) or '?'}`. Try `/blender help`."}
        except Exception:  # a malformed payload still gets a plain ack
            log.exception("building the ack payload failed")
            return None

    # ------------------------------------------------------------------ step 2: the work
    def dispatch(self, envelope_type: str, payload: Any, envelope_id: str) -> None:
        """After the ack. Never raises (a crash here would only be logged by slack_sdk)."""
        try:
            if not isinstance(payload, dict):
                log.warning("ignoring %s envelope %s: payload is not an object", envelope_type, envelope_id)
                return
            if envelope_type == "slash_commands":
                if self.dedupe.check_and_mark(f"envelope:{envelope_id}"):
                    self._slash(payload)
            elif envelope_type == "events_api":
                self._event(payload)
            elif envelope_type == "interactive":
                if self.dedupe.check_and_mark(f"envelope:{envelope_id}"):
                    self._interactive(payload)
            else:
                log.info("ignoring envelope type %r", envelope_type)
        except Exception:
            log.exception("routing %s envelope %s failed", envelope_type, envelope_id)

    def _record_in(self, *, channel: str, user: str, kind: str, text: str, ts: str = "", thread_ts: str = "",
                   job_id: str = "", correlation_id: str = "") -> None:
        try:
            self.store.record_message(correlation_id=correlation_id or job_id or ts, direction="in",
                                      channel_id=channel, user_id=user, thread_ts=thread_ts, ts=ts, kind=kind,
                                      text=text[:4000], job_id=job_id)
        except Exception:
            log.warning("could not record an incoming message", exc_info=True)

    def _audit(self, *, actor: str, action: str, target: str, detail: str = "", allowed: bool = True) -> None:
        try:
            self.store.record_audit(actor=actor, action=action, target=target, detail=detail, allowed=allowed)
        except Exception:
            log.warning("could not write the audit log", exc_info=True)

    def _in_io(self, fn: Callable[[], None]) -> None:
        def run() -> None:
            try:
                fn()
            except BaseException:  # the pool would swallow it
                log.exception("agent task failed")
        self.io.submit(run)

    # -- submitting jobs
    def submit_job(self, job: Job, target: ReplyTarget) -> Job | None:
        """Register where replies go, then enqueue. UserError reaches the user."""
        actor = job.requester.user_id
        refusal = self._quota_refusal(job)
        if refusal is not None:
            self._audit(actor=actor, action=f"refused:{refusal.reason}", target=job.id, detail=refusal.detail,
                        allowed=False)
            self._tell(target, refusal.message)  # the bot's own words and numbers: nothing to escape
            return None
        self.replier.expect(target)
        try:
            job = self.submit(job)
        except UserError as exc:
            self._audit(actor=actor, action=f"refused:{job.kind.value}", target=job.id, detail=str(exc)[:500],
                        allowed=False)
            self._tell(target, f"⚠️ {bk.escape(str(exc))}")  # refusals may quote the request
            return None
        except Exception as exc:
            log.exception("submitting job failed")
            self._tell(target, f"❌ I could not queue that job ({type(exc).__name__}); please try again.")
            return None
        self._audit(actor=actor, action=f"submit:{job.kind.value}", target=job.id,
                    detail=job.request_text[:200] + (f" (edit of {job.parent_job_id})" if job.parent_job_id else ""))
        if self.on_submit is not None:
            self.on_submit(job)
        return job

    # -- access control and quotas (core/admission.py)
    def _refused_access(self, requester: Requester, target: ReplyTarget, *, action: str, tell: bool) -> bool:
        """The allowlists: True when the requester may not use the bot here. A refusal is
        audited and, when `tell`, said to the user alone."""
        refusal = self.admission.check_access(team_id=requester.team_id, channel_id=requester.channel_id,
                                              user_id=requester.user_id)
        if refusal is None:
            return False
        self._audit(actor=requester.user_id, action="refused:access", target=requester.channel_id,
                    detail=f"{action}: {refusal.detail}", allowed=False)
        if tell:
            self._in_io(lambda: self._tell_ephemeral(target, refusal.message))
        return True

    def _quota_refusal(self, job: Job) -> Refusal | None:
        """The quota a new job would break. A database that cannot count lets it through:
        the insert that follows fails the same way and says so."""
        try:
            return self.admission.check_quota(channel_id=job.requester.channel_id, user_id=job.requester.user_id)
        except Exception:
            log.warning("could not count quotas; the request goes ahead", exc_info=True)
            return None

    def _tell(self, target: ReplyTarget, text: str) -> None:
        """A short answer without a job: response_url when we have one, else a thread reply."""
        def send() -> None:
            if target.response_url and self.outbox.respond(target.response_url, text):
                return
            try:
                self.outbox.post(target.channel, text, thread_ts=target.thread_ts)
            except Exception:
                log.warning("could not deliver a reply to %s", target.channel, exc_info=True)
        self._in_io(send)

    # -- slash commands
    def _slash(self, p: dict[str, Any]) -> None:
        command = _s(p, "command").lower()
        # Slack escapes &, < and > in a command's text, like a message's: plain words here.
        text = clean_text(_s(p, "text"), self.identity.user_id)
        channel, user = _s(p, "channel_id"), _s(p, "user_id")
        requester = Requester(team_id=_s(p, "team_id"), channel_id=channel, user_id=user,
                              user_name=_s(p, "user_name"), response_url=_s(p, "response_url"), source="slack")
        target = ReplyTarget(job_id="", channel=channel, user_id=user, response_url=requester.response_url)
        if not channel and not requester.response_url:
            log.warning("slash command without channel_id or response_url: nowhere to answer")
            return
        if self._refused_access(requester, target, action=f"slash:{command}", tell=False):  # the ack told them
            return
        if command in ("/render", "/analyze"):
            if not text:
                self._record_in(channel=channel, user=user, kind=f"slash:{command}", text=command)
                return  # the ack already carried the usage hint
            kind = JobKind.RENDER if command == "/render" else JobKind.ANALYZE
            job = Job(kind=kind, request_text=text, requester=requester)
            # Recorded with the job's correlation id, so the request and every reply line up.
            self._record_in(channel=channel, user=user, kind=f"slash:{command}", text=f"{command} {text}",
                            job_id=job.id, correlation_id=job.correlation_id)
            target.job_id = job.id
            self.submit_job(job, target)
        elif command == "/blender":
            self._record_in(channel=channel, user=user, kind=f"slash:{command}", text=f"{command} {text}")
            words = text.split()
            sub = words[0].lower() if words else "help"
            arg = " ".join(words[1:]) if sub == "assets" else (words[1] if len(words) > 1 else "")
            self._audit(actor=user, action=f"blender:{sub}", target=arg)
            if sub in ("status", "jobs", "stats", "cancel", "assets"):
                self._in_io(lambda: self._blender_sub(sub, arg, user, target))
        else:
            self._record_in(channel=channel, user=user, kind=f"slash:{command}", text=f"{command} {text}")

    def _blender_sub(self, sub: str, arg: str, user: str, target: ReplyTarget) -> None:
        if sub == "status":
            text = self.status_text()
        elif sub == "jobs":
            text = self.jobs_text(user)
        elif sub == "stats":
            text = self.stats_text()
            self._post_stats_chart(target)
        elif sub == "assets":  # issue 15: agent/asset_list.py
            from .asset_list import asset_list_reply

            def upload(path: str, title: str) -> None:
                if target.channel:
                    self.outbox.upload(target.channel, "", [(path, title)], "Asset previews")
            text = asset_list_reply(arg, upload)
        else:
            text = self.cancel_job(arg, user)
        if not (target.response_url and self.outbox.respond(target.response_url, text)):
            if target.channel and user:
                self.outbox.ephemeral(target.channel, user, text)

    def jobs_text(self, user: str) -> str:
        jobs = self.store.list_jobs(user_id=user, limit=10)
        if not jobs:
            return "You have no jobs yet. Try `/render a red cube`."
        lines = ["*Your recent jobs*"]
        for j in jobs:
            when = time.strftime("%m-%d %H:%M", time.localtime(j.created_at))
            lines.append(f"• `{j.id}` {j.kind.value} *{j.status.value}* {when}: "
                         f"{bk.escape(bk.clip(j.request_text or '(re-render)', 80))}")
        return "\n".join(lines)

    def stats_text(self) -> str:
        from ..storage.stats import build_stats, format_stats

        try:
            stats = build_stats(self.store)
        except Exception as exc:
            log.warning("build_stats failed", exc_info=True)
            return f"Statistics are not available right now ({type(exc).__name__})."
        return "*Render statistics*\n" + bk.escape(format_stats(stats))  # user names are user text

    def _post_stats_chart(self, target: ReplyTarget) -> None:
        """Jobs per day as a picture in the channel, where a chart reads better than numbers.
        Best effort: without channel access the text answer alone stands."""
        if not target.channel or not self.store.list_jobs(limit=1):
            return
        from ..storage.stats import build_stats, render_stats_chart

        try:
            with tempfile.TemporaryDirectory(prefix="slackai-stats-") as tmp:
                chart = render_stats_chart(build_stats(self.store), Path(tmp) / "render-stats.png")
                self.outbox.upload(target.channel, "", [(str(chart), "Render statistics")],
                                   "Jobs per day (failed in red)")
        except Exception:
            log.warning("stats chart not posted", exc_info=True)

    def cancel_job(self, job_id: str, user: str) -> str:
        job_id = job_id.strip().strip("`")
        if not job_id:
            return "Which job? Use `/blender cancel JOB_ID` (see `/blender jobs`)."
        if not _JOB_ID.match(job_id):
            return f"`{bk.escape(bk.clip(job_id, 40))}` is not a job id (they look like `20261206-120000-1a2b3c4d`)."
        job = self.store.get(job_id)
        if job is None:
            return f"No job `{job_id}`."
        allowed = job.requester.user_id == user or user in self.settings.admins
        self._audit(actor=user, action="cancel", target=job_id, allowed=allowed,
                    detail="" if allowed else "not the requester and not an admin")
        if not allowed:
            return f"Only {bk.mention(job.requester.user_id)} (who asked for it) or an admin can cancel `{job_id}`."
        if job.status.is_final:
            return f"Job `{job_id}` is already {job.status.value}."
        target = self.replier.target(job_id)
        if target is not None:
            target.cancelled_by = user
        after = self.store.request_cancel(job_id)
        if after is not None and after.status is JobStatus.CANCELLED:
            self.replier.cancelled_elsewhere(after, user)
            return f"🛑 Cancelled `{job_id}` before it started."
        self.cancel_local(job_id)
        return f"🛑 Cancelling `{job_id}`: it stops after the current frame."

    # -- events
    def _event(self, p: dict[str, Any]) -> None:
        event_id = _s(p, "event_id")
        event = _d(p, "event")
        if event_id and not self.dedupe.check_and_mark(f"event:{event_id}"):
            log.info("duplicate event %s ignored", event_id)
            return
        etype = _s(event, "type")
        if etype == "app_home_opened":  # the App Home gallery or the Messages tab's prompts (agent/home.py)
            self._in_io(lambda: self.home.opened(event))
            return
        if etype not in ("app_mention", "message"):
            return
        subtype = _s(event, "subtype")
        user, channel, ts = _s(event, "user"), _s(event, "channel"), _s(event, "ts")
        if subtype not in _USER_SUBTYPES or _s(event, "bot_id") or not user or not channel or not ts:
            return
        if self.identity.user_id and user == self.identity.user_id:
            return
        raw = _s(event, "text")
        thread_ts = _s(event, "thread_ts")
        is_dm = _s(event, "channel_type") == "im" or channel.startswith("D")
        mentioned = etype == "app_mention" or bool(self.identity.user_id and f"<@{self.identity.user_id}" in raw)
        parent_id = ""
        if thread_ts and thread_ts != ts:
            parent_id = self.dedupe.thread_job(channel, thread_ts) or self._thread_job_from_store(channel, thread_ts)
        if not (mentioned or is_dm or parent_id):
            return  # ordinary channel chatter
        # The app_mention and message events of one @-mention share (channel, ts): act once.
        if not self.dedupe.check_and_mark(f"msg:{channel}:{ts}"):
            return
        text = clean_text(raw, self.identity.user_id)
        self._record_in(channel=channel, user=user, kind=etype, text=text, ts=ts, thread_ts=thread_ts,
                        correlation_id=event_id)
        requester = Requester(team_id=_s(p, "team_id"), channel_id=channel, user_id=user,
                              thread_ts=thread_ts or ts, source="slack")
        where = ReplyTarget(job_id="", channel=channel, user_id=user, thread_ts=thread_ts or ts)
        if self._refused_access(requester, where, action=etype, tell=mentioned or is_dm):
            return
        self._in_io(lambda: self._conversation(text, requester, parent_id))

    def _thread_job_from_store(self, channel: str, thread_ts: str) -> str:
        """The job table knows every node's threads (this node may never have seen this one:
        another node received the request, or this node restarted)."""
        try:
            job = self.store.find_thread_job(channel, thread_ts)
        except Exception:
            log.warning("could not look up the job of a thread", exc_info=True)
            return ""
        return job.id if job is not None else ""

    def _conversation(self, text: str, requester: Requester, parent_id: str) -> None:
        """A mention, a DM or a reply in a render thread (I/O pool: may call an LLM)."""
        target = ReplyTarget(job_id="", channel=requester.channel_id, user_id=requester.user_id,
                             thread_ts=requester.thread_ts)
        if len(text) > 40_000:
            text = text[:40_000]
        intent, provider = self.classify(text) if text else ("help", "")
        if intent == "help" or not text:
            self._tell(target, bk.HELP_TEXT)
        elif intent == "status":
            self._tell(target, self.status_text())
        elif intent == "analyze":
            job = Job(kind=JobKind.ANALYZE, request_text=_strip_verb(text, ("analyze", "analyse", "sentiment")),
                      requester=requester)
            target.job_id, target.placeholder = job.id, False
            self.submit_job(job, target)
        elif parent_id:
            self._thread_reply(parent_id, text, requester, intent, provider)
        elif intent in ("render", "edit"):
            job = Job(kind=JobKind.RENDER, request_text=_strip_verb(text, ("render",)), requester=requester)
            target.job_id = job.id
            self.submit_job(job, target)
        else:
            self._tell(target, "👋 I render 3D scenes. Try _render a red cube on a checkered floor_ or "
                               "`/blender help`.")

    def _thread_reply(self, parent_id: str, text: str, requester: Requester, intent: str, provider: str) -> None:
        """A reply in a render's thread is an edit only when it asks for a change: the
        classifier says edit (or render), or, when the classifier is the offline one, the
        offline interpreter finds something to change ("blue", "4k"). Thanks, questions and
        chatter start no job; a question gets one short line, the rest nothing."""
        if intent in ("edit", "render") or (provider in OFFLINE_CLASSIFIERS
                                              and self._offline_change(parent_id, text)):
            self.follow_up(parent_id, text, requester)
            return
        self._audit(actor=requester.user_id, action="thread:chatter", target=parent_id, detail=text[:200])
        if "?" in text:
            target = ReplyTarget(job_id="", channel=requester.channel_id, user_id=requester.user_id,
                                 thread_ts=requester.thread_ts)
            self._tell(target, THREAD_HINT)

    def _offline_change(self, parent_id: str, text: str) -> bool:
        """True when the offline interpreter, given the thread's scene, changes something."""
        parent = self.store.get(parent_id)
        if parent is None or parent.spec is None:
            return False
        try:
            previous, _ = parse_scene_spec(parent.spec)
            edited = OfflineInterpreter().interpret(text, previous=previous).spec
        except Exception:  # SpecError "could not tell what to change", or anything unexpected
            return False
        return bool(edited.to_json_dict() != previous.to_json_dict())

    def follow_up(self, parent_id: str, instruction: str, requester: Requester) -> None:
        target = ReplyTarget(job_id="", channel=requester.channel_id, user_id=requester.user_id,
                             thread_ts=requester.thread_ts)
        parent = self.store.get(parent_id)
        if parent is None or parent.spec is None:
            self._tell(target, "I can't find the scene of this thread any more; start a new `/render`.")
            return
        options = {k: v for k, v in parent.options.items() if k != HQ_OF}  # an edit is a job of its own
        job = Job(kind=JobKind.RENDER, request_text=instruction, spec=parent.spec, parent_job_id=parent.id,
                  options=options, requester=requester)
        target.job_id = job.id
        self.submit_job(job, target)

    # -- buttons
    def _interactive(self, p: dict[str, Any]) -> None:
        if _s(p, "type") != "block_actions":
            return
        actions = p.get("actions")
        if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
            return
        action = actions[0]
        action_id, job_id = _s(action, "action_id"), _s(action, "value")
        user = _s(_d(p, "user"), "id")
        channel = _s(_d(p, "channel"), "id") or _s(_d(p, "container"), "channel_id")
        message = _d(p, "message")
        msg_ts = _s(message, "ts") or _s(_d(p, "container"), "message_ts")
        thread_ts = _s(message, "thread_ts") or msg_ts
        response_url = _s(p, "response_url")
        self._record_in(channel=channel, user=user, kind=f"button:{action_id}", text=job_id, ts=msg_ts)
        target = ReplyTarget(job_id="", channel=channel, user_id=user, thread_ts=thread_ts,
                             response_url=response_url)
        if self._refused_access(Requester(team_id=_s(_d(p, "team"), "id"), channel_id=channel, user_id=user),
                                target, action=f"button:{action_id}", tell=True):
            return
        if action_id.startswith((bk.ACTION_VARIANT_FINAL, bk.ACTION_VARIANT_VARY)):
            if not self._first_click(action_id, job_id):
                self._in_io(lambda: self._tell_ephemeral(target, "⏳ That was already requested a moment ago; "
                                                                 "it comes in this thread."))
                return
            requester = Requester(team_id=_s(_d(p, "team"), "id"), channel_id=channel, user_id=user,
                                  thread_ts=thread_ts, response_url=response_url, source="slack")
            self._in_io(lambda: self._variant_job(action_id, job_id, requester))
        elif action_id == bk.ACTION_FEEDBACK:
            self._in_io(lambda: self._feedback(job_id, user, channel, msg_ts, target))
        elif action_id.startswith(HOME_PREFIX):
            self._in_io(lambda: self._home_action(action_id, job_id, user, _s(_d(p, "team"), "id")))
        elif action_id == bk.ACTION_CANCEL:
            self._in_io(lambda: self._tell_ephemeral(target, self.cancel_job(job_id, user)))
        elif action_id in (bk.ACTION_RERENDER_HQ, bk.ACTION_GET_BLEND):
            if _JOB_ID.match(job_id) and not self._first_click(action_id, job_id):
                self._in_io(lambda: self._tell_ephemeral(target, f"⏳ That was already requested for `{job_id}` a "
                                                                 "moment ago; the result comes in this thread."))
                return
            requester = Requester(team_id=_s(_d(p, "team"), "id"), channel_id=channel, user_id=user,
                                  thread_ts=thread_ts, response_url=response_url, source="slack")
            self._in_io(lambda: self._derived_job(action_id, job_id, requester))

    def _hq_gains(self, spec: dict[str, Any], base: Job, user_id: str) -> bool:
        """False when the requester's cost tier would scale the high-quality spec back to
        about what `base` (the scene the user asked for) has: less than a quarter more samples
        or pixels, a job that would show nothing new."""
        try:
            hq, _ = parse_scene_spec(spec)
            now, _ = parse_scene_spec(base.spec)
            fitted = self.cost_policy.fit(hq, "slack", user_id).spec.output
        except (SpecError, CostRefused):
            return True  # submit refuses it and says why
        was = now.output
        return fitted.samples >= 1.25 * was.samples or fitted.width * fitted.height >= 1.25 * was.width * was.height

    def _hq_base(self, job: Job) -> Job:
        """The job a "Re-render in high quality" chain started from (bounded walk)."""
        for _ in range(20):
            base_id = str(job.options.get(HQ_OF) or "")
            if not base_id or job.request_text:
                return job
            base = self.store.get(base_id) if _JOB_ID.match(base_id) else None
            if base is None or base.spec is None:
                return job
            job = base
        return job

    def _first_click(self, action_id: str, job_id: str) -> bool:
        """True for the first click of a result button within REPEAT_CLICK_S (and remembers it).
        Per node: the socket worker threads of one agent share it."""
        now = time.monotonic()
        with self._clicks_lock:
            self._clicks = {k: t for k, t in self._clicks.items() if now - t < REPEAT_CLICK_S}
            if (action_id, job_id) in self._clicks:
                return False
            self._clicks[(action_id, job_id)] = now
            return True

    def _forget_click(self, action_id: str, job_id: str) -> None:
        """The click came to nothing (job gone, upload or submit failed): a retry may go ahead."""
        with self._clicks_lock:
            self._clicks.pop((action_id, job_id), None)

    def _tell_ephemeral(self, target: ReplyTarget, text: str) -> None:
        if target.response_url and self.outbox.respond(target.response_url, text):
            return
        if target.channel and target.user_id:
            self.outbox.ephemeral(target.channel, target.user_id, text, thread_ts=target.thread_ts)

    def _variant_job(self, action_id: str, value: str, requester: Requester) -> None:
        """Final: that variant's stored spec in full. Vary: new variations of that variant."""
        parent_id, _, number = value.partition(":")
        target = ReplyTarget(job_id="", channel=requester.channel_id, user_id=requester.user_id,
                             thread_ts=requester.thread_ts)
        parent = self.store.get(parent_id) if _JOB_ID.match(parent_id) else None
        stored = list(parent.result.get("variants") or []) if parent is not None else []
        variant = next((v for v in stored if str(v.get("number")) == number), None)
        if number == "0" and parent is not None and parent.spec:  # Vary on a plain result
            stored, variant = [{}] * 4, {"number": 0, "seed": 0, "spec": parent.spec}
        if parent is None or variant is None:
            self._tell_ephemeral(target, "That variant is gone; start a new `/render`.")
            return
        if action_id.startswith(bk.ACTION_VARIANT_FINAL):
            options = {"variant_of": parent.id, "variant": variant["number"], "seed": variant["seed"]}
        else:
            options = {"variations": len(stored), "varied_from": f"{parent.id}:{variant['number']}"}
        job = Job(kind=JobKind.RENDER, request_text="", spec=variant["spec"], parent_job_id=parent.id,
                  options=options, requester=requester)
        target.job_id = job.id
        self.submit_job(job, target)

    def _feedback(self, value: str, user: str, channel: str, ts: str, target: ReplyTarget) -> None:
        """👍/👎 on a result: recorded with the job, its spec, provider and the user."""
        verdict, _, job_id = value.partition(":")
        job = self.store.get(job_id) if verdict in ("good", "bad") and _JOB_ID.match(job_id) else None
        if job is None:
            return
        body = json.dumps({"verdict": verdict, "provider": job.result.get("provider", ""), "spec": job.spec})
        self.store.record_message(correlation_id=job.correlation_id or job.id, direction="in", channel_id=channel,
                                  user_id=user, thread_ts=job.requester.thread_ts or job.slack_ts, ts=ts,
                                  kind=f"feedback:{verdict}", text=body[:4000], job_id=job.id)
        self._tell_ephemeral(target, "Thanks for the feedback." if verdict == "good" else
                             "Thanks; noted. Reply in the thread to change the scene.")

    def _home_action(self, action_id: str, value: str, user: str, team: str) -> None:
        """A button of the home tab: paging, or a re-render / .blend answered in the job's thread."""
        if action_id.startswith(HOME_ACTION_PAGE):
            self.home.page(user, value)
            return
        wanted = {HOME_ACTION_RERENDER: bk.ACTION_RERENDER_HQ, HOME_ACTION_BLEND: bk.ACTION_GET_BLEND}
        action = next((a for prefix, a in wanted.items() if action_id.startswith(prefix)), "")
        parent = self.store.get(value) if action and _JOB_ID.match(value) else None
        if parent is None or parent.requester.user_id != user or not parent.requester.channel_id:
            return  # "Open thread" is a link; a job of someone else or gone: nothing to do
        if not self._first_click(action, parent.id):
            return
        requester = Requester(team_id=team, channel_id=parent.requester.channel_id, user_id=user,
                              thread_ts=parent.requester.thread_ts or parent.slack_ts, source="slack")
        self._derived_job(action, parent.id, requester)

    def _derived_job(self, action_id: str, parent_id: str, requester: Requester) -> None:
        target = ReplyTarget(job_id="", channel=requester.channel_id, user_id=requester.user_id,
                             thread_ts=requester.thread_ts)
        parent = self.store.get(parent_id) if _JOB_ID.match(parent_id) else None
        if parent is None or parent.spec is None:
            self._forget_click(action_id, parent_id)
            self._tell_ephemeral(target, "That job is gone; start a new `/render`.")
            return
        if action_id == bk.ACTION_GET_BLEND:
            blend = [o for o in parent.outputs if o.role == "blend"]
            if blend:
                try:
                    self.outbox.upload(target.channel, target.thread_ts, [(blend[0].path, f"{parent.id}.blend")],
                                       f".blend of job `{parent.id}`", job_id=parent.id)
                except Exception as exc:
                    self._forget_click(action_id, parent_id)
                    self._tell_ephemeral(target, f"⚠️ Upload failed ({type(exc).__name__}); the file is at "
                                                 f"`{blend[0].path}`.")
                return
            options = dict(parent.options, save_blend=True)
            spec = parent.spec
        else:
            # Idempotent: one step up from the scene the user asked for, never from an
            # earlier re-render (clicking it on a high-quality result gives the same spec).
            base = self._hq_base(parent)
            options = dict(base.options, quality="high", **{HQ_OF: base.id})
            spec = high_quality(base.spec or parent.spec)
            if not self._hq_gains(spec, base, requester.user_id):
                self._audit(actor=requester.user_id, action="refused:high_quality", target=parent.id,
                            detail="the cost tier would scale it back to the scene it has", allowed=False)
                _tier, limit = self.cost_policy.tier("slack", requester.user_id)
                self._tell_ephemeral(target, f"⚠️ `{parent.id}` is already as detailed as your render budget "
                                             f"allows (about {fmt_s(limit)} s of CPU a job), so a high-quality "
                                             "re-render would look the same. An admin can render it bigger.")
                return
        job = Job(kind=JobKind.RENDER, request_text="", spec=spec, parent_job_id=parent.id, options=options,
                  requester=requester)
        target.job_id = job.id
        if self.submit_job(job, target) is None:
            self._forget_click(action_id, parent_id)


def high_quality(spec: dict[str, Any]) -> dict[str, Any]:
    """The same scene with more samples and twice the resolution, within the spec's bounds."""
    data = dict(spec)
    out = dict(data.get("output") or {})
    out["samples"] = min(MAX_SAMPLES, max(128, int(out.get("samples", 32)) * 4))
    width, height = int(out.get("width", 640)), int(out.get("height", 480))
    scale = min(2.0, MAX_RESOLUTION / max(width, height, 1))
    out["width"], out["height"] = max(width, int(width * scale)), max(height, int(height * scale))
    data["output"] = out
    try:
        parsed, _ = parse_scene_spec(data)
    except SpecError:
        return spec
    return parsed.to_json_dict()


def _strip_verb(text: str, verbs: tuple[str, ...]) -> str:
    low = text.lower()
    for verb in verbs:
        if low.startswith(verb):
            rest = text[len(verb):].lstrip(" :,")
            return rest or text
    return text
