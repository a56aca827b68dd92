"""Logging for the command line and for services.

Services (`serve`, farm workers) write one JSON object per line to stderr, the way a log
shipper wants them: time, level, logger, message, node, and the job's `job_id` and
`correlation_id` when a record is about a job. Interactive commands write short text.
Every record passes one redaction filter first: Slack and LLM key shapes and every
configured secret (the database password included) never reach a log line; the S3 access
key id, an identifier rather than a secret, is hidden too, as a courtesy.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter  # python-json-logger 3.1+ (pyproject pins it)

from ..redaction import redact

# Attributes every LogRecord has; anything else came in through `extra=` and is context.
_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime"}


class RedactSecrets(logging.Filter):
    """Replace secrets in the message, the arguments, the traceback and any `extra` text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: log what we have rather than nothing
            message = str(record.msg)
        record.msg, record.args = redact(message, self.secrets), None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, redact(text, self.secrets)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value, self.secrets))
        return True


class NodeContext(logging.Filter):
    """Every record names the node; job records carry job_id and correlation_id ("" if none)."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node
        for key in ("job_id", "correlation_id"):
            if not hasattr(record, key):
                setattr(record, key, "")
        if not record.correlation_id and record.job_id:  # type: ignore[attr-defined]
            record.correlation_id = record.job_id  # type: ignore[attr-defined]
        return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        job = getattr(record, "job_id", "")
        return f"{line} [job {job}]" if job else line


def configure_logging(*, level: str = "INFO", fmt: str = "text", node: str = "", secrets: Iterable[str] = (),
                      stream: TextIO | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one stderr handler in `fmt` ("json" or "text")."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(NodeContext(node))
    handler.addFilter(RedactSecrets(secrets))
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(node)s %(job_id)s %(correlation_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z")
    else:
        formatter = _TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def service_logging(settings: Any, *, fmt_flag: str = "") -> None:
    """What `serve` and the farm workers call: JSON unless told otherwise, the settings' level."""
    fmt = fmt_flag or settings.log_format or "json"
    configure_logging(level=settings.log_level, fmt=fmt, node=settings.resolved_node_id(),
                      secrets=settings.masked_values())
