"""`assets [query] [--json] [--sheet PNG]`: the studio's assets that match a query (all of
them without one), from the configured libraries (`asset_libraries`). The index is refreshed
first (changed files only) where Blender's Python is available; elsewhere the cached index
is listed as it is."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", nargs="*", help="words to match against names, tags and catalogs")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--sheet", metavar="PNG", help="also write a contact sheet of the previews to this file")
    p.add_argument("--limit", type=int, default=50, help="at most this many assets (default 50)")
    p.add_argument("--no-refresh", action="store_true", help="list the cached index without reading files")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..assets import service
    from ..assets.contact_sheet import format_asset_list, render_contact_sheet
    from ..core.config import ConfigError, load_settings
    from . import UsageError

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    refreshed = False
    index = service.configure(settings)
    if not args.no_refresh and index.libraries:
        try:
            from ..blender import asset_reader, headless
        except ImportError:  # no bpy here: the cache is what there is
            print("note: Blender's Python is not available; listing the cached index", file=sys.stderr)
        else:
            headless.prepare_module_mode(online=False)
            index = service.configure(settings, blender_libraries=asset_reader.preference_libraries())
            asset_reader.refresh_assets(index, budget_s=60.0)
            refreshed = True
    query = " ".join(args.query)
    found = service.current_matcher().search(query, limit=args.limit)
    sheet = str(render_contact_sheet(found, Path(args.sheet), title=f"Assets: {query or 'all'}")) \
        if args.sheet else ""
    if args.json:
        print(json.dumps({"query": query, "refreshed": refreshed,
                          "libraries": [{"name": lib.name, "root": str(lib.root)} for lib in index.libraries],
                          "assets": [e.public_dict(with_file=True) for e in found],
                          "failed_files": index.failures(), "sheet": sheet}))
    else:
        if not index.libraries:
            print("No asset libraries are configured: set SLACK_AI_ASSET_LIBRARIES (folders separated by "
                  "the path separator) or asset_libraries in the config file.")
            return 0
        print(format_asset_list(found, query=query, limit=args.limit))
        if sheet:
            print(f"sheet: {sheet}")
    return 0
