"""`blender_assets.cats.txt`: the catalog definition file of an asset library.

Blender writes one line per catalog, `UUID:catalog/path:Simple Name`, after a `VERSION 1`
line and `#` comments; assets store only the UUID (`asset_data.catalog_id`). A library may
hold several such files (one per folder); their union is the library's catalog tree.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

CATALOG_FILE = "blender_assets.cats.txt"
NIL_UUID = "00000000-0000-0000-0000-000000000000"
MAX_CATALOG_BYTES = 4_000_000


def parse_catalogs(text: str) -> dict[str, str]:
    """UUID (lower case) -> catalog path for the lines of one catalog file; bad lines are skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("VERSION"):
            continue
        parts = line.split(":", 2)
        if len(parts) < 2:
            continue
        try:
            key = str(uuid.UUID(parts[0].strip()))
        except ValueError:
            continue
        path = parts[1].strip().strip("/")
        if path:
            out[key] = path
    return out


def read_catalogs(path: Path) -> dict[str, str]:
    """One catalog file; an unreadable or oversized one counts as empty (with a warning)."""
    try:
        if path.stat().st_size > MAX_CATALOG_BYTES:
            log.warning("catalog file %s is larger than %d bytes: ignored", path, MAX_CATALOG_BYTES)
            return {}
        return parse_catalogs(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        log.warning("cannot read catalog file %s: %s", path, exc)
        return {}
