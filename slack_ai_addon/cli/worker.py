"""`worker`: a render-only farm node that drains the shared job table, until SIGINT/SIGTERM.

Jobs arrive in the database from the nodes that talk to Slack; with SLACK_BOT_TOKEN set this
node answers in each job's Slack thread itself. Reached as `blender -b ... --command slack_ai
worker` (Blender 4.2+), through `cli_command.run_cli(["worker", ...])` on older Blenders
(scripts/farm_node), or from the venv's bpy (`scripts/farm_node --bpy worker`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

log = logging.getLogger(__name__)


def run_worker(argv: Sequence[str]) -> int:
    """`--idle-exit S` stops after S seconds with nothing to do (tests, batch nodes). On
    SIGTERM a running render gets `stop_grace_s` to finish, then it is handed back."""
    from ..blender import headless
    from ..core.config import ConfigError, load_settings
    from ..core.dispatcher import run_headless
    from ..runtime import build_runtime

    parser = argparse.ArgumentParser(prog="slack_ai worker",
                                     description="render-only farm node: drain the shared job table")
    parser.add_argument("--idle-exit", type=float, default=0.0, help="exit after this many idle seconds (0: never)")
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per drain (default 0.5)")
    parser.add_argument("--http", help="HOST:PORT for GET /health and /metrics (default: $SLACK_AI_HTTP; off)")
    parser.add_argument("--log-format", choices=["json", "text"], help="log lines as JSON (default) or text")
    args = parser.parse_args(list(argv))
    try:
        settings = load_settings(flags={"http": args.http})
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .health import HealthServer, NodeHealth, NodeMetrics, open_runtime_waiting_for_the_database
    from .logs import service_logging

    service_logging(settings, fmt_flag=args.log_format or "")
    metrics = NodeMetrics()
    health = NodeHealth(node=settings.resolved_node_id(), role="worker", metrics=metrics)
    http = HealthServer(settings.http, health).start() if settings.http else None
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    headless.prepare_module_mode()
    runtime = open_runtime_waiting_for_the_database(lambda: build_runtime(settings, cli=True), health, stop)
    if runtime is None:  # stopped while waiting for the database
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
        if http is not None:
            http.stop()
        return 0
    runtime.add_listener(metrics)
    replies = None
    if settings.slack_bot_token:
        from ..agent.replies import ThreadReplies

        replies = ThreadReplies(runtime)
    dispatcher = runtime.dispatcher()
    log.info("worker %s draining %s%s", settings.resolved_node_id(),
             settings.resolved_database_url().split(":")[0], "; answering in Slack threads" if replies else "")
    try:
        run_headless(dispatcher, stop, idle_exit_s=args.idle_exit, budget_s=args.budget)
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: installed from C (Blender's own); cannot be restored from Python
                signal.signal(sig, handler)
        health.stopping = True
        if replies is not None:
            replies.close()
        runtime.close()
        if http is not None:
            http.stop()
    log.info("worker: %d job(s) rendered or finished", dispatcher.jobs_done)
    return 0
