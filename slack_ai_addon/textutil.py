"""Text helpers every layer uses: cutting text to a limit, and fitting a request to the
job's request limit. Pure Python, no bpy; imports nothing from the add-on but the limit."""

from __future__ import annotations

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
