"""Connections for the two database backends: SQLite (embedded default) and SQL Server.

A backend knows how to connect, how to open a write transaction and which driver errors
mean "the database is unreachable" (buffer and go on) rather than "this is a bug".
Connection URLs may hold passwords: only `redacted_url` is ever logged. URLs are taken
apart by `slack_ai_addon.redaction.split_database_url`, the one parser every layer uses.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...redaction import redact_url as redact_url  # re-exported by storage.db
from ...redaction import split_database_url
from .sql import SQLITE, TSQL, Dialect

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_S = 30.0


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached; writes were buffered where the contract allows."""


class DatabaseUrlError(ValueError):
    pass


class Backend:
    """Base: subclasses set `dialect` and implement `connect`."""

    dialect: Dialect = SQLITE
    unavailable_errors: tuple[type[BaseException], ...] = ()
    integrity_errors: tuple[type[BaseException], ...] = ()
    redacted_url: str = ""

    def connect(self) -> Any:
        raise NotImplementedError

    def begin(self, conn: Any, cur: Any) -> None:
        """Start a write transaction."""

    def commit(self, conn: Any, cur: Any) -> None:
        conn.commit()

    def rollback(self, conn: Any, cur: Any) -> None:
        conn.rollback()


class SqliteBackend(Backend):
    """A SQLite file in WAL mode. Multi-process safe through SQLite's own file locking:
    every write transaction is BEGIN IMMEDIATE, so two claims never interleave."""

    dialect = SQLITE
    unavailable_errors = (sqlite3.OperationalError, OSError)
    integrity_errors = (sqlite3.IntegrityError,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.redacted_url = f"sqlite:///{path}"
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)

    def connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves, so the module
        # never opens a deferred transaction that could deadlock on upgrade to a writer.
        conn = sqlite3.connect(str(self.path), timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        # Switching a new file to WAL needs a moment of exclusive access and does not wait on
        # the busy handler: two nodes opening a fresh database at once would see "locked".
        for attempt in range(100):
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05)
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        conn.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        return conn

    def begin(self, conn: Any, cur: Any) -> None:
        cur.execute("BEGIN IMMEDIATE")

    def commit(self, conn: Any, cur: Any) -> None:
        cur.execute("COMMIT")

    def rollback(self, conn: Any, cur: Any) -> None:
        if conn.in_transaction:
            cur.execute("ROLLBACK")


@dataclass
class MssqlParams:
    host: str
    port: int
    user: str
    password: str
    database: str
    options: dict[str, str]


class MssqlBackend(Backend):
    """SQL Server through pymssql (implicit transactions: commit/rollback per unit of work)."""

    dialect = TSQL

    def __init__(self, params: MssqlParams, redacted_url: str, *, login_timeout: int = 10,
                 query_timeout: int = 60) -> None:
        import pymssql

        self.params = params
        self.redacted_url = redacted_url
        self.login_timeout = login_timeout
        self.query_timeout = query_timeout
        self.unavailable_errors = (pymssql.OperationalError, pymssql.InterfaceError, OSError)
        self.integrity_errors = (pymssql.IntegrityError,)
        self._pymssql = pymssql

    def connect(self) -> Any:
        p = self.params
        kwargs: dict[str, Any] = {"server": p.host, "port": str(p.port), "user": p.user, "password": p.password,
                                  "database": p.database, "login_timeout": self.login_timeout,
                                  "timeout": self.query_timeout, "autocommit": False}
        if "tds_version" in p.options:
            kwargs["tds_version"] = p.options["tds_version"]
        return self._pymssql.connect(**kwargs)


def parse_database_url(url: str) -> tuple[str, Path | MssqlParams]:
    """`sqlite:///path.db` or `mssql+pymssql://user:pass@host:1433/db` -> (kind, params)."""
    try:
        parts = split_database_url(url)
    except ValueError as exc:
        raise DatabaseUrlError(str(exc)) from None
    if parts.scheme == "sqlite":
        if not parts.path:
            raise DatabaseUrlError("sqlite URL needs a path: sqlite:///path/to/jobs.db")
        return "sqlite", Path(parts.path).expanduser()
    if parts.scheme in ("mssql+pymssql", "mssql"):
        if not parts.host or not parts.database:
            raise DatabaseUrlError(f"SQL Server URL needs a host and a database: {redact_url(url)}")
        return "mssql", MssqlParams(host=parts.host, port=parts.port or 1433, user=parts.user,
                                    password=parts.password, database=parts.database, options=parts.options)
    raise DatabaseUrlError(f"unsupported DATABASE_URL {redact_url(url)!r}: use sqlite:///path.db or "
                           "mssql+pymssql://user:pass@host:1433/db")


def backend_for_url(url: str) -> Backend:
    kind, params = parse_database_url(url)
    if kind == "sqlite":
        assert isinstance(params, Path)
        return SqliteBackend(params)
    assert isinstance(params, MssqlParams)
    return MssqlBackend(params, redact_url(url))
