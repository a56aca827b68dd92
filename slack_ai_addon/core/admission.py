"""Who may use the bot, and how much: allowlists, admins and quotas (docs/SECURITY.md).

`Admission.check_access` is pure (settings only), so the Slack router can answer a refused
slash command in its ack. `Admission.check_quota` counts from the jobs table (one query
per scope, see `Queries.quota_window`), so every node of a farm enforces the same numbers.
Both return a `Refusal` (a polite message and an audit detail) or None; the message holds
no user text (ids go to the audit detail only), so it is safe to post as is.
The render cost tier is `core/cost.py`'s business; this module only says who is an admin.

Quotas (each 0 = no limit), counted over jobs that were accepted:
- requests per minute, per user and per channel: jobs created in the last 60 s;
- render seconds per UTC day, per user and per channel: `jobs.render_s` of today's jobs;
- open jobs, per user and per channel: jobs not finished yet (queued, claimed, running,
  uploading);
- the global queue cap: queued jobs of everyone.
Admins are exempt from the per-user and per-channel quotas, not from the queue cap.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .config import Settings
from .jobs import JobStatus

MINUTE_S = 60.0
DAY_S = 86400.0
OPEN_STATUSES: tuple[JobStatus, ...] = (JobStatus.QUEUED, JobStatus.CLAIMED, JobStatus.RUNNING, JobStatus.UPLOADING)


@runtime_checkable
class QuotaStore(Protocol):
    """What quotas need from the job store (SqlJobStore implements it)."""

    clock: Callable[[], float]

    def quota_usage(self, scope: str, key: str, *, minute_since: float, day_since: float,
                    open_statuses: tuple[JobStatus, ...]) -> dict[str, float]:
        ...

    def count(self, statuses: tuple[JobStatus, ...]) -> int:
        ...


@dataclass(frozen=True)
class Refusal:
    """Why a request was not accepted. `message` is mrkdwn the bot wrote (no user text: safe
    to post as is); `detail` goes to the audit log; `retry_at` is when a quota frees up (epoch s,
    0 when waiting will not help)."""

    reason: str  # "team", "channel", "user", or the quota's name
    message: str
    detail: str
    retry_at: float = 0.0


def id_list(value: str) -> frozenset[str]:
    """A comma-separated settings list of Slack ids (spaces ignored)."""
    return frozenset(v.strip() for v in value.split(",") if v.strip())


def retry_phrase(now: float, retry_at: float) -> str:
    """"in 40 s", "in 3 min", or "after midnight UTC" as a Slack date token the bot builds
    (Slack shows it in the reader's time zone; the fallback text says UTC)."""
    wait = max(1.0, retry_at - now)
    if wait < 120:
        return f"in {math.ceil(wait)} s"
    if wait < 3600:
        return f"in {math.ceil(wait / 60)} min"
    when = dt.datetime.fromtimestamp(retry_at, dt.UTC)
    fallback = when.strftime("%Y-%m-%d %H:%M UTC")
    return f"at <!date^{int(retry_at)}^{{date_short_pretty}} {{time}}|{fallback}>"


def next_utc_midnight(now: float) -> float:
    day = dt.datetime.fromtimestamp(now, dt.UTC).date() + dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def utc_day_start(now: float) -> float:
    return next_utc_midnight(now) - DAY_S


class Admission:
    """Access and quota checks for one node, from its settings."""

    def __init__(self, settings: Settings, store: object) -> None:
        self.settings = settings
        self.teams = id_list(settings.allowed_team_ids)
        self.channels = id_list(settings.allowed_channel_ids)
        self.users = id_list(settings.allowed_user_ids)
        self.admins = settings.admins
        self.store = store if isinstance(store, QuotaStore) else None

    def is_admin(self, user_id: str) -> bool:
        return bool(user_id) and user_id in self.admins

    # -- access
    def check_access(self, *, team_id: str, channel_id: str, user_id: str) -> Refusal | None:
        """Allowlists (empty = everyone). Admins pass the channel and user lists, not the
        workspace list (an admin id from another workspace is another person)."""
        if self.teams and team_id not in self.teams:
            return Refusal("team", "🔒 Sorry, this bot is not enabled for this workspace.",
                           f"workspace {team_id or '(none)'} is not in the allowlist")
        if self.is_admin(user_id):
            return None
        if self.channels and channel_id not in self.channels and not channel_id.startswith("D"):
            return Refusal("channel", "🔒 Sorry, I don't take requests in this channel. Ask an admin to add it, "
                                      "or use a channel where I am enabled.",
                           f"channel {channel_id or '(none)'} is not in the allowlist")
        if self.users and user_id not in self.users:
            return Refusal("user", "🔒 Sorry, you are not on the list of people who may use this bot. "
                                   "Ask an admin to add you.",
                           f"user {user_id or '(none)'} is not in the allowlist")
        return None

    # -- quotas
    def check_quota(self, *, channel_id: str, user_id: str) -> Refusal | None:
        """The first quota the request would break, or None. Counts from the jobs table."""
        store = self.store
        s = self.settings
        if store is None:
            return None
        now = store.clock()
        if s.queue_cap > 0:
            queued = store.count((JobStatus.QUEUED,))
            if queued >= s.queue_cap:
                return Refusal("queue_cap", f"⏳ The render queue is full ({queued} jobs waiting, the limit is "
                                            f"{s.queue_cap}). Please try again in a few minutes.",
                               f"queue cap {s.queue_cap} reached ({queued} queued)", retry_at=now + MINUTE_S)
        if self.is_admin(user_id):
            return None
        scopes = (("user", "user_id", user_id, s.quota_user_requests_per_minute, s.quota_user_render_s_per_day,
                   s.quota_user_queued),
                  ("channel", "channel_id", channel_id, s.quota_channel_requests_per_minute,
                   s.quota_channel_render_s_per_day, s.quota_channel_queued))
        day_start = utc_day_start(now)
        for who, column, key, per_minute, render_s_per_day, open_cap in scopes:
            if not key or not (per_minute > 0 or render_s_per_day > 0 or open_cap > 0):
                continue
            use = store.quota_usage(column, key, minute_since=now - MINUTE_S, day_since=day_start,
                                    open_statuses=OPEN_STATUSES)
            whose = "your" if who == "user" else "this channel's"
            if per_minute > 0 and use["recent"] >= per_minute:
                retry_at = (use["oldest_recent"] or now) + MINUTE_S
                return Refusal(f"{who}_per_minute",
                               f"⏳ That is over {whose} limit of {per_minute} requests per minute. "
                               f"Please try again {retry_phrase(now, retry_at)}.",
                               f"{who} {key}: {use['recent']:.0f} requests in the last minute, limit {per_minute}",
                               retry_at=retry_at)
            if open_cap > 0 and use["open"] >= open_cap:
                return Refusal(f"{who}_queued",
                               f"⏳ {'You have' if who == 'user' else 'This channel has'} {use['open']:.0f} "
                               f"unfinished jobs, the limit is {open_cap}. Please try again when one of them "
                               "has finished (`/blender jobs` lists yours).",
                               f"{who} {key}: {use['open']:.0f} unfinished jobs, limit {open_cap}")
            if render_s_per_day > 0 and use["render_s"] >= render_s_per_day:
                retry_at = next_utc_midnight(now)
                return Refusal(f"{who}_render_s_per_day",
                               f"⏳ That is over {whose} render time for today ({use['render_s']:,.0f} of "
                               f"{render_s_per_day:,.0f} s used). Please try again "
                               f"{retry_phrase(now, retry_at)} (00:00 UTC).",
                               f"{who} {key}: {use['render_s']:.1f} render s today, limit {render_s_per_day:g}",
                               retry_at=retry_at)
        return None

