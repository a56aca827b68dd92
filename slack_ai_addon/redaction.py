"""Keeping secrets out of text: the one redactor, and the one parser of database URLs.

Secrets never land in logs, Slack messages, panels or exceptions. Everything that shows
text which might hold one (a provider's error body, a driver's exception, a setting's
value) passes it through `redact`; database URLs, which carry their password inline, are
parsed by `split_database_url` only, so the password is found the same way everywhere.
Pure Python, no bpy; imports nothing from the add-on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

REDACTED = "[redacted]"  # what a secret in free text becomes
URL_MASK = "***"  # what a password inside a URL becomes: scheme://user:***@host
MIN_SECRET_CHARS = 3  # shorter "secrets" would blank out ordinary words

# Shapes of keys whose value we may not know (a key from another process's environment, a
# key a proxy echoes back in its error page).
_KEY_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"xox[abprs]-[A-Za-z0-9\-]{6,}"),  # Slack bot/user/refresh tokens
    re.compile(r"xapp-[A-Za-z0-9\-]{6,}"),  # Slack app-level tokens
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"),
    re.compile(r"(?i)(api[_-]?key[\"'\s:=]+)[A-Za-z0-9._\-]{8,}"),
]
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret value (in any case), every password inside a URL and
    anything shaped like an API key replaced. Longer secrets go first, so a secret that
    contains another one leaves no part of itself behind."""
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True):
        text = re.sub(re.escape(secret), REDACTED, text, flags=re.IGNORECASE)
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    for pattern in _KEY_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    return text


def mask_secret(value: Any) -> str:
    """A secret setting as a panel may show it: the first characters of a long one, else "…"."""
    if not value:
        return ""
    text = str(value)
    return text[:5] + "…" if len(text) > 12 else "…"


def _userinfo(url: str) -> tuple[str, str, str] | None:
    """(scheme, userinfo, the rest after it) of `scheme://userinfo@rest`, or None without a
    userinfo. The userinfo runs to the LAST `@`: a password may hold `@`, `#`, `?`, `/` or
    `:` unencoded (urllib would end the host at the first `#`, `?` or `/` and show the rest
    of such a password as the host or path), while `@` is never legal in a host or port."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return None
    userinfo, _, after = rest.rpartition("@")
    return scheme, userinfo, after


def redact_url(url: str) -> str:
    """`scheme://user:secret@host/db` -> `scheme://user:***@host/db`; anything else unchanged.
    The password is everything from the first `:` of the userinfo to the last `@`."""
    parts = _userinfo(url)
    if parts is None:
        return url
    scheme, userinfo, after = parts
    user, colon, _password = userinfo.partition(":")
    if not colon:
        return url
    return f"{scheme}://{user}:{URL_MASK}@{after}"


@dataclass(frozen=True)
class DatabaseUrl:
    """`sqlite:///path.db` or `mssql+pymssql://user:pass@host:1433/db?opt=v`, taken apart."""

    scheme: str
    path: str = ""  # sqlite: the database file, as written
    host: str = ""
    port: int | None = None
    user: str = ""
    password: str = ""  # percent-escapes decoded: what the driver gets
    raw_password: str = ""  # as written in the URL: what a log line could show
    database: str = ""
    options: dict[str, str] = field(default_factory=dict)

    @property
    def secrets(self) -> list[str]:
        """The password in both spellings (they differ when it has escapes)."""
        return [p for p in dict.fromkeys((self.raw_password, self.password)) if p]


def split_database_url(url: str) -> DatabaseUrl:
    """The parts of a database URL. Raises ValueError (with the password masked) when the
    URL cannot be read; whether the parts make a usable database is the backend's call.

    The userinfo runs to the last `@` (see `_userinfo`), so a password with an unencoded
    `@`, `#`, `?`, `/` or `:` is taken whole; percent-escapes (`%40` for `@`) are decoded
    for the driver. A database name or option holding `@` must be percent-encoded."""
    if url.startswith("sqlite:///"):
        return DatabaseUrl(scheme="sqlite", path=url[len("sqlite:///"):])
    user = raw_password = ""
    parts = _userinfo(url)
    if parts is not None:
        scheme, userinfo, after = parts
        user, _, raw_password = userinfo.partition(":")
        url_without_userinfo = f"{scheme}://{after}"
    else:
        url_without_userinfo = url
    split = urlsplit(url_without_userinfo)
    try:
        port = split.port
    except ValueError:
        raise ValueError(f"the port of {redact_url(url)!r} is not a number") from None
    return DatabaseUrl(scheme=split.scheme, host=split.hostname or "", port=port, user=unquote(user),
                       password=unquote(raw_password), raw_password=raw_password,
                       database=unquote(split.path.strip("/")), options=dict(parse_qsl(split.query)))
