"""Text helpers every layer uses: cutting text to a limit, and fitting a request to the
job's request limit. Pure Python, no bpy; imports nothing from the add-on but the limit."""

from __future__ import annotations

import re

from .core.jobs import MAX_REQUEST_CHARS


def clip(text: str, limit: int, *, say_length: bool = False) -> str:
    """`text` cut to at most `limit` characters, ending in "…" when it was cut.

    With `say_length` the cut also says how long the whole was (" …[truncated, 52000 chars]"),
    so a stored value is never mistaken for the whole.
    """
    if len(text) <= limit:
        return text
    mark = f" …[truncated, {len(text)} chars]" if say_length else "…"
    return text[: max(0, limit - len(mark))] + mark


def fit_request(text: str, limit: int = MAX_REQUEST_CHARS) -> tuple[str, str]:
    """(the request cut to `limit` characters, the warning to record; "" when it fitted).

    Requests are not clipped with a mark: the cut text is what gets interpreted, and the
    warning (kept on the job) tells the user that only the start was read.
    """
    if len(text) <= limit:
        return text, ""
    return text[:limit], f"request was {len(text)} characters; only the first {limit} were used"


_KEEP_CONTROLS = frozenset("\n\t")


def clean_control(text: str) -> str:
    """`text` without lone surrogates and control characters (newlines and tabs stay).

    Slack text is untrusted: a lone surrogate cannot be encoded as UTF-8 (the database
    driver, a log line or Blender's text object would raise on it), and C0/C1 controls,
    NUL included, have no business in a scene request. Runs before anything is stored.
    """
    if text.isprintable():
        return text
    return "".join(ch for ch in text
                   if ch in _KEEP_CONTROLS
                   or not (ch < " " or "\x7f" <= ch <= "\x9f" or "\ud800" <= ch <= "\udfff"))


_MARKUP_OPEN = re.compile(r"<(?=\S)")  # Slack markup (`<!here>`, `<@U1>`, `<url|label>`) has no space after "<"


def defuse_markup(text: str) -> str:
    """`text` with no "<" that could open Slack markup: each becomes "‹" (one character for
    one, so no new pair can form). For text quoted back in messages whose every sink may not
    escape (an error message that quotes the request); the sinks escape as well."""
    return _MARKUP_OPEN.sub("\u2039", text)
