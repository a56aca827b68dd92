"""A faithful local Slack: Web API + Socket Mode + a small web page, on one loopback port.

Used by the e2e tests, by `scripts/run "/render ..."` and by `python -m headless_runner sandbox`.
It speaks Slack's wire formats so the agent is tested against the same behaviour it meets in
a real workspace: hello sent unprompted, server pings, the 3 s ack deadline with event
redelivery (new envelope_id, same event_id), the 10-connection cap, response_url limits,
files_upload_v2's three steps, Slack's rate tiers (429 with Retry-After), Block Kit limits
(`invalid_blocks`), and the failure modes the SDK does not notice by itself (half-open
connections). docs/TESTING.md lists which rules come from Slack's documentation, with the
numbers; behaviour Slack does not document is marked `# ASSUMPTION:` here and no test locks
it in.

The server runs its own asyncio loop on a daemon thread (daemon so that a test or CLI that
forgets stop() can still exit). Every public method is safe to call from any thread: state is
guarded by one lock, and anything that writes to a socket is scheduled onto the loop.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import logging
import math
import mimetypes
import os
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The stand-in shares its process with Blender in `command` and `sandbox`. A review saw
# rare segfaults inside aiohttp's C HTTP parser (data_received) while the main thread was in
# a Blender render; the pure-Python parser is plenty for a local stand-in, so use it.
os.environ.setdefault("AIOHTTP_NO_EXTENSIONS", "1")

from aiohttp import WSMsgType, web  # noqa: E402
from slack_sdk.errors import SlackObjectFormationError  # noqa: E402
from slack_sdk.models.blocks import Block  # noqa: E402

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")

# Slack's documented limits (docs/TESTING.md has the sources).
POST_MESSAGE_MAX_CHARS = 40_000  # chat.postMessage: longer text is truncated, not refused
UPDATE_MESSAGE_MAX_CHARS = 4_000  # chat.update: msg_too_long above this
MAX_BLOCKS = 50
SECTION_TEXT_MAX = 3_000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_TEXT_MAX = 2_000
HEADER_TEXT_MAX = 150
BLOCK_ID_MAX = 255
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
RESPONSE_URL_MAX_USES = 5
RESPONSE_URL_TTL_S = 30 * 60


@dataclass(frozen=True)
class RateLimit:
    """At most `calls` accepted calls in any window of `window_s` seconds."""

    calls: int
    window_s: float


MINUTE = 60.0
# Slack's Web API tiers, per method, per app, per workspace, in one-minute windows. The
# documented figures are floors ("1+", "20+", "50+", "100+ per minute"); the fake enforces
# exactly the floor, so an app that stays under it here stays under it on Slack.
# ASSUMPTION: Tier 1 "tolerates a small amount of burst behavior" without saying how much.
# An app may hold 10 Socket Mode connections, each opened with its own apps.connections.open
# call, and slack_sdk's websocket_client asks for two tickets per connect (more while its
# monitor retries a stuck reconnect), so a strict 1/min would make the SDK sleep out a 429
# on an ordinary reconnect. The fake lets 20 calls through per window: enough for 10
# connections opened the SDK's way, and still a 429 for a reconnect loop.
TIER_1 = (RateLimit(20, MINUTE),)
TIER_2 = (RateLimit(20, MINUTE),)
TIER_3 = (RateLimit(50, MINUTE),)
TIER_4 = (RateLimit(100, MINUTE),)
# ASSUMPTION: auth.test allows "hundreds of requests per minute"; the fake takes 200.
AUTH_TEST_TIER = (RateLimit(200, MINUTE),)
# chat.postMessage: about one message per second per channel, "short bursts >1 allowed",
# and a workspace-wide limit of "several hundred messages per minute".
# ASSUMPTION: a short burst is up to 3 messages within one second; "several hundred" is 300.
POST_MESSAGE_PER_CHANNEL = (RateLimit(60, MINUTE), RateLimit(3, 1.0))
POST_MESSAGE_PER_WORKSPACE = (RateLimit(300, MINUTE),)
METHOD_RATE_LIMITS: dict[str, tuple[RateLimit, ...]] = {
    "api.test": TIER_4,
    "auth.test": AUTH_TEST_TIER,
    "apps.connections.open": TIER_1,
    "chat.update": TIER_3,
    "chat.delete": TIER_3,
    "chat.postEphemeral": TIER_4,
    "reactions.add": TIER_3,
    # Internal apps and Marketplace apps; since 2025 commercially distributed apps outside
    # the Marketplace get far lower limits on history/replies.
    "conversations.history": TIER_3,
    "conversations.replies": TIER_3,
    "conversations.info": TIER_3,
    "files.getUploadURLExternal": TIER_4,
    "files.completeUploadExternal": TIER_4,
    "files.info": TIER_4,
}

_CHANNEL_ID_RE = re.compile(r"^[CDG][A-Z0-9]+$")


@dataclass
class Ack:
    """One ack frame received over Socket Mode."""

    envelope_id: str
    payload: dict[str, Any] | None
    received_at: float
    connection_id: int = 0
    known: bool = True  # False: no envelope with this id was ever sent
    late: bool = False  # arrived after the ack deadline
    duplicate: bool = False  # the envelope had already been acked


@dataclass
class Delivery:
    """One envelope pushed (or meant to be pushed) to a Socket Mode connection."""

    envelope_id: str
    type: str  # events_api | slash_commands | interactive
    payload: dict[str, Any]
    accepts_response_payload: bool
    retry_attempt: int = 0
    retry_reason: str = ""
    event_id: str | None = None
    created_at: float = 0.0
    sent_at: float | None = None  # None: no connection was open before the deadline
    connection_id: int | None = None
    acked_at: float | None = None
    outcome: str = "pending"  # pending | acked | timed_out | undelivered

    def envelope(self) -> dict[str, Any]:
        """The frame exactly as Slack sends it."""
        env: dict[str, Any] = {"envelope_id": self.envelope_id, "payload": self.payload, "type": self.type,
                               "accepts_response_payload": self.accepts_response_payload}
        if self.type == "events_api":
            env["retry_attempt"] = self.retry_attempt
            env["retry_reason"] = self.retry_reason
        return env


@dataclass
class ApiCall:
    """One request received on the Web API (or the upload URL, as method "upload")."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    at: float
    status: int
    response: dict[str, Any] | None = None


@dataclass
class UploadedFile:
    """A file created by files.getUploadURLExternal and filled by the upload URL."""

    id: str
    filename: str
    title: str
    data: bytes
    channel_id: str | None
    thread_ts: str | None
    initial_comment: str | None
    completed: bool
    length: int = 0
    uploaded: bool = False
    alt_txt: str | None = None
    message_ts: str | None = None


@dataclass
class _Fault:
    method: str
    status: int | None
    error: str | None
    retry_after: int | None
    times: int
    delay_s: float
    drop: bool


@dataclass
class _Connection:
    id: int
    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    opened_at: float
    ticket: str
    frozen: bool = False
    closed: bool = False
    last_pong_at: float | None = None
    pings_sent: int = 0
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


@dataclass
class _ResponseUrl:
    id: str
    created_at: float
    channel_id: str
    user_id: str
    uses: int = 0
    message_ts: str | None = None  # the message holding the button, for block_actions


class FakeSlackServer:
    """A local Slack workspace with one app installed (the bot), for tests and the sandbox."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 bot_token: str = "xoxb-sandbox",  # noqa: S107 - the sandbox's own fake tokens, not secrets
                 app_token: str = "xapp-sandbox",  # noqa: S107 - same
                 ack_timeout_s: float = 3.0,
                 redelivery_delays_s: Iterable[float] = (1.0, 2.0, 4.0), ping_interval_s: float = 10.0,
                 max_connections: int = 10, *, echo_bot_messages: bool = True,
                 ticket_ttl_s: float = 60.0, disconnect_grace_s: float = 10.0,
                 team_id: str = "T0SANDBOX", team_domain: str = "sandbox",
                 enforce_rate_limits: bool = True, rate_window_scale: float = 1.0) -> None:
        self.host = host
        self._requested_port = port
        self.port = 0
        self.bot_token = bot_token
        self.app_token = app_token
        self.ack_timeout_s = ack_timeout_s
        self.redelivery_delays_s = tuple(redelivery_delays_s)
        self.ping_interval_s = ping_interval_s
        self.max_connections = max_connections
        # When the bot posts, Slack echoes its own message back as an event; the agent must
        # ignore it (self-event filter). Tests of raw Socket Mode turn the echo off.
        self.echo_bot_messages = echo_bot_messages
        self.ticket_ttl_s = ticket_ttl_s
        self.disconnect_grace_s = disconnect_grace_s
        # Slack's rate tiers (METHOD_RATE_LIMITS). Tests that run Slack's clock faster shrink
        # every window by `rate_window_scale` (0.1: a one-minute window lasts 6 s) and pace
        # the agent by the same factor; `enforce_rate_limits=False` is for tests that burst
        # on purpose and are not about the limits.
        self.enforce_rate_limits = enforce_rate_limits
        self.rate_window_scale = rate_window_scale
        self.team_id = team_id
        self.team_domain = team_domain
        self.app_id = "A0SANDBOX"
        self.bot_id = "B0SANDBOX"
        self.bot_user_id = "U0SANDBOT"
        self.bot_name = "blender"

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ids = itertools.count(1)
        self._last_ts_us = 0

        self._calls: list[ApiCall] = []
        self._acks: list[Ack] = []
        self._deliveries: list[Delivery] = []
        self._ack_events: dict[str, asyncio.Event] = {}
        self._connections: dict[int, _Connection] = {}
        self._connections_opened = 0
        self._tickets: dict[str, tuple[float, bool]] = {}  # ticket -> (issued_at, used)
        self._faults: list[_Fault] = []
        self._channels: dict[str, dict[str, Any]] = {}
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._files: dict[str, UploadedFile] = {}
        self._upload_keys: dict[str, str] = {}  # upload url key -> file id
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._response_url_posts: list[dict[str, Any]] = []
        self._reactions: list[dict[str, Any]] = []
        self._rate_log: dict[tuple[str, str, int], deque[float]] = {}  # accepted call times per window
        self._bg_tasks: set[asyncio.Task[Any]] = set()
        for channel_id, name, is_im in (("C0GENERAL", "general", False), ("C0RENDERS", "renders", False),
                                         ("D0SANDBOX", "blender", True)):
            self._add_channel(channel_id, name, is_im)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeSlackServer:
        """Start listening; returns once the port is bound."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_http())
            except BaseException as exc:  # report any start failure to the caller, not to stderr
                failure.append(exc)
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-slack", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            self._thread = None
            raise RuntimeError(f"fake Slack server failed to start: {failure[0]}") from failure[0]
        log.info("fake Slack listening on %s", self.base_url)
        return self

    async def _start_http(self) -> None:
        # Uploads of rendered videos can be large; aiohttp's default body limit is 1 MiB.
        app = web.Application(client_max_size=512 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._handle_api)
        app.router.add_get("/api/{method}", self._handle_api)  # Slack also accepts GET with query args
        app.router.add_get("/link", self._handle_socket)
        app.router.add_get("/link/", self._handle_socket)
        app.router.add_post("/upload/v1/{key}", self._handle_upload)
        app.router.add_post("/commands/{team}/{rid}/{secret}", self._handle_response_url)
        app.router.add_post("/actions/{team}/{rid}/{secret}", self._handle_response_url)
        app.router.add_get("/files-pri/{file_id}/{name}", self._handle_private_file)
        app.router.add_get("/health", self._handle_health)
        app.router.add_get("/", self._handle_index)
        app.router.add_get("/sandbox/state", self._handle_state)
        app.router.add_get("/sandbox/files/{file_id}", self._handle_sandbox_file)
        app.router.add_post("/sandbox/command", self._handle_sandbox_command)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only through the asyncio server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])

    def stop(self) -> None:
        """Close every connection and the listener; idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                fut.result(timeout=10)
            except Exception:
                log.exception("fake Slack shutdown failed")
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None
        self._loop = None
        with self._changed:
            self._changed.notify_all()

    async def _shutdown(self) -> None:
        with self._lock:
            conns = list(self._connections.values())
            tasks = list(self._bg_tasks)
        for task in tasks:
            task.cancel()
        for conn in conns:
            await self._close_connection(conn, code=1001, message=b"server shutting down", abrupt=conn.frozen)
        if self._runner is not None:
            await self._runner.cleanup()

    def __enter__(self) -> FakeSlackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def api_url(self) -> str:
        """Base URL for `WebClient(base_url=...)`."""
        return f"http://{self.host}:{self.port}/api/"

    # ------------------------------------------------------------------ observation

    @property
    def acks(self) -> list[Ack]:
        with self._lock:
            return list(self._acks)

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    @property
    def operation_timeouts(self) -> list[Delivery]:
        """Slash commands / interactions not acked in time: the user saw `operation_timeout`."""
        with self._lock:
            return [d for d in self._deliveries if d.type != "events_api" and d.outcome in ("timed_out", "undelivered")]

    @property
    def files(self) -> dict[str, UploadedFile]:
        with self._lock:
            return dict(self._files)

    @property
    def response_url_posts(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._response_url_posts)

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        """Ephemeral messages (chat.postEphemeral, response_url, slash ack payloads)."""
        with self._lock:
            return copy.deepcopy(self._ephemerals)

    @property
    def reactions(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._reactions)

    @property
    def connection_count(self) -> int:
        with self._lock:
            return sum(1 for c in self._connections.values() if not c.closed)

    @property
    def usable_connection_count(self) -> int:
        """Open connections that are not frozen (half-open)."""
        with self._lock:
            return sum(1 for c in self._connections.values() if not c.closed and not c.frozen)

    @property
    def connections_opened(self) -> int:
        with self._lock:
            return self._connections_opened

    def calls(self, method: str | None = None) -> list[ApiCall]:
        """The call log, optionally for one method ("upload" for the upload URL)."""
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def channel_messages(self, channel_id: str) -> list[dict[str, Any]]:
        """Current messages of a channel (threads included), oldest first."""
        with self._lock:
            return copy.deepcopy(self._messages.get(channel_id, []))

    def thread_messages(self, channel_id: str, thread_ts: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(m) for m in self._messages.get(channel_id, [])
                    if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts]

    def wait_for_call(self, method: str, predicate: Callable[[ApiCall], bool] | None = None,
                      timeout: float = 5.0) -> ApiCall:
        """Block until a call of `method` (matching `predicate`) has been received."""
        call: ApiCall = self._wait(lambda: next((c for c in self._calls if c.method == method
                                        and (predicate is None or predicate(c))), None),
                          timeout, f"no {method} call")
        return call

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> Ack:
        """Block until the ack for `envelope_id` has arrived (late ones included)."""
        ack: Ack = self._wait(lambda: next((a for a in self._acks if a.envelope_id == envelope_id), None),
                              timeout, f"no ack for {envelope_id}")
        return ack

    def wait_for_connection(self, count: int = 1, timeout: float = 5.0) -> None:
        """Block until at least `count` usable (not frozen) connections are open."""
        self._wait(lambda: sum(1 for c in self._connections.values() if not c.closed and not c.frozen) >= count
                   or None, timeout, f"fewer than {count} connections")

    def wait_for(self, condition: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
        """Block until `condition()` returns something truthy (re-checked on every state change)."""
        return self._wait(condition, timeout, what)

    def _wait(self, find: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = find()
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fake Slack: {what} within {timeout} s")
                self._changed.wait(min(left, 0.1))

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------------ test controls

    def inject_fault(self, method: str, *, status: int | None = 429, error: str | None = "ratelimited",
                     retry_after: int | None = 1, times: int = 1, delay_s: float = 0.0, drop: bool = False) -> None:
        """Make the next `times` calls of `method` fail ("upload" = the upload URL, "response_url",
        "*" = any). `delay_s` delays the answer (a hang), `drop` closes the connection without
        an answer, `status=None` with `error=None` only delays. A 5xx answers an HTML page."""
        with self._lock:
            self._faults.append(_Fault(method, status, error, retry_after, times, delay_s, drop))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def send_slash_command(self, command: str, text: str = "", *, user_id: str = "U0SANDUSER",
                           channel_id: str = "C0GENERAL", user_name: str = "sandbox-user") -> str:
        """Deliver a slash command as Slack does; returns the envelope_id."""
        with self._lock:
            self._ensure_channel(channel_id)
            rurl = self._new_response_url("commands", channel_id, user_id)
            payload = {
                "token": "verification-token", "team_id": self.team_id, "team_domain": self.team_domain,
                "channel_id": channel_id, "channel_name": self._channels[channel_id]["name"],
                "user_id": user_id, "user_name": user_name, "command": command, "text": text,
                "api_app_id": self.app_id, "is_enterprise_install": "false",
                "response_url": rurl,
                "trigger_id": f"{next(self._ids)}.{secrets.token_hex(6)}.{secrets.token_hex(16)}",
            }
        return self._submit("slash_commands", payload, accepts_response_payload=True)

    def send_event(self, event: dict[str, Any], event_id: str | None = None) -> str:
        """Deliver an Events API event (wrapped in event_callback); returns the event_id."""
        event = dict(event)
        with self._lock:
            ts = event.get("ts") or self._next_ts()
            event.setdefault("ts", ts)
            event.setdefault("event_ts", ts)
            event.setdefault("team", self.team_id)
            event_id = event_id or f"Ev{secrets.token_hex(5).upper()}"
        now = time.time()
        payload = {
            "token": "verification-token", "team_id": self.team_id, "api_app_id": self.app_id,
            "event": event, "type": "event_callback", "event_id": event_id, "event_time": int(now),
            "authorizations": [{"enterprise_id": None, "team_id": self.team_id, "user_id": self.bot_user_id,
                                "is_bot": True, "is_enterprise_install": False}],
            "is_ext_shared_channel": False,
            "event_context": f"4-{event.get('type', 'event')}-{self.team_id}-{event.get('channel', '')}",
        }
        self._submit("events_api", payload, accepts_response_payload=False, event_id=event_id)
        return event_id

    def send_interactive(self, payload: dict[str, Any]) -> str:
        """Deliver an interactive payload (block_actions, shortcut...); returns the envelope_id."""
        payload = copy.deepcopy(payload)
        accepts = payload.get("type") in ("block_actions", "view_submission", "view_closed")
        return self._submit("interactive", payload, accepts_response_payload=accepts)

    def click_button(self, channel_id: str, message_ts: str, action_id: str, *, user_id: str = "U0SANDUSER",
                     value: str | None = None) -> str:
        """A user clicks the button `action_id` of a stored message: a block_actions envelope."""
        with self._lock:
            message = self._find_message(channel_id, message_ts)
            if message is None:
                raise KeyError(f"no message {message_ts} in {channel_id}")
            button = _find_action(message.get("blocks") or [], action_id)
            if button is None:
                raise KeyError(f"message {message_ts} has no action {action_id!r}")
            rurl = self._new_response_url("actions", channel_id, user_id, message_ts=message_ts)
            action_ts = self._next_ts()
            payload = {
                "type": "block_actions",
                "user": {"id": user_id, "username": "sandbox-user", "team_id": self.team_id},
                "api_app_id": self.app_id, "token": "verification-token",
                "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id,
                              "is_ephemeral": False},
                "trigger_id": f"{next(self._ids)}.{secrets.token_hex(6)}",
                "team": {"id": self.team_id, "domain": self.team_domain},
                "channel": {"id": channel_id, "name": self._channels.get(channel_id, {}).get("name", channel_id)},
                "message": copy.deepcopy(message),
                "response_url": rurl,
                "actions": [{"action_id": action_id, "block_id": button.get("_block_id", ""),
                             "value": value if value is not None else button.get("value", ""),
                             "type": button.get("type", "button"), "action_ts": action_ts}],
            }
        return self.send_interactive(payload)

    def post_user_message(self, channel_id: str, user_id: str, text: str, thread_ts: str | None = None) -> str:
        """A human posts a message: stored, then delivered as `message` (+ `app_mention`) events."""
        with self._lock:
            channel = self._ensure_channel(channel_id)
            ts = self._next_ts()
            message: dict[str, Any] = {"type": "message", "user": user_id, "text": text, "ts": ts,
                                       "team": self.team_id, "client_msg_id": str(uuid.uuid4()),
                                       "blocks": [_rich_text_block(text)]}
            if thread_ts:
                message["thread_ts"] = thread_ts
            self._store_message(channel_id, message)
        event = dict(copy.deepcopy(message), channel=channel_id, event_ts=ts,
                     channel_type="im" if channel["is_im"] else "channel")
        self.send_event(event)
        # Slack sends app_mention only for channel messages; a DM arrives as message.im alone.
        if f"<@{self.bot_user_id}>" in text and not channel["is_im"]:
            mention = {k: v for k, v in event.items() if k != "channel_type"}
            mention["type"] = "app_mention"
            self.send_event(mention)
        return ts

    def send_disconnect(self, reason: str = "refresh_requested", close_after_s: float | None = None) -> None:
        """Send a `disconnect` frame to every usable connection; the server closes each one
        after `close_after_s` (default: the grace window) if the client has not."""
        grace = self.disconnect_grace_s if close_after_s is None else close_after_s
        self._call_soon(self._disconnect_all(reason, grace))

    def drop_connections(self) -> None:
        """Abrupt TCP close of every connection, without a close frame."""
        self._call_soon(self._drop_all())

    def freeze_connections(self) -> None:
        """Half-open: current connections stop sending anything (no pings, pongs or envelopes)
        and whatever the client sends is lost; TCP stays open. New connections work normally."""
        with self._lock:
            for conn in self._connections.values():
                conn.frozen = True
        self._notify()

    def add_channel(self, channel_id: str, name: str, *, is_im: bool = False) -> None:
        with self._lock:
            self._add_channel(channel_id, name, is_im)

    # ------------------------------------------------------------------ internals: state

    def _add_channel(self, channel_id: str, name: str, is_im: bool) -> dict[str, Any]:
        channel = {"id": channel_id, "name": name, "is_im": is_im}
        self._channels[channel_id] = channel
        self._messages.setdefault(channel_id, [])
        return channel

    def _ensure_channel(self, channel_id: str) -> dict[str, Any]:
        channel = self._channels.get(channel_id)
        if channel is None:
            channel = self._add_channel(channel_id, channel_id.lower(), channel_id.startswith("D"))
        return channel

    def _resolve_channel(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return None
        name = value.lstrip("#")
        for channel in self._channels.values():
            if channel["name"] == name or channel["id"] == value:
                return str(channel["id"])
        if _CHANNEL_ID_RE.match(value):
            self._ensure_channel(value)
            return value
        return None

    def _next_ts(self) -> str:
        # Strictly increasing, "%d.%06d", like Slack's message timestamps.
        with self._lock:
            now_us = int(time.time() * 1_000_000)
            self._last_ts_us = max(now_us, self._last_ts_us + 1)
            return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    def _store_message(self, channel_id: str, message: dict[str, Any]) -> None:
        self._messages.setdefault(channel_id, []).append(message)
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != message["ts"]:
            parent = self._find_message(channel_id, thread_ts)
            if parent is not None:
                parent["thread_ts"] = thread_ts
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["latest_reply"] = message["ts"]
        self._changed.notify_all()

    def _find_message(self, channel_id: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self._messages.get(channel_id, []) if m["ts"] == ts), None)

    def _bot_message(self, text: str, blocks: list[Any] | None, ts: str) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "message", "user": self.bot_user_id, "bot_id": self.bot_id,
                                   "app_id": self.app_id, "text": text, "ts": ts, "team": self.team_id,
                                   "bot_profile": {"id": self.bot_id, "app_id": self.app_id,
                                                   "name": self.bot_name, "team_id": self.team_id}}
        if blocks:
            message["blocks"] = blocks
        return message

    def _echo(self, channel_id: str, message: dict[str, Any], subtype: str | None = None,
              previous: dict[str, Any] | None = None) -> None:
        """Slack echoes the bot's own posts as events; the agent must not react to them."""
        if not self.echo_bot_messages:
            return
        channel = self._channels.get(channel_id, {})
        event: dict[str, Any]
        if subtype == "message_changed":
            event = {"type": "message", "subtype": "message_changed", "hidden": True, "channel": channel_id,
                     "message": copy.deepcopy(message), "previous_message": copy.deepcopy(previous),
                     "ts": self._next_ts()}
        else:
            event = dict(copy.deepcopy(message), channel=channel_id)
            event["subtype"] = subtype or "bot_message"
        event["event_ts"] = event["ts"]
        event["channel_type"] = "im" if channel.get("is_im") else "channel"
        self.send_event(event)

    def _new_response_url(self, kind: str, channel_id: str, user_id: str, message_ts: str | None = None) -> str:
        rid = str(next(self._ids) + 10_000_000)
        secret = secrets.token_urlsafe(18)
        self._response_urls[secret] = _ResponseUrl(secret, time.monotonic(), channel_id, user_id,
                                                   message_ts=message_ts)
        return f"{self.base_url}{kind}/{self.team_id}/{rid}/{secret}"

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.method in (method, "*"):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _record_call(self, method: str, params: dict[str, Any], headers: dict[str, str], status: int,
                     response: dict[str, Any] | None) -> None:
        with self._changed:
            self._calls.append(ApiCall(method, params, headers, time.time(), status, response))
            self._changed.notify_all()

    # ------------------------------------------------------------------ internals: Socket Mode delivery

    def _call_soon(self, coro: Any) -> None:
        loop = self._loop
        if loop is None or not loop.is_running():
            coro.close()
            raise RuntimeError("fake Slack server is not running")
        asyncio.run_coroutine_threadsafe(coro, loop)

    def _spawn(self, coro: Any) -> None:
        """Start a background task on the loop (call from the loop thread)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._bg_tasks.add(task)
        task.add_done_callback(self._bg_tasks.discard)

    def _submit(self, env_type: str, payload: dict[str, Any], *, accepts_response_payload: bool,
                event_id: str | None = None) -> str:
        envelope_id = str(uuid.uuid4())

        async def start() -> None:
            self._spawn(self._deliver(envelope_id, env_type, payload, accepts_response_payload, event_id))

        self._call_soon(start())
        return envelope_id

    async def _deliver(self, first_envelope_id: str, env_type: str, payload: dict[str, Any],
                       accepts_response_payload: bool, event_id: str | None) -> None:
        # Slack documents retries for events; commands and interactions that miss the deadline
        # show the user an error. ASSUMPTION: commands and interactions are never re-sent.
        attempts = 1 + (len(self.redelivery_delays_s) if env_type == "events_api" else 0)
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self.redelivery_delays_s[attempt - 1])
            delivery = Delivery(envelope_id=first_envelope_id if attempt == 0 else str(uuid.uuid4()),
                                type=env_type, payload=payload, accepts_response_payload=accepts_response_payload,
                                retry_attempt=attempt, retry_reason="timeout" if attempt else "",
                                event_id=event_id, created_at=time.time())
            acked = asyncio.Event()
            with self._changed:
                self._deliveries.append(delivery)
                self._ack_events[delivery.envelope_id] = acked
                self._changed.notify_all()
            deadline = time.monotonic() + self.ack_timeout_s
            conn = await self._wait_for_target(deadline)
            if conn is not None:
                await self._send_envelope(conn, delivery)
            try:
                await asyncio.wait_for(acked.wait(), max(0.0, deadline - time.monotonic()))
                return
            except TimeoutError:
                with self._changed:
                    delivery.outcome = "timed_out" if delivery.sent_at is not None else "undelivered"
                    self._changed.notify_all()
                log.info("envelope %s (%s) not acked within %.1f s", delivery.envelope_id, env_type,
                         self.ack_timeout_s)

    async def _wait_for_target(self, deadline: float) -> _Connection | None:
        """Pick a connection for the next envelope, waiting up to the ack deadline for one."""
        while True:
            with self._lock:
                open_conns = [c for c in self._connections.values() if not c.closed]
            if open_conns:
                # Slack may send a payload to any open connection. ASSUMPTION: the newest usable
                # one here (deterministic for tests); a frozen one only when nothing else is
                # open (Slack cannot tell a half-open socket apart, so the envelope is lost).
                usable = [c for c in open_conns if not c.frozen]
                return max(usable or open_conns, key=lambda c: c.id)
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.02)

    async def _send_envelope(self, conn: _Connection, delivery: Delivery) -> None:
        with self._changed:
            delivery.sent_at = time.time()
            delivery.connection_id = conn.id
            self._changed.notify_all()
        if conn.frozen:
            return
        try:
            await conn.ws.send_str(json.dumps(delivery.envelope()))
        except Exception as exc:  # the socket died under us: Slack would count it as not acked
            log.info("envelope %s lost on connection %d: %s", delivery.envelope_id, conn.id, exc)

    def _on_ack(self, conn: _Connection, frame: dict[str, Any]) -> None:
        envelope_id = str(frame.get("envelope_id"))
        payload = frame.get("payload")
        now = time.time()
        response: dict[str, Any] | None = None
        with self._changed:
            delivery = next((d for d in self._deliveries if d.envelope_id == envelope_id), None)
            ack = Ack(envelope_id, payload if isinstance(payload, dict) else None, now, conn.id)
            if delivery is None:
                ack.known = False
            elif delivery.outcome == "acked":
                ack.duplicate = True
            elif delivery.outcome != "pending":
                ack.late = True
            else:
                delivery.outcome = "acked"
                delivery.acked_at = now
                event = self._ack_events.pop(envelope_id, None)
                if event is not None:
                    event.set()
                if delivery.accepts_response_payload and ack.payload:
                    response = ack.payload
            self._acks.append(ack)
            self._changed.notify_all()
        if response is not None and delivery is not None and delivery.type == "slash_commands":
            self._apply_command_response(delivery.payload, response)

    def _apply_command_response(self, command: dict[str, Any], response: dict[str, Any]) -> None:
        """An ack payload is the immediate reply to a slash command, as Slack shows it."""
        channel_id = str(command["channel_id"])
        text = str(response.get("text", ""))
        blocks = response.get("blocks")
        with self._changed:
            self._ensure_channel(channel_id)
            if response.get("response_type") == "in_channel":
                # The user's invocation becomes visible in the channel, followed by the reply.
                self._store_message(channel_id, {"type": "message", "user": command["user_id"],
                                                 "text": f"{command['command']} {command['text']}".strip(),
                                                 "ts": self._next_ts(), "team": self.team_id,
                                                 "is_slash_command": True})
                if text or blocks:
                    self._store_message(channel_id, self._bot_message(text, blocks, self._next_ts()))
            elif text or blocks:
                self._ephemerals.append({"channel": channel_id, "user": command["user_id"], "text": text,
                                         "blocks": blocks, "ts": self._next_ts(), "source": "ack"})
            self._changed.notify_all()

    # ------------------------------------------------------------------ internals: WebSocket

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        with self._lock:
            issued = self._tickets.get(ticket)
            valid = issued is not None and not issued[1] and time.monotonic() - issued[0] <= self.ticket_ttl_s
            if issued is not None:
                self._tickets[ticket] = (issued[0], True)  # single use, even when refused as expired
        if not valid:
            log.info("refused Socket Mode handshake: %s ticket", "unknown" if issued is None else "used or expired")
            # ASSUMPTION: Slack calls the URL "temporary" without saying how long it lives, whether
            # it can be used twice, or how a refusal looks. Here a ticket is single-use, lives
            # ticket_ttl_s, and a refusal fails the handshake with a 4xx, which the SDK reports
            # and answers with a fresh ticket.
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        # Our own ping/pong and close handling: a frozen connection must not answer either.
        ws = web.WebSocketResponse(autoping=False, autoclose=False, max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        with self._changed:
            self._connections_opened += 1
            conn = _Connection(id=self._connections_opened, ws=ws, transport=request.transport,
                               opened_at=time.time(), ticket=ticket)
            open_count = sum(1 for c in self._connections.values() if not c.closed)
            # At most 10 connections per app (documented). ASSUMPTION: the one over the cap is
            # the one refused, with a too_many_websockets disconnect frame.
            over_limit = open_count >= self.max_connections
            if not over_limit:
                self._connections[conn.id] = conn
            self._changed.notify_all()
        if over_limit:
            await ws.send_str(json.dumps({"type": "disconnect", "reason": "too_many_websockets",
                                          "num_connections": open_count,
                                          "debug_info": {"host": "applink-sandbox"},
                                          "connection_info": {"app_id": self.app_id}}))
            await ws.close(code=1000, message=b"too_many_websockets")
            return ws
        await ws.send_str(json.dumps({
            "type": "hello", "num_connections": open_count + 1,
            "debug_info": {"host": "applink-sandbox", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id}}))
        conn.tasks.append(asyncio.get_running_loop().create_task(self._ping_loop(conn)))
        try:
            await self._read_loop(conn)
        finally:
            for task in conn.tasks:
                task.cancel()
            with self._changed:
                conn.closed = True
                self._connections.pop(conn.id, None)
                self._changed.notify_all()
            log.info("Socket Mode connection %d closed", conn.id)
        return ws

    async def _read_loop(self, conn: _Connection) -> None:
        ws = conn.ws
        while True:
            msg = await ws.receive()
            if msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                return
            if msg.type == WSMsgType.CLOSE:
                if conn.frozen:
                    # Half-open: the close frame is lost too; the client times out and drops TCP.
                    if conn.transport is not None:
                        conn.transport.abort()
                else:
                    await ws.close()
                return
            if conn.frozen:
                continue  # bytes into the void
            if msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                conn.last_pong_at = time.time()
            elif msg.type == WSMsgType.TEXT:
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    log.warning("connection %d sent a non-JSON frame", conn.id)
                    continue
                if isinstance(frame, dict) and "envelope_id" in frame:
                    self._on_ack(conn, frame)

    async def _ping_loop(self, conn: _Connection) -> None:
        while not conn.closed:
            await asyncio.sleep(self.ping_interval_s)
            if conn.frozen or conn.closed:
                continue
            try:
                await conn.ws.ping(b"Ping from applink-sandbox")
                conn.pings_sent += 1
            except Exception:
                return

    async def _close_connection(self, conn: _Connection, *, code: int = 1000, message: bytes = b"",
                                abrupt: bool = False) -> None:
        if conn.closed:
            return
        if abrupt or conn.transport is None:
            if conn.transport is not None:
                conn.transport.abort()
            return
        try:
            await asyncio.wait_for(conn.ws.close(code=code, message=message), 2.0)
        except Exception:
            if conn.transport is not None:
                conn.transport.abort()

    async def _disconnect_all(self, reason: str, grace_s: float) -> None:
        with self._lock:
            targets = [c for c in self._connections.values() if not c.closed and not c.frozen]
        frame = json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-sandbox"}})
        for conn in targets:
            try:
                await conn.ws.send_str(frame)
            except Exception as exc:
                log.info("disconnect frame lost on connection %d: %s", conn.id, exc)

        async def close_later(conn: _Connection) -> None:
            await asyncio.sleep(grace_s)
            await self._close_connection(conn, code=1000, message=reason.encode())

        for conn in targets:
            self._spawn(close_later(conn))

    async def _drop_all(self) -> None:
        with self._lock:
            targets = [c for c in self._connections.values() if not c.closed]
        for conn in targets:
            await self._close_connection(conn, abrupt=True)

    # ------------------------------------------------------------------ internals: HTTP

    async def _apply_fault(self, request: web.Request, method: str) -> web.Response | None:
        fault = self._take_fault(method)
        if fault is None:
            return None
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.drop:
            if request.transport is not None:
                request.transport.abort()
            # aiohttp needs a response object; the transport is already gone so none is sent.
            return web.Response(status=500, reason=_DROPPED)
        if fault.status is None and fault.error is None:
            return None
        status = fault.status or 200
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None and status == 429 else {}
        if status >= 500:
            return web.Response(status=status, content_type="text/html",
                                text=f"<html><body><h1>{status} Server Error</h1></body></html>")
        return web.json_response({"ok": False, "error": fault.error or "internal_error"}, status=status,
                                 headers=headers)

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        headers = {k: v for k, v in request.headers.items()}
        params, files, warnings = await _parse_body(request)
        fault = await self._apply_fault(request, method)
        if fault is not None:
            body = json.loads(fault.text) if fault.content_type == "application/json" and fault.text else None
            self._record_call(method, params, headers, _logged_status(fault), body)
            return fault
        status, body, extra_headers = self._api(method, params, files, headers)
        if warnings and body.get("ok"):
            body["warning"] = ",".join(warnings)
            body.setdefault("response_metadata", {})["warnings"] = warnings
        self._record_call(method, params, headers, status, body)
        return web.json_response(body, status=status, headers=extra_headers)

    def _api(self, method: str, params: dict[str, Any], files: dict[str, bytes],
             headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        auth = headers.get("Authorization", "")
        token = auth[len("Bearer "):].strip() if auth.startswith("Bearer ") else str(params.get("token") or "")
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method", "req_method": method}, {}
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if token not in (self.bot_token, self.app_token):
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        wants_app_token = method == "apps.connections.open"
        if (token == self.app_token) != wants_app_token:
            return 200, {"ok": False, "error": "not_allowed_token_type"}, {}
        with self._changed:
            wait_s = self._rate_limited(method, params)
            if wait_s is not None:
                # ASSUMPTION: Retry-After is the whole seconds until the window lets the call
                # through (Slack documents the header, not how it computes it).
                retry_after = max(1, math.ceil(wait_s))
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
            try:
                result: dict[str, Any] = handler(params, files)
            except _ApiError as exc:
                result = {"ok": False, "error": exc.error, **exc.extra}
            self._changed.notify_all()
        return 200, result, {}

    def _rate_limited(self, method: str, params: dict[str, Any]) -> float | None:
        """Seconds until this call would be accepted, or None: accepted and counted.

        ASSUMPTION: only accepted calls count against a window (a 429 costs nothing), and a
        call that ends in an ok:false error still counts, since it reached the method.
        """
        if not self.enforce_rate_limits:
            return None
        rules: list[tuple[tuple[str, str, int], RateLimit]]
        if method == "chat.postMessage":
            channel = self._channel_key(params.get("channel"))
            rules = [((method, channel, i), r) for i, r in enumerate(POST_MESSAGE_PER_CHANNEL)]
            rules += [((method, "*", i), r) for i, r in enumerate(POST_MESSAGE_PER_WORKSPACE)]
        else:
            rules = [((method, "", i), r) for i, r in enumerate(METHOD_RATE_LIMITS.get(method, ()))]
        now = time.monotonic()
        wait = 0.0
        for key, rule in rules:
            window = rule.window_s * self.rate_window_scale
            hits = self._rate_log.setdefault(key, deque())
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) >= rule.calls:
                wait = max(wait, hits[len(hits) - rule.calls] + window - now)
        if wait > 0:
            return wait
        for key, _rule in rules:
            self._rate_log[key].append(now)
        return None

    def _channel_key(self, value: Any) -> str:
        """The channel a postMessage goes to, by id, without creating anything."""
        if not isinstance(value, str):
            return ""
        name = value.lstrip("#")
        for channel in self._channels.values():
            if channel["id"] == value or channel["name"] == name:
                return str(channel["id"])
        return value

    # -- methods (each returns Slack's JSON body; runs under the lock)

    def _api_api_test(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        return {"ok": True, "args": {k: v for k, v in params.items() if k != "token"}}

    def _api_auth_test(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        return {"ok": True, "url": f"https://{self.team_domain}.slack.com/", "team": "Sandbox",
                "user": self.bot_name, "team_id": self.team_id, "user_id": self.bot_user_id,
                "bot_id": self.bot_id, "is_enterprise_install": False}

    def _api_apps_connections_open(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        ticket = str(uuid.uuid4())
        self._tickets[ticket] = (time.monotonic(), False)
        return {"ok": True, "url": f"ws://{self.host}:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"}

    def _api_chat_postMessage(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        text = _str_or_none(params.get("text"))
        blocks = _parse_blocks(params.get("blocks"))
        if not text and not blocks and not params.get("attachments"):
            raise _ApiError("no_text")
        if text and len(text) > POST_MESSAGE_MAX_CHARS:
            text = text[:POST_MESSAGE_MAX_CHARS]  # Slack truncates really long messages
        ts = self._next_ts()
        message = self._bot_message(text or "", blocks, ts)
        thread_ts = _str_or_none(params.get("thread_ts"))
        if thread_ts:
            message["thread_ts"] = thread_ts
        self._store_message(channel_id, message)
        self._echo(channel_id, message)
        return {"ok": True, "channel": channel_id, "ts": ts, "message": copy.deepcopy(message)}

    def _api_chat_update(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        ts = _str_or_none(params.get("ts"))
        if not ts:
            raise _ApiError("invalid_arguments")
        message = self._find_message(channel_id, ts)
        if message is None:
            raise _ApiError("message_not_found")
        if message.get("bot_id") != self.bot_id:
            raise _ApiError("cant_update_message")
        text = _str_or_none(params.get("text"))
        blocks = _parse_blocks(params.get("blocks"))
        if text is None and blocks is None:
            raise _ApiError("no_text")
        if text and len(text) > UPDATE_MESSAGE_MAX_CHARS:
            raise _ApiError("msg_too_long")
        previous = copy.deepcopy(message)
        if text is not None:
            message["text"] = text
        # Slack: text without blocks removes the blocks, so callers resend blocks every time.
        if blocks is not None:
            message["blocks"] = blocks
        else:
            message.pop("blocks", None)
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        self._echo(channel_id, message, "message_changed", previous)
        return {"ok": True, "channel": channel_id, "ts": ts, "text": message["text"],
                "message": {k: v for k, v in copy.deepcopy(message).items() if k != "ts"}}

    def _api_chat_postEphemeral(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        user = _str_or_none(params.get("user"))
        if not user:
            raise _ApiError("user_not_in_channel")
        text = _str_or_none(params.get("text"))
        blocks = _parse_blocks(params.get("blocks"))
        if not text and not blocks:
            raise _ApiError("no_text")
        ts = self._next_ts()
        self._ephemerals.append({"channel": channel_id, "user": user, "text": text or "", "blocks": blocks,
                                 "ts": ts, "thread_ts": _str_or_none(params.get("thread_ts")),
                                 "source": "chat.postEphemeral"})
        return {"ok": True, "message_ts": ts}

    def _api_chat_delete(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        ts = _str_or_none(params.get("ts")) or ""
        message = self._find_message(channel_id, ts)
        if message is None:
            raise _ApiError("message_not_found")
        if message.get("bot_id") != self.bot_id:
            raise _ApiError("cant_delete_message")
        self._messages[channel_id].remove(message)
        return {"ok": True, "channel": channel_id, "ts": ts}

    def _api_reactions_add(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        ts = _str_or_none(params.get("timestamp")) or ""
        name = _str_or_none(params.get("name"))
        if not name:
            raise _ApiError("invalid_name")
        message = self._find_message(channel_id, ts)
        if message is None:
            raise _ApiError("message_not_found")
        reactions = message.setdefault("reactions", [])
        entry = next((r for r in reactions if r["name"] == name), None)
        if entry is not None and self.bot_user_id in entry["users"]:
            raise _ApiError("already_reacted")
        if entry is None:
            entry = {"name": name, "users": [], "count": 0}
            reactions.append(entry)
        entry["users"].append(self.bot_user_id)
        entry["count"] += 1
        self._reactions.append({"channel": channel_id, "ts": ts, "name": name})
        return {"ok": True}

    def _api_conversations_history(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        limit = _int(params.get("limit"), 100)
        top = [m for m in self._messages.get(channel_id, []) if m.get("thread_ts") in (None, m["ts"])]
        newest_first = list(reversed(top))[:limit]
        return {"ok": True, "messages": copy.deepcopy(newest_first), "has_more": len(top) > limit,
                "pin_count": 0, "response_metadata": {"next_cursor": ""}}

    def _api_conversations_replies(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        ts = _str_or_none(params.get("ts")) or ""
        if self._find_message(channel_id, ts) is None:
            raise _ApiError("thread_not_found")
        limit = _int(params.get("limit"), 1000)
        thread = [m for m in self._messages.get(channel_id, []) if m["ts"] == ts or m.get("thread_ts") == ts]
        return {"ok": True, "messages": copy.deepcopy(thread[:limit]), "has_more": len(thread) > limit,
                "response_metadata": {"next_cursor": ""}}

    def _api_conversations_info(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        channel = self._channels[channel_id]
        return {"ok": True, "channel": {"id": channel_id, "name": channel["name"], "is_im": channel["is_im"],
                                        "is_channel": not channel["is_im"], "is_member": True}}

    def _api_files_getUploadURLExternal(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        filename = _str_or_none(params.get("filename"))
        length = _int(params.get("length"), 0)
        if not filename or length <= 0:
            raise _ApiError("missing_argument" if filename else "invalid_arguments")
        file_id = f"F{secrets.token_hex(5).upper()}"
        key = secrets.token_urlsafe(12)
        self._upload_keys[key] = file_id
        self._files[file_id] = UploadedFile(id=file_id, filename=filename, title=filename, data=b"", channel_id=None,
                                            thread_ts=None, initial_comment=None, completed=False, length=length,
                                            alt_txt=_str_or_none(params.get("alt_txt")))
        return {"ok": True, "upload_url": f"{self.base_url}upload/v1/{key}", "file_id": file_id}

    def _api_files_completeUploadExternal(self, params: dict[str, Any],
                                          files: dict[str, bytes]) -> dict[str, Any]:
        raw = params.get("files")
        try:
            entries = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise _ApiError("invalid_arguments") from None
        if not isinstance(entries, list) or not entries:
            raise _ApiError("invalid_arguments")
        chosen: list[tuple[UploadedFile, dict[str, Any]]] = []
        for entry in entries:
            upload = self._files.get(str(entry.get("id"))) if isinstance(entry, dict) else None
            # Slack discards uploads never filled, and completes a file only once.
            # ASSUMPTION: both are answered file_not_found.
            if upload is None or not upload.uploaded or upload.completed:
                raise _ApiError("file_not_found")
            chosen.append((upload, entry))
        channel_value = params.get("channel_id") or (str(params.get("channels") or "").split(",")[0] or None)
        channel_id = None
        if channel_value:
            channel_id = self._resolve_channel(channel_value)
            if channel_id is None:
                raise _ApiError("channel_not_found")
        thread_ts = _str_or_none(params.get("thread_ts"))
        comment = _str_or_none(params.get("initial_comment"))
        for upload, entry in chosen:
            upload.completed = True
            upload.title = str(entry.get("title") or upload.filename)
            upload.channel_id, upload.thread_ts, upload.initial_comment = channel_id, thread_ts, comment
        if channel_id is not None:
            # Shared as one message from the bot, in the thread when thread_ts is given.
            ts = self._next_ts()
            message = self._bot_message(comment or "", None, ts)
            message["files"] = [self._file_object(u) for u, _ in chosen]
            message["upload"] = True
            if thread_ts:
                message["thread_ts"] = thread_ts
            for upload, _ in chosen:
                upload.message_ts = ts
            self._store_message(channel_id, message)
            self._echo(channel_id, message, "file_share")
        # Like Slack: no message ts in the answer (shares happen asynchronously).
        return {"ok": True, "files": [{"id": u.id, "title": u.title} for u, _ in chosen]}

    def _api_files_info(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        upload = self._files.get(str(params.get("file")))
        if upload is None or not upload.completed:
            raise _ApiError("file_not_found")
        return {"ok": True, "file": self._file_object(upload)}

    def _file_object(self, upload: UploadedFile) -> dict[str, Any]:
        mimetype = mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
        obj: dict[str, Any] = {"id": upload.id, "name": upload.filename, "title": upload.title,
                               "mimetype": mimetype, "filetype": Path(upload.filename).suffix.lstrip("."),
                               "size": len(upload.data), "user": self.bot_user_id,
                               "url_private": f"{self.base_url}files-pri/{upload.id}/{upload.filename}",
                               "shares": {}}
        if upload.channel_id and upload.message_ts:
            kind = "private" if self._channels.get(upload.channel_id, {}).get("is_im") else "public"
            share: dict[str, Any] = {"ts": upload.message_ts}
            if upload.thread_ts:
                share["thread_ts"] = upload.thread_ts
            obj["shares"] = {kind: {upload.channel_id: [share]}}
        return obj

    def _require_channel(self, params: dict[str, Any]) -> str:
        value = params.get("channel")
        if not value:
            raise _ApiError("channel_not_found")
        channel_id = self._resolve_channel(value)
        if channel_id is None:
            raise _ApiError("channel_not_found")
        return channel_id

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        headers = {k: v for k, v in request.headers.items()}
        if request.content_type == "multipart/form-data":
            form = await request.post()
            part = next((v for v in form.values() if hasattr(v, "file")), None)
            data = part.file.read() if part is not None else b""
        else:
            data = await request.read()
        fault = await self._apply_fault(request, "upload")
        if fault is not None:
            self._record_call("upload", {"key": key, "length": len(data)}, headers, _logged_status(fault), None)
            return fault
        with self._changed:
            file_id = self._upload_keys.get(key)
            upload = self._files.get(file_id or "")
            if upload is None or upload.completed:
                status, text = 404, "not found"
            elif len(data) != upload.length:
                status, text = 400, f"length mismatch: announced {upload.length}, received {len(data)}"
            else:
                upload.data, upload.uploaded = data, True
                status, text = 200, f"OK - {len(data)}"
        self._record_call("upload", {"file_id": file_id, "length": len(data)}, headers, status, None)
        return web.Response(status=status, text=text, content_type="text/plain")

    async def _handle_response_url(self, request: web.Request) -> web.StreamResponse:
        secret = request.match_info["secret"]
        try:
            if request.content_type == "application/json":
                body = await request.json()
            else:
                form = await request.post()
                body = json.loads(str(form.get("payload", "{}")))
        except ValueError:
            return web.Response(status=400, text="invalid_payload", content_type="text/plain")
        fault = await self._apply_fault(request, "response_url")
        if fault is not None:
            return fault
        blocks_error = ""
        try:
            _parse_blocks(body.get("blocks") if isinstance(body, dict) else None)
        except _ApiError as exc:
            blocks_error = exc.error
        with self._changed:
            rurl = self._response_urls.get(secret)
            if blocks_error:
                # ASSUMPTION: a response_url answers a bad payload with a 400 and the error
                # name as text/plain (Slack documents the limits, not this answer).
                status, text = 400, blocks_error
            # ASSUMPTION: the status and body of an unknown, expired (30 min) or used-up
            # (5 uses) response_url; Slack documents the limits, not the answer.
            elif rurl is None:
                status, text = 404, "no_service"
            elif time.monotonic() - rurl.created_at > RESPONSE_URL_TTL_S:
                status, text = 404, "expired_url"
            elif rurl.uses >= RESPONSE_URL_MAX_USES:
                status, text = 404, "used_url"
            else:
                rurl.uses += 1
                status, text = 200, "ok"
                self._apply_response_url(rurl, body if isinstance(body, dict) else {})
            self._response_url_posts.append({"url": str(request.url), "body": body, "status": status,
                                             "use": rurl.uses if rurl else 0, "at": time.time()})
            self._changed.notify_all()
        return web.Response(status=status, text=text, content_type="text/plain")

    def _apply_response_url(self, rurl: _ResponseUrl, body: dict[str, Any]) -> None:
        text = str(body.get("text", ""))
        blocks = _parse_blocks(body.get("blocks"))
        original = self._find_message(rurl.channel_id, rurl.message_ts) if rurl.message_ts else None
        if body.get("delete_original") and original is not None and original.get("bot_id") == self.bot_id:
            self._messages[rurl.channel_id].remove(original)
            return
        if body.get("replace_original") and original is not None and original.get("bot_id") == self.bot_id:
            original["text"] = text
            if blocks is not None:
                original["blocks"] = blocks
            else:
                original.pop("blocks", None)
            return
        if body.get("response_type") == "in_channel":
            message = self._bot_message(text, blocks, self._next_ts())
            if body.get("thread_ts"):
                message["thread_ts"] = str(body["thread_ts"])
            self._store_message(rurl.channel_id, message)
        else:
            self._ephemerals.append({"channel": rurl.channel_id, "user": rurl.user_id, "text": text,
                                     "blocks": blocks, "ts": self._next_ts(), "source": "response_url"})

    async def _handle_private_file(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization", "") != f"Bearer {self.bot_token}":
            return web.Response(status=403, text="forbidden")
        return self._file_response(request.match_info["file_id"])

    def _file_response(self, file_id: str) -> web.StreamResponse:
        with self._lock:
            upload = self._files.get(file_id)
        if upload is None or not upload.uploaded:
            return web.Response(status=404, text="file not found")
        mimetype = mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
        return web.Response(body=upload.data, content_type=mimetype)

    # ------------------------------------------------------------------ the sandbox web page

    async def _handle_health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True, "connections": self.connection_count})

    async def _handle_index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    async def _handle_sandbox_file(self, request: web.Request) -> web.StreamResponse:
        return self._file_response(request.match_info["file_id"])

    def sandbox_state(self) -> dict[str, Any]:
        """What the web page shows: channels with threaded messages, ephemerals, connection info."""
        with self._lock:
            channels = []
            for channel in self._channels.values():
                messages = copy.deepcopy(self._messages.get(channel["id"], []))
                for message in messages:
                    for f in message.get("files", []):
                        f["sandbox_url"] = f"/sandbox/files/{f['id']}"
                channels.append({**channel, "messages": messages})
            return {"team": {"id": self.team_id, "domain": self.team_domain},
                    "bot": {"user_id": self.bot_user_id, "bot_id": self.bot_id, "name": self.bot_name},
                    "channels": channels, "ephemerals": copy.deepcopy(self._ephemerals),
                    "connections": sum(1 for c in self._connections.values() if not c.closed)}

    async def _handle_state(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.sandbox_state())

    async def _handle_sandbox_command(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"ok": False, "error": "invalid_json"}, status=400)
        channel_id = str(body.get("channel_id") or "C0GENERAL")
        user_id = str(body.get("user_id") or "U0SANDUSER")
        click = body.get("click")
        if isinstance(click, dict):
            try:
                envelope_id = self.click_button(str(click.get("channel_id") or channel_id),
                                                str(click.get("message_ts")), str(click.get("action_id")),
                                                user_id=user_id)
            except KeyError as exc:
                return web.json_response({"ok": False, "error": str(exc)}, status=404)
            return web.json_response({"ok": True, "envelope_id": envelope_id})
        text = str(body.get("text", "")).strip()
        thread_ts = body.get("thread_ts") or None
        if not text:
            return web.json_response({"ok": False, "error": "no_text"}, status=400)
        # Display name of the bot, typed as "@blender", becomes a real mention like Slack's composer.
        text = text.replace(f"@{self.bot_name}", f"<@{self.bot_user_id}>")
        if text.startswith("/") and not thread_ts:
            command, _, rest = text.partition(" ")
            envelope_id = self.send_slash_command(command, rest.strip(), user_id=user_id, channel_id=channel_id,
                                                  user_name=str(body.get("user_name") or "sandbox-user"))
            return web.json_response({"ok": True, "envelope_id": envelope_id})
        ts = self.post_user_message(channel_id, user_id, text, thread_ts=thread_ts)
        return web.json_response({"ok": True, "ts": ts})


_DROPPED = "Dropped"


def _logged_status(response: web.Response) -> int:
    """Status for the call log: 0 when the connection was dropped without an answer."""
    return 0 if response.reason == _DROPPED else response.status


class _ApiError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra  # more fields of the JSON answer (invalid_blocks: errors, response_metadata)


async def _parse_body(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes], list[str]]:
    """Slack accepts query args, form, JSON and multipart bodies for every method."""
    params: dict[str, Any] = dict(request.query)
    files: dict[str, bytes] = {}
    warnings: list[str] = []
    if request.method != "POST" or not request.can_read_body:
        return params, files, warnings
    ctype = request.content_type
    if ctype == "application/json":
        if request.charset is None:
            warnings.append("missing_charset")
        try:
            body = await request.json()
        except ValueError:
            body = {}
        if isinstance(body, dict):
            params.update(body)
    elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for key, value in form.items():
            if hasattr(value, "file"):
                files[key] = value.file.read()
            else:
                params[key] = value
    return params, files, warnings


def _parse_blocks(value: Any) -> list[Any] | None:
    """The message's blocks, or _ApiError exactly as Slack refuses them."""
    if value is None or value == "":
        return None
    if isinstance(value, str):  # form bodies carry blocks as a JSON string
        try:
            value = json.loads(value)
        except ValueError:
            raise _ApiError("invalid_blocks_format") from None
    if not isinstance(value, list):
        raise _ApiError("invalid_blocks_format")
    errors = block_kit_errors(value)
    if errors:
        raise _ApiError("invalid_blocks", errors=errors,
                        response_metadata={"messages": [f"[ERROR] {e}" for e in errors]})
    return value


def block_kit_errors(blocks: list[Any]) -> list[str]:
    """What Slack finds wrong with a message's blocks, worded as Slack words it: a problem
    followed by a JSON pointer into the request, e.g.
    "must be less than 3001 characters [json-pointer:/blocks/0/text/text]". The length and
    item-count sentences are Slack's as seen in real answers. ASSUMPTION: the sentences for
    a wrongly shaped block or text object ("failed to match all allowed schemas") and an
    unknown type ("unsupported type: ...") were not seen from Slack itself.

    The documented message and block limits are checked here; every block then goes through
    slack_sdk's own models (`Block.parse` and the validators `to_dict()` runs on the block and
    everything nested in it), which know each block type's fields and limits.
    """
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        at = f"/blocks/{i}"
        if not isinstance(block, dict):
            errors.append(f"failed to match all allowed schemas [json-pointer:{at}]")
            continue
        found = _documented_block_errors(block, at)
        block_id = block.get("block_id")
        if isinstance(block_id, str):
            if block_id in seen_ids:
                # ASSUMPTION: Slack's wording; block_id must be unique within a message.
                found.append(f"duplicate block_id [json-pointer:{at}/block_id]")
            seen_ids.add(block_id)
        errors.extend(found or _sdk_block_errors(block, at))
    return errors


def _documented_block_errors(block: dict[str, Any], at: str) -> list[str]:
    errors: list[str] = []
    kind = block.get("type")
    block_id = block.get("block_id")
    if isinstance(block_id, str) and len(block_id) > BLOCK_ID_MAX:
        errors.append(f"must be less than {BLOCK_ID_MAX + 1} characters [json-pointer:{at}/block_id]")
    if kind == "section":
        if block.get("text") is not None:
            errors.extend(_text_object_errors(block["text"], f"{at}/text", SECTION_TEXT_MAX))
        fields = block.get("fields")
        if isinstance(fields, list):
            if len(fields) > SECTION_FIELDS_MAX:
                errors.append(f"no more than {SECTION_FIELDS_MAX} items allowed [json-pointer:{at}/fields]")
            for j, item in enumerate(fields):
                errors.extend(_text_object_errors(item, f"{at}/fields/{j}", SECTION_FIELD_TEXT_MAX))
    elif kind == "header":
        errors.extend(_text_object_errors(block.get("text"), f"{at}/text", HEADER_TEXT_MAX, plain_only=True))
    elif kind in ("context", "actions"):
        most = CONTEXT_ELEMENTS_MAX if kind == "context" else ACTIONS_ELEMENTS_MAX
        elements = block.get("elements")
        if isinstance(elements, list) and len(elements) > most:
            errors.append(f"no more than {most} items allowed [json-pointer:{at}/elements]")
    return errors


def _text_object_errors(obj: Any, at: str, most: int, *, plain_only: bool = False) -> list[str]:
    kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(obj, dict) or obj.get("type") not in kinds or not isinstance(obj.get("text"), str):
        return [f"failed to match all allowed schemas [json-pointer:{at}]"]
    length = len(obj["text"])
    if length > most:
        return [f"must be less than {most + 1} characters [json-pointer:{at}/text]"]
    if length == 0:
        # ASSUMPTION: Slack's wording for the documented minimum length of 1.
        return [f"must be more than 0 characters [json-pointer:{at}/text]"]
    return []


def _sdk_block_errors(block: dict[str, Any], at: str) -> list[str]:
    try:
        parsed = Block.parse(block)
    except Exception:  # the SDK's constructors choke on wrongly typed fields
        return [f"failed to match all allowed schemas [json-pointer:{at}]"]
    if parsed is None:
        return [f"unsupported type: {block.get('type')} [json-pointer:{at}/type]"]
    try:
        parsed.to_dict()  # runs the validators of the block and of every object inside it
    except SlackObjectFormationError as exc:
        # ASSUMPTION: Slack words these problems its own way; the SDK's sentence is kept.
        return [f"{exc} [json-pointer:{at}]"]
    except Exception:
        return [f"failed to match all allowed schemas [json-pointer:{at}]"]
    return []


def _find_action(blocks: list[Any], action_id: str) -> dict[str, Any] | None:
    for block in blocks:
        candidates = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            candidates.append(block["accessory"])
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return dict(element, _block_id=block.get("block_id", ""))
    return None


def _rich_text_block(text: str) -> dict[str, Any]:
    return {"type": "rich_text", "block_id": secrets.token_hex(2),
            "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}]}


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
