"""Access control and quotas (core/admission.py) against the real SQLite store; the quota
statements parse as T-SQL. Time is driven through the store's `clock`, never by sleeping."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from pymssql import _mssql

from slack_ai_addon.core.admission import Admission, next_utc_midnight, retry_phrase
from slack_ai_addon.core.config import Settings
from slack_ai_addon.core.jobs import Job, JobKind, JobStatus, Requester
from slack_ai_addon.storage.db.sql import TSQL, Queries
from tests.job_store import JobStoreForTests, temp_job_store

# 2026-12-06 10:00:00 UTC: a fixed "now" the store's clock starts from.
NOON = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.UTC).timestamp()
NO_QUOTAS: dict[str, Any] = {"quota_user_requests_per_minute": 0, "quota_channel_requests_per_minute": 0,
                             "quota_user_render_s_per_day": 0, "quota_channel_render_s_per_day": 0,
                             "quota_user_queued": 0, "quota_channel_queued": 0, "queue_cap": 0}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> JobStoreForTests:
    s = temp_job_store(tmp_path / "db")
    s.clock = Clock(NOON)
    return s


def admission(store: JobStoreForTests, **settings: Any) -> Admission:
    return Admission(Settings(**{**NO_QUOTAS, **settings}), store)


def add_job(store: JobStoreForTests, *, user: str = "U1", channel: str = "C1", at: float | None = None,
            render_s: float | None = None, status: JobStatus = JobStatus.DONE) -> Job:
    job = Job(kind=JobKind.RENDER, request_text="a cube", status=status,
              requester=Requester(team_id="T1", channel_id=channel, user_id=user, source="slack"),
              created_at=store.clock() if at is None else at)
    if render_s is not None:
        job.timings["render_s"] = render_s
    return store.add(job)


def check(a: Admission, user: str = "U1", channel: str = "C1") -> Any:
    return a.check_quota(channel_id=channel, user_id=user)


# ---------------------------------------------------------------- allowlists and admins

def test_empty_allowlists_let_everyone_in(store: JobStoreForTests) -> None:
    assert admission(store).check_access(team_id="T9", channel_id="C9", user_id="U9") is None


def test_allowlists_refuse_politely_and_say_why(store: JobStoreForTests) -> None:
    a = admission(store, allowed_team_ids="T1", allowed_channel_ids="C1, C2", allowed_user_ids="U1,U2",
                  admin_user_ids="UADMIN")
    assert a.check_access(team_id="T1", channel_id="C2", user_id="U2") is None
    team = a.check_access(team_id="T2", channel_id="C1", user_id="U1")
    assert team is not None and team.reason == "team" and "not enabled for this workspace" in team.message
    channel = a.check_access(team_id="T1", channel_id="C3", user_id="U1")
    assert channel is not None and channel.reason == "channel" and "C3" in channel.detail
    user = a.check_access(team_id="T1", channel_id="C1", user_id="U3")
    assert user is not None and user.reason == "user" and "Sorry" in user.message and "U3" not in user.message
    # A DM with the bot is not a channel of the workspace: the user list still applies.
    assert a.check_access(team_id="T1", channel_id="D123", user_id="U1") is None
    assert a.check_access(team_id="T1", channel_id="D123", user_id="U3") is not None
    # Admins pass the channel and user lists, not another workspace's.
    assert a.check_access(team_id="T1", channel_id="C3", user_id="UADMIN") is None
    assert a.check_access(team_id="T2", channel_id="C1", user_id="UADMIN") is not None


# ---------------------------------------------------------------- requests per minute

@pytest.mark.parametrize("scope", ["user", "channel"])
def test_per_minute_at_the_limit_one_over_and_after_the_window(store: JobStoreForTests, scope: str) -> None:
    a = admission(store, **{f"quota_{scope}_requests_per_minute": 3})
    other = {"user": "U2", "channel": "C2"}
    for i in range(2):
        add_job(store, at=NOON - 50 + i * 10)  # at 09:59:10 and 09:59:20
    assert check(a) is None  # 2 in the last minute: the 3rd (at the limit) is accepted
    add_job(store, at=NOON)
    refusal = check(a)  # 3 in the last minute: a 4th is one over
    assert refusal is not None and refusal.reason == f"{scope}_per_minute"
    assert "3 requests per minute" in refusal.message and "in 10 s" in refusal.message  # the oldest leaves at +10 s
    assert refusal.retry_at == NOON + 10
    # Someone else (another user in another channel) is not affected.
    assert check(a, user=other["user"], channel=other["channel"]) is None
    store.clock.now = NOON + 9.5  # type: ignore[attr-defined]
    assert check(a) is not None  # still 3 in the window
    store.clock.now = NOON + 10.5  # type: ignore[attr-defined]
    assert check(a) is None  # the oldest left the window


def test_admins_are_exempt_from_user_quotas_not_from_the_queue_cap(store: JobStoreForTests) -> None:
    a = admission(store, quota_user_requests_per_minute=1, queue_cap=2, admin_user_ids="UADMIN")
    add_job(store, user="UADMIN", status=JobStatus.QUEUED)
    assert check(a, user="UADMIN") is None
    assert check(a, user="U1") is None  # U1 has no jobs yet
    add_job(store, user="U1", status=JobStatus.QUEUED)
    cap = check(a, user="UADMIN")
    assert cap is not None and cap.reason == "queue_cap" and "queue is full (2 jobs waiting" in cap.message


# ---------------------------------------------------------------- render seconds per day

def test_render_seconds_per_day_until_midnight_utc(store: JobStoreForTests) -> None:
    a = admission(store, quota_user_render_s_per_day=250, quota_channel_render_s_per_day=1000)
    add_job(store, at=NOON - 11 * 3600, render_s=5000)  # yesterday: does not count today
    add_job(store, at=NOON - 3600, render_s=100)
    add_job(store, at=NOON - 1800, render_s=100)
    assert check(a) is None  # 200 of 250 s
    add_job(store, at=NOON - 60, render_s=50)
    refusal = check(a)  # 250 of 250: at the limit, the next is refused
    assert refusal is not None and refusal.reason == "user_render_s_per_day"
    midnight = next_utc_midnight(NOON)
    assert refusal.retry_at == midnight == dt.datetime(2026, 12, 7, tzinfo=dt.UTC).timestamp()
    assert f"<!date^{int(midnight)}^" in refusal.message and "2026-12-07 00:00 UTC" in refusal.message
    assert check(a, user="U2") is None  # the channel's 1000 s are not used up
    store.clock.now = midnight + 1  # type: ignore[attr-defined]
    assert check(a) is None  # a new day
    # Just after midnight the minute window still reaches into yesterday: yesterday's render
    # seconds must not count towards today's quota.
    add_job(store, user="U3", at=midnight - 20, render_s=300)
    store.clock.now = midnight + 30  # type: ignore[attr-defined]
    assert check(a, user="U3", channel="C3") is None


# ---------------------------------------------------------------- open jobs and the queue cap

@pytest.mark.parametrize("scope", ["user", "channel"])
def test_unfinished_jobs(store: JobStoreForTests, scope: str) -> None:
    a = admission(store, **{f"quota_{scope}_queued": 2})
    first = add_job(store, status=JobStatus.QUEUED, at=NOON - 7200)  # older than any window: still counts
    add_job(store, status=JobStatus.QUEUED)
    add_job(store, status=JobStatus.DONE)
    refusal = check(a)
    assert refusal is not None and refusal.reason == f"{scope}_queued" and "the limit is 2" in refusal.message
    store.request_cancel(first.id)
    assert check(a) is None


def test_queue_cap_counts_everyone(store: JobStoreForTests) -> None:
    a = admission(store, queue_cap=3)
    for user in ("U1", "U2", "U3"):
        add_job(store, user=user, channel=f"C{user}", status=JobStatus.QUEUED)
    assert check(a, user="U9", channel="C9") is not None
    assert admission(store, queue_cap=4).check_quota(channel_id="C9", user_id="U9") is None


def test_zero_means_no_limit(store: JobStoreForTests) -> None:
    a = admission(store)
    for _ in range(30):
        add_job(store, status=JobStatus.QUEUED, render_s=1000)
    assert check(a) is None


def test_retry_phrases() -> None:
    assert retry_phrase(100.0, 140.0) == "in 40 s"
    assert retry_phrase(100.0, 100.2) == "in 1 s"
    assert retry_phrase(0.0, 600.0) == "in 10 min"
    midnight = next_utc_midnight(NOON)
    assert retry_phrase(NOON, midnight) == (f"at <!date^{int(midnight)}^{{date_short_pretty}} {{time}}"
                                            "|2026-12-07 00:00 UTC>")


# ---------------------------------------------------------------- the statements on SQL Server

@pytest.mark.parametrize("scope", ["user_id", "channel_id"])
def test_quota_statements_parse_as_tsql(scope: str) -> None:
    q = Queries(TSQL)
    window = q.quota_window(scope)
    params: dict[str, str | float] = {"key": "U1'; DROP TABLE jobs; --", "minute_since": 1.5, "day_since": 0.0,
                                      "since": 0.0}
    bound = _mssql.substitute_params(window, params).decode()
    (tree,) = sqlglot.parse(bound, read="tsql", error_level=sqlglot.ErrorLevel.RAISE)
    assert tree is not None and "DROP" not in window
    open_sql = q.quota_open(scope, 2)
    bound = _mssql.substitute_params(open_sql, {"key": "U1", "st0": "queued", "st1": "running"}).decode()
    assert len(sqlglot.parse(bound, read="tsql", error_level=sqlglot.ErrorLevel.RAISE)) == 1
    with pytest.raises(ValueError):
        q.quota_window("request_text")
