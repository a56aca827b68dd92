"""The database behind the job store: SQLite (embedded default) or SQL Server, one schema."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ...core.config import user_data_dir
from .backends import DatabaseUnavailable, DatabaseUrlError, backend_for_url, redact_url
from .outbox import Outbox
from .schema import LATEST_VERSION, MIGRATIONS
from .store import SqlJobStore

__all__ = ["DatabaseUnavailable", "DatabaseUrlError", "LATEST_VERSION", "MIGRATIONS", "SqlJobStore",
           "default_outbox_path", "open_sql_store", "redact_url"]


def default_outbox_path(url: str) -> Path:
    """Local, outside the database's own folder (which may be the thing that is down)."""
    digest = hashlib.sha1(url.encode("utf-8"), usedforsecurity=False).hexdigest()[:12]
    return user_data_dir() / "outbox" / f"db-{digest}.jsonl"


def open_sql_store(url: str, *, outbox_path: Path | None = None, migrate: bool = True) -> SqlJobStore:
    """Open (and migrate) the store for a database URL."""
    backend = backend_for_url(url)
    return SqlJobStore(backend, Outbox(outbox_path or default_outbox_path(url)), migrate=migrate)
