"""`command "/render a red cube"`: answer one slash command locally, exactly as Slack would.

A FakeSlackServer starts in-process, the real agent connects to it over Socket Mode, the
command is sent as a `slash_commands` envelope, and the dispatcher runs on this (main)
thread until the job is finished. Then what Slack would show is printed: the ack, the
messages and thread replies, response_url answers, uploaded files, local output paths.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from slack_ai_addon.cli import UsageError

COMMANDS = ("/render", "/analyze", "/blender")
CHANNEL = "C0GENERAL"
USER = "U0SANDUSER"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("command", nargs="+", help='a slash command, e.g. "/render a red cube" or /blender help')
    p.add_argument("--out", help="output folder (default: $SLACK_AI_OUTPUT_DIR or ./out)")
    p.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds (default 600)")


def parse_command(words: list[str]) -> tuple[str, str]:
    line = " ".join(words).strip()
    if not line.startswith("/"):
        raise UsageError(f'not a slash command: {line!r}; try "/render a red cube" or "/blender help"')
    command, _, text = line.partition(" ")
    command = command.lower()
    if command not in COMMANDS:
        raise UsageError(f"unknown command {command}; this app has {', '.join(COMMANDS)}")
    return command, text.strip()


class _OwnJobs:
    """Collects the ids of the jobs this run submitted (the router submits them): `claim`
    is the dispatcher's claim_only set (emptied as it claims), `all` keeps every id."""

    def __init__(self, claim: set[str]) -> None:
        self.claim = claim
        self.all: list[str] = []
        self._lock = threading.Lock()

    def on_job_event(self, event: Any) -> None:
        if event.kind == "queued":
            with self._lock:
                self.all.append(event.job.id)
            self.claim.add(event.job.id)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self.all)


def run(args: argparse.Namespace) -> int:
    # First: the stand-in's package picks aiohttp's pure-Python parser before anything imports aiohttp.
    from headless_runner.sandbox.slack_server import FakeSlackServer
    from slack_ai_addon.agent.service import AgentService
    from slack_ai_addon.cli.serve import build_agent_runtime
    from slack_ai_addon.core.config import ConfigError, load_settings
    from slack_ai_addon.core.dispatcher import run_headless

    command, text = parse_command(args.command)
    if command in ("/render", "/analyze") and not text:
        example = "a red cube on a checkered floor" if command == "/render" else "I love this"
        raise UsageError(f'{command} needs some text, e.g. {shlex.quote(command + " " + example)}')
    try:
        settings = load_settings(flags={"output_dir": getattr(args, "out", None)})
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    srv = FakeSlackServer().start()
    settings.slack_bot_token, settings.slack_app_token = srv.bot_token, srv.app_token
    settings.slack_api_url = srv.api_url
    # The configured job store (the embedded SQLite by default), so `/blender jobs` and
    # `/blender stats` see earlier runs; but this run claims only the jobs it submitted: a
    # one-shot must not take other people's jobs from a shared farm database.
    runtime = build_agent_runtime(settings, with_renderer=command == "/render")
    own_jobs: set[str] = set()
    own = _OwnJobs(own_jobs)
    runtime.add_listener(own)
    if command == "/render":
        from slack_ai_addon.cli.progress import ProgressPrinter, log_blender_output

        log_blender_output(runtime.output_dir)
        runtime.add_listener(ProgressPrinter())
    dispatcher = runtime.dispatcher(claim_only=own_jobs)
    state = Path(tempfile.mkdtemp(prefix="slackai-command-")) / "agent_state.db"
    # Progress every 2 s: 30 chat.update a minute, under Slack's Tier 3 (about 50).
    agent = AgentService(runtime, settings=settings, update_interval_s=2.0, state_path=state)
    try:
        agent.start()
        if not agent.wait_until_connected(15):
            print(f"error: agent did not connect to the local Slack: {agent.status().detail}", file=sys.stderr)
            return 1
        started_at = time.time()
        envelope_id = srv.send_slash_command(command, text, user_id=USER, channel_id=CHANNEL, user_name="you")
        ack = srv.wait_for_ack(envelope_id, timeout=5.0)
        stop = threading.Event()
        deadline = time.monotonic() + args.timeout
        job_ids: list[str] = []

        def finished() -> bool:
            # In-memory state only: this runs on the main thread between render steps.
            if time.monotonic() > deadline:
                return True
            job_ids[:] = own.ids()
            if command == "/blender" or (ack.payload or {}).get("response_type") == "ephemeral":
                return bool(srv.response_url_posts) or (ack.payload or {}).get("response_type") == "ephemeral" \
                    or time.monotonic() > deadline - args.timeout + 10
            if not job_ids and time.time() - started_at > 10:
                return True  # refused before a job existed (the reply says why)
            if not job_ids or not all(dispatcher.settled(j) for j in job_ids):
                return False
            replier = agent.replier
            return replier is not None and replier.pending_targets() == 0 and replier.lanes.busy() == 0

        run_headless(dispatcher, stop, until=finished)
        time.sleep(0.3)  # the last reply's HTTP round trip
        return _report(srv, runtime, ack, job_ids, timed_out=time.monotonic() > deadline)
    finally:
        agent.stop(5)
        runtime.close()
        srv.stop()


def _report(srv: Any, runtime: Any, ack: Any, job_ids: list[str], *, timed_out: bool) -> int:
    payload = ack.payload or {}
    if payload.get("text"):
        print(f"ack ({payload.get('response_type', 'ephemeral')}): {payload['text']}")
    elif payload.get("response_type") == "in_channel":
        print("ack: in_channel (Slack shows the command in the channel)")
    for post in srv.response_url_posts:
        body = post.get("body") if isinstance(post.get("body"), dict) else {}
        print(f"reply ({body.get('response_type', 'ephemeral')}): {body.get('text', '')}")
    for msg in srv.channel_messages(CHANNEL):
        if not msg.get("bot_id"):
            continue
        where = "  thread reply" if msg.get("thread_ts") and msg.get("thread_ts") != msg.get("ts") else "message"
        tasks = msg.get("chunks") or []  # a streamed task timeline (agent/timeline.py)
        if msg.get("text") or not tasks:
            print(f"{where}: {msg.get('text', '')}")
        if tasks:
            print(f"{where.replace('message', 'timeline')}{'' if where == 'message' else ' (timeline)'}: "
                  + ", ".join(f"{t.get('title')} ({t.get('status')})" for t in tasks))
        for f in msg.get("files") or []:
            name = f.get("name") or f.get("title") if isinstance(f, dict) else f
            print(f"  file: {name}")
    for f in srv.files.values():
        where = f"in thread {f.thread_ts}" if f.thread_ts else "in the channel"
        print(f"uploaded to Slack: {f.filename} ({len(f.data)} bytes) {where}")
    status = 0
    for job_id in job_ids:
        job = runtime.store.get(job_id)
        if job is None:
            continue
        print(f"job {job.id}: {job.status.value}" + (f" ({job.error})" if job.error else ""))
        for o in job.outputs:
            print(f"  {o.role:>7}: {o.path}")
        if job.status.value != "done":
            status = 1
    if timed_out:
        print("error: timed out waiting for the job", file=sys.stderr)
        return 1
    return status
