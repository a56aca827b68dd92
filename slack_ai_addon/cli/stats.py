"""`stats`: job analytics from the database (jobs, success rate, render p50/p95, top users,
LLM cost). The pure parts live in `slack_ai_addon.storage.stats` so Slack's `/blender stats`
uses the same numbers."""

from __future__ import annotations

import argparse
import json

from ..storage.stats import build_stats, format_stats, render_stats_chart

__all__ = ["add_arguments", "build_stats", "render_stats_chart", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--days", type=int, default=7, help="how many days back (default 7)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--chart", metavar="PNG", help="also write a bar chart of jobs per day to this file")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..core.config import ConfigError, load_settings
    from ..storage import open_job_store
    from ..storage.db import DatabaseUnavailable, DatabaseUrlError
    from . import UsageError

    if args.days < 1:
        raise UsageError("--days must be at least 1")
    try:
        settings = load_settings()
        store = open_job_store(settings)
    except (ConfigError, DatabaseUrlError) as exc:
        raise UsageError(str(exc)) from None
    except DatabaseUnavailable as exc:
        print(f"error: {exc}")
        return 1
    try:
        stats = build_stats(store, args.days)
    finally:
        store.close()
    if args.chart:
        stats["chart"] = str(render_stats_chart(stats, Path(args.chart)))
    if args.json:
        print(json.dumps(stats, default=str))
    else:
        print(format_stats(stats))
        if args.chart:
            print(f"chart: {stats['chart']}")
    return 0
