"""Versioned migrations, the same list for both backends.

Each migration is a list of statements generated for the dialect, applied in one
transaction together with its row in `schema_version`. Applying is idempotent (applied
versions are skipped) and safe when several nodes start at once: SQLite takes the write
lock first (BEGIN IMMEDIATE), SQL Server takes an exclusive application lock
(`sp_getapplock`) held until the transaction ends. Append new versions; never edit old ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .sql import (
    HISTORY_TABLES,
    JOB_COLUMNS,
    JOB_COLUMNS_V6_ADDED,
    NODE_COLUMNS,
    NODE_COLUMNS_V6_ADDED,
    SLACK_BUDGET_COLUMNS,
    Queries,
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Callable[[Queries], list[str]]


def _v1(q: Queries) -> list[str]:
    return [
        q.create_table("jobs", JOB_COLUMNS, key="id"),
        # The claim scans queued jobs oldest first.
        "CREATE INDEX ix_jobs_status_created ON jobs (status, created_at)",
    ]


def _v2(q: Queries) -> list[str]:
    out = []
    for table, columns in HISTORY_TABLES.items():
        out.append(q.create_table(table, columns, key=None, identity=True))
        out.append(f"CREATE UNIQUE INDEX ux_{table}_record_key ON {table} (record_key)")
        out.append(f"CREATE INDEX ix_{table}_created ON {table} (created_at)")
    return out


def _v3(q: Queries) -> list[str]:
    # Analytics: render seconds as a plain column (timings stay JSON), per-user listing.
    return [
        q.d.add_column("jobs", "render_s", "float"),
        "CREATE INDEX ix_jobs_created ON jobs (created_at)",
        "CREATE INDEX ix_jobs_user_created ON jobs (user_id, created_at)",
    ]


def _v4(q: Queries) -> list[str]:
    # Progress any node can read, and the thread lookup a follow-up on another node needs.
    return [
        q.d.add_column("jobs", "progress", "json"),
        "CREATE INDEX ix_jobs_channel_slack_ts ON jobs (channel_id, slack_ts)",
        "CREATE INDEX ix_jobs_channel_thread_ts ON jobs (channel_id, thread_ts)",
    ]


def _v5(q: Queries) -> list[str]:
    # The farm's node registry: which nodes exist, what they run, and when they last beat.
    return [q.create_table("nodes", NODE_COLUMNS, key="id")]


def _v6(q: Queries) -> list[str]:
    # Capability routing, fair scheduling, per-channel quotas, and the farm's Slack budget.
    return [
        *(q.d.add_column("jobs", name, kind) for name, kind in JOB_COLUMNS_V6_ADDED),
        *(q.d.add_column("nodes", name, kind) for name, kind in NODE_COLUMNS_V6_ADDED),
        "CREATE INDEX ix_jobs_channel_created ON jobs (channel_id, created_at)",
        "CREATE INDEX ix_jobs_status_user ON jobs (status, user_id)",
        q.create_table("slack_budget", SLACK_BUDGET_COLUMNS, key="bucket"),
    ]


def _v7(q: Queries) -> list[str]:
    # Fair claims count each requester's recent claims: a range seek on claimed_at instead of
    # a scan of the whole job history on every claim.
    return ["CREATE INDEX ix_jobs_claimed_at ON jobs (claimed_at)"]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "jobs table", _v1),
    Migration(2, "messages, llm_calls, audit_log", _v2),
    Migration(3, "analytics: jobs.render_s and indexes", _v3),
    Migration(4, "jobs.progress; thread lookup indexes", _v4),
    Migration(5, "nodes: the node registry", _v5),
    Migration(6, "capability routing, fair claims, channel quotas, slack_budget", _v6),
    Migration(7, "fair claims: jobs.claimed_at index", _v7),
)
LATEST_VERSION = MIGRATIONS[-1].version
MIGRATION_LOCK_RESOURCE = "slack_ai_addon.migrations"
