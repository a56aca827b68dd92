"""The App Home tab (a gallery of the user's renders) and the agent Messages tab's suggested
prompts.

`app_home_opened` with `tab == "home"` publishes (views.publish) the user's recent render
jobs, newest first, `PAGE` per page: thumbnail (the Slack file the agent uploaded into the
job's thread), prompt, when, how long, status, and buttons: open the thread, re-render in
high quality, get the .blend (both answered in the job's own thread), with Newer/Older
paging. Admins also see the node's status. With `tab == "messages"` the agent sets its
suggested prompts (assistant.threads.setSuggestedPrompts, no thread: the Messages tab).

Every string from a user is escaped; the view is checked by the local Slack with slack_sdk's
models like every other payload.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient

from ..core.jobs import Job, JobKind, JobStore
from . import blocks as bk

log = logging.getLogger(__name__)

PAGE = 5
ACTION_PAGE = "home_page"
ACTION_OPEN = "home_open"
ACTION_RERENDER = "home_rerender"
ACTION_BLEND = "home_blend"
HOME_PREFIX = "home_"  # every action id of the home tab (unique per view: the job id follows)

SUGGESTED_PROMPTS: list[dict[str, str]] = [
    {"title": "A quick still", "message": "a red cube on a checkered floor"},
    {"title": "A turntable", "message": "a glass sphere and a gold torus, rotating"},
    {"title": "Four variations", "message": "4 variations of a red car on a street"},
    {"title": "Just a quick look", "message": "quick look: three spheres at sunset"},
]


def _thumbnail(job: Job) -> dict[str, Any] | None:
    """The job's picture as Slack has it (the file uploaded into its thread), else None."""
    for role in ("image", "poster"):
        for out in job.outputs:
            if out.role == role and out.slack_file_id:
                return {"type": "image", "slack_file": {"id": out.slack_file_id},
                        "alt_text": bk.clip(job.request_text or "render", 200)}
    return None


def thread_url(team_domain: str, channel: str, ts: str) -> str:
    """A permalink to a message (Slack's archive form); "" when the thread is unknown."""
    if not (team_domain and channel and ts):
        return ""
    return f"https://{team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"


def gallery_view(jobs: list[Job], *, page: int, has_more: bool, team_domain: str = "",
                 admin_status: str = "") -> dict[str, Any]:
    """The home tab's view for one page of the user's render jobs."""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": "Your renders"}}]
    if not jobs:
        blocks.append(bk.section("No renders yet. Try `/render a red cube on a checkered floor`, or mention me."))
    for job in jobs:
        took = job.timings.get("render_total_s")
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(job.created_at))
        line = (f"*{bk.escape(bk.clip(job.request_text or '(re-render)', 200))}*\n"
                f"{job.status.value} · {when}" + (f" · took {bk.fmt_seconds(took)}" if took else "") +
                f" · `{job.id}`")
        section = bk.section(line)
        thumb = _thumbnail(job)
        if thumb is not None:
            section["accessory"] = thumb
        blocks.append(section)
        buttons: list[dict[str, Any]] = []
        url = thread_url(team_domain, job.requester.channel_id, job.requester.thread_ts or job.slack_ts)
        if url:
            buttons.append({"type": "button", "text": {"type": "plain_text", "text": "Open thread"},
                            "action_id": f"{ACTION_OPEN}_{job.id}", "url": url})
        if job.status.value == "done":
            buttons.append(bk.button("Re-render in high quality", f"{ACTION_RERENDER}_{job.id}", job.id))
            buttons.append(bk.button("Get .blend", f"{ACTION_BLEND}_{job.id}", job.id))
        if buttons:
            blocks.append({"type": "actions", "elements": buttons})
        blocks.append({"type": "divider"})
    paging = []
    if page > 0:
        paging.append(bk.button("◀ Newer", f"{ACTION_PAGE}_prev", str(page - 1)))
    if has_more:
        paging.append(bk.button("Older ▶", f"{ACTION_PAGE}_next", str(page + 1)))
    if paging:
        blocks.append({"type": "actions", "elements": paging})
    if admin_status:
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Node status (admins)"}})
        blocks.append(bk.section(admin_status))
    return {"type": "home", "blocks": blocks}


class HomeTab:
    """Answers app_home_opened and the home tab's buttons (I/O threads)."""

    def __init__(self, web: WebClient, store: JobStore, *, admins: Callable[[], set[str] | frozenset[str]],
                 status_text: Callable[[], str], team_domain: Callable[[], str] = lambda: "") -> None:
        self.web = web
        self.store = store
        self.admins = admins
        self.status_text = status_text
        self.team_domain = team_domain

    def opened(self, event: dict[str, Any]) -> None:
        user = str(event.get("user") or "")
        tab = str(event.get("tab") or "")
        if not user:
            return
        if tab == "messages":
            channel = str(event.get("channel") or "")
            if channel:
                self.web.assistant_threads_setSuggestedPrompts(channel_id=channel, prompts=SUGGESTED_PROMPTS,
                                                               title="Render something")
            return
        if tab == "home":
            self.publish(user)

    def publish(self, user: str, page: int = 0) -> None:
        page = max(0, page)
        jobs = [j for j in self.store.list_jobs(user_id=user, limit=(page + 1) * PAGE + 1 + 20)
                if j.kind is JobKind.RENDER]
        shown = jobs[page * PAGE:(page + 1) * PAGE]
        status = bk.escape(self.status_text()) if user in self.admins() else ""
        view = gallery_view(shown, page=page, has_more=len(jobs) > (page + 1) * PAGE,
                            team_domain=self.team_domain(), admin_status=status)
        self.web.views_publish(user_id=user, view=view)

    def page(self, user: str, value: str) -> None:
        try:
            page = int(value)
        except ValueError:
            page = 0
        self.publish(user, page)
