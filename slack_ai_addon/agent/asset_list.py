"""`/blender assets [query]`: the matching assets as text and one contact-sheet image.

Reads the asset index's snapshot (no bpy, any thread). The query only filters names, tags
and catalogs: nothing in it is ever used as a path. Every name is escaped for mrkdwn."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..assets import service
from ..assets.contact_sheet import format_asset_list, render_contact_sheet
from ..textutil import clip
from . import blocks as bk

log = logging.getLogger(__name__)

MAX_QUERY = 100
SHEET_LIMIT = 30


def asset_list_reply(query: str, upload: Callable[[str, str], None] | None = None) -> str:
    """The text answer; with `upload(path, title)`, the contact sheet goes out too (best effort)."""
    query = clip(" ".join(query.split()), MAX_QUERY)
    index = service.current_index()
    if not index.libraries:
        return ("No asset libraries are configured on this node: set `SLACK_AI_ASSET_LIBRARIES` "
                "(or asset_libraries in the config file or the add-on's preferences).")
    found = service.current_matcher().search(query, limit=SHEET_LIMIT)
    head = f"*Assets matching “{bk.escape(query)}”*" if query else "*Assets*"
    text = head + "\n" + bk.escape(format_asset_list(found, query=query, limit=SHEET_LIMIT))
    if found and upload is not None:
        try:
            with tempfile.TemporaryDirectory(prefix="slackai-assets-") as tmp:
                sheet = render_contact_sheet(found, Path(tmp) / "assets.png", title=f"Assets: {query or 'all'}")
                upload(str(sheet), "Assets")
        except Exception:
            log.warning("asset contact sheet not posted", exc_info=True)
    return text
