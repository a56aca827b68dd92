"""Writing a file so that a crash or a full disk never leaves it half written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_atomically(path: Path, text: str, *, mode: int | None = None, errors: str = "strict") -> None:
    """Write `text` to a temp file beside `path` (created 0600 by mkstemp; `mode` after the
    write), fsync it, and rename it over `path`. On any failure the old file is untouched and
    the temp file removed; the exception propagates (ENOSPC included)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors=errors) as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
