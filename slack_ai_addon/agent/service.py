"""The Slack agent: one Socket Mode connection, acks first, jobs into the store.

`AgentService(deps)` is what the Blender UI, `serve`, `command` and `sandbox` drive; `deps`
is the node's `AgentDeps` (or the runtime, which hands them over: `runtime.agent_deps()`):

    agent = AgentService(runtime)
    agent.start()            # returns at once; auth.test + connect run on a starter thread
    agent.status()           # AgentStatus(state="connected", ...)
    agent.stop(timeout=10)   # close() runs on its own thread (it can take ~10 s)

Threads (none of them touches bpy):
- slack_sdk's runner, message processor and worker pool: every envelope is acked by the
  first line of our listener, then routed; routing only enqueues.
- the agent's I/O pool: replies, uploads, intent classification, store lookups.
- the update pacer and the liveness watchdog.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.socket_mode.websocket_client import SocketModeClient

from ..core.config import Settings, user_data_dir
from ..core.jobs import Job, JobStatus
from ..storage.db.budget import SlackBudget
from . import blocks as bk
from .dedupe import DedupeStore
from .deps import AgentDeps, ProvidesAgentDeps
from .pacing import retrying_web_client
from .replies import SerialLanes, SlackOutbox, SlackReplier
from .router import AgentRouter, BotIdentity, keyword_intent
from .watchdog import ConnectionWatchdog

log = logging.getLogger(__name__)

class AgentState(StrEnum):
    """The connection's state. A StrEnum: it compares equal to, and prints as, its plain string."""

    OFFLINE = "offline"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    ERROR = "error"
_ENVELOPE_ID = re.compile(r'"envelope_id"\s*:\s*"([^"]+)"')
# Loggers that report our own deliberate socket shutdown in stop() as errors.
_NOISY_ON_CLOSE = ("slack_sdk.socket_mode.websocket_client", "websocket")


def parse_frame(raw: Any) -> tuple[str, dict[str, Any]]:
    """(envelope id, parsed frame) of a Socket Mode text frame; ("", ...) when there is
    nothing to ack (hello, disconnect). Never raises: a frame that does not parse (not
    JSON, nested past the decoder's recursion limit, not an object) still yields the
    envelope id the regex finds, so it is acked and Slack does not redeliver it forever."""
    if not isinstance(raw, str) or '"envelope_id"' not in raw:
        return "", {}
    message: Any = None
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        pass
    if isinstance(message, dict):
        envelope_id = message.get("envelope_id")
        if isinstance(envelope_id, str) and envelope_id:
            return envelope_id, message
    match = _ENVELOPE_ID.search(raw)
    return (match.group(1) if match else ""), {}


def _control_frame(raw: Any) -> dict[str, Any]:
    """A small frame without an envelope (hello, disconnect) parsed; {} for anything else."""
    if not isinstance(raw, str) or len(raw) > 4096 or '"type"' not in raw:
        return {}
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return frame if isinstance(frame, dict) else {}


class _DropWhileClosing(logging.Filter):
    """Hides "connection lost" errors caused by stop() itself (it shuts the socket down)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


class AgentConfigError(ValueError):
    """Missing or malformed tokens: a message for the user, never containing the tokens."""


def check_tokens(settings: Settings) -> list[str]:
    """Problems with the Slack credentials, as sentences (empty when they look right): the bot
    token, and the app token for Socket Mode or the signing secret for HTTP events mode."""
    problems = []
    bot, app = settings.slack_bot_token.strip(), settings.slack_app_token.strip()
    if not bot:
        problems.append("SLACK_BOT_TOKEN is not set (the bot token, xoxb-..., from OAuth & Permissions)")
    elif not bot.startswith("xoxb-"):
        problems.append("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
    if settings.events_http:
        if not settings.slack_signing_secret.strip():
            problems.append("SLACK_SIGNING_SECRET is not set: HTTP events mode (--events-http) verifies every "
                            "request with it (Basic Information > App Credentials > Signing Secret)")
    elif not app:
        problems.append("SLACK_APP_TOKEN is not set (the app-level token, xapp-..., with connections:write)")
    elif not app.startswith("xapp-"):
        problems.append("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
    return problems


@dataclass
class AgentStatus:
    state: AgentState
    detail: str = ""
    connected_since: float | None = None
    last_frame_at: float | None = None
    envelopes_seen: int = 0
    jobs_submitted: int = 0
    reconnects: int = 0
    bot_user_id: str = ""
    team_id: str = ""


class AgentService:
    """The Slack Socket Mode agent of one node (see module docstring)."""

    def __init__(self, node: AgentDeps | ProvidesAgentDeps, *, settings: Settings | None = None,
                 ping_interval_s: float = 5.0, stale_after_s: float = 12.0, update_interval_s: float = 3.0,
                 post_interval_s: float = 1.0, state_path: str | Path | None = None, io_workers: int = 8,
                 concurrency: int = 10) -> None:
        # The agent sees the node only through these (never the runtime or the dispatcher).
        self.deps = node if isinstance(node, AgentDeps) else node.agent_deps()
        self.settings = settings or self.deps.settings
        self.ping_interval_s = ping_interval_s
        self.stale_after_s = stale_after_s
        self.update_interval_s = update_interval_s
        self.post_interval_s = post_interval_s
        self.state_path = Path(state_path) if state_path else user_data_dir() / "agent_state.db"
        self.io_workers = io_workers
        self.concurrency = concurrency
        self.identity = BotIdentity()
        self._state = AgentState.OFFLINE
        self._detail = ""
        self._connected_since: float | None = None
        self._session_opened_at = 0.0
        self._last_frame_at = 0.0
        self._envelopes = 0
        self._jobs = 0
        self._opens = 0
        self._started_at = 0.0
        self._lock = threading.Lock()
        self._client: SocketModeClient | None = None
        self._watchdog: ConnectionWatchdog | None = None
        self._io: ThreadPoolExecutor | None = None
        self._dedupe: DedupeStore | None = None
        self.outbox: SlackOutbox | None = None
        self.replier: SlackReplier | None = None
        self.router: AgentRouter | None = None
        self._stopping = threading.Event()
        self._starter: threading.Thread | None = None
        self._classifier: Any = None
        self._sessions: weakref.WeakSet[Any] = weakref.WeakSet()  # every WebSocketApp opened, for stop()
        self._raw_sockets: list[socket.socket] = []
        self._events_http: Any = None  # the EventsHttpServer in HTTP events mode
        self._hello_seen = False  # on the current session
        # Called with (envelope type, seconds from the frame's arrival to the ack sent): /metrics.
        self.ack_observers: list[Callable[[str, float], None]] = []
        # Set when Slack refused this app's connection for good (too_many_websockets on a
        # connection that never got its hello): `refusal` says why, and the agent has stopped.
        self.refused = threading.Event()
        self.refusal = ""

    # ------------------------------------------------------------------ public API
    def start(self) -> None:
        """Begin connecting; returns at once. Raises AgentConfigError for bad tokens."""
        problems = check_tokens(self.settings)
        if problems:
            self._set_state(AgentState.ERROR, "; ".join(problems))
            raise AgentConfigError("; ".join(problems))
        with self._lock:
            if self._starter is not None or self._client is not None:
                return  # one client per agent: leaked clients hit Slack's 10-connection cap
            self._stopping.clear()
            self._state, self._detail = AgentState.CONNECTING, "checking the bot token (auth.test)"
            self._started_at = time.time()
            # Daemon: auth.test against a hung network must not keep Blender from quitting.
            self._starter = threading.Thread(target=self._start_blocking, name="slackai-agent-start", daemon=True)
            self._starter.start()

    def wait_until_connected(self, timeout: float = 15.0) -> bool:
        """Block until the socket is open (or the start failed); True when connected."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self._state
            if state is AgentState.CONNECTED:
                return True
            if state in ("error", "offline") or self.refused.is_set():
                return False
            time.sleep(0.02)
        return False

    def status(self) -> AgentStatus:
        with self._lock:
            return AgentStatus(state=self._state, detail=self._detail, connected_since=self._connected_since,
                               last_frame_at=self._last_frame_at or None, envelopes_seen=self._envelopes,
                               jobs_submitted=self._jobs, reconnects=max(0, self._opens - 1),
                               bot_user_id=self.identity.user_id, team_id=self.identity.team_id)

    def stop(self, timeout: float = 10.0) -> bool:
        """Disconnect and stop every agent thread. `close()` runs on a helper thread (it can
        block up to ~10 s in websocket-client); this waits at most `timeout` for it, so the
        Blender UI can pass 0 and never stall. True when everything has stopped."""
        self._stopping.set()
        starter = self._starter
        if starter is not None and starter is not threading.current_thread():
            starter.join(min(timeout, 5.0))
        with self._lock:
            client, self._client = self._client, None
            watchdog, self._watchdog = self._watchdog, None
            io, self._io = self._io, None
            dedupe, self._dedupe = self._dedupe, None
            replier = self.replier
            self._starter = None
            events_http, self._events_http = self._events_http, None
        if events_http is not None:
            events_http.stop()
        if watchdog is not None:
            watchdog.stop()
        if replier is not None:
            self.deps.remove_listener(replier)
        outbox = self.outbox
        closer = threading.Thread(target=self._close_all,
                                  args=(client, io, dedupe, outbox, self._sessions, self._raw_sockets),
                                  name="slackai-agent-close", daemon=True)
        closer.start()
        closer.join(timeout)
        self._set_state(AgentState.OFFLINE, "stopped")
        with self._lock:
            self._connected_since = None
        return not closer.is_alive()

    # ------------------------------------------------------------------ start/stop internals
    def _start_blocking(self) -> None:
        try:
            web = retrying_web_client(self.settings.slack_bot_token, self.settings.slack_api_url)
            try:
                auth = web.auth_test()
            except SlackApiError as exc:
                error = exc.response.get("error", "") if exc.response is not None else ""
                self._set_state(AgentState.ERROR, f"auth.test failed: {error or exc.response.status_code}")
                return
            except Exception as exc:
                self._set_state(AgentState.ERROR, f"cannot reach Slack at {self.settings.slack_api_url}: "
                                         f"{type(exc).__name__}")
                return
            self.identity = BotIdentity(user_id=str(auth.get("user_id", "")), bot_id=str(auth.get("bot_id", "")),
                                        team_id=str(auth.get("team_id", "")))
            if self._stopping.is_set():
                return
            self._build(web)
            if self.settings.events_http:
                self._listen_http()
                return
            client = SocketModeClient(app_token=self.settings.slack_app_token, web_client=web,
                                      ping_interval=self.ping_interval_s, concurrency=self.concurrency,
                                      auto_reconnect_enabled=True, trace_enabled=False,
                                      on_open_listeners=[self._on_open], on_message_listeners=[self._on_raw],
                                      on_close_listeners=[self._on_close], on_error_listeners=[self._on_error])
            client.message_listeners.append(self._on_frame)
            with self._lock:
                self._client = client
                self._detail = "opening the Socket Mode connection"
            client.connect()  # never start(): that blocks forever
            self._watchdog = ConnectionWatchdog(last_alive=self._last_alive, reconnect=self._force_reconnect,
                                                stale_after_s=self.stale_after_s,
                                                check_every_s=min(1.0, self.stale_after_s / 4))
            self._watchdog.start()
        except SlackApiError as exc:
            error = exc.response.get("error", "") if exc.response is not None else ""
            self._set_state(AgentState.ERROR, f"apps.connections.open failed: {error}")
        except BaseException as exc:  # the UI must hear about it through status()
            log.exception("agent start failed")
            self._set_state(AgentState.ERROR, f"start failed: {type(exc).__name__}: {exc}")

    def _build(self, web: WebClient) -> None:
        store = self.deps.store
        self._io = ThreadPoolExecutor(max_workers=self.io_workers, thread_name_prefix="slackai-agent")
        self._dedupe = DedupeStore(self.state_path)
        self.outbox = SlackOutbox(web, post_interval_s=self.post_interval_s, update_interval_s=self.update_interval_s,
                                  executor=self._io, recorder=store,
                                  budget=SlackBudget.for_node(self.settings, store))
        self.replier = SlackReplier(self.outbox, store, SerialLanes(self._io), dedupe=self._dedupe,
                                    node_id=self.deps.node_id)
        self.router = AgentRouter(submit=self.deps.submit, store=store, settings=self.settings, replier=self.replier,
                                  outbox=self.outbox, dedupe=self._dedupe, io=self._io, identity=self.identity,
                                  classify=self._classify, status_text=self.status_text,
                                  cancel_local=self._cancel_local, on_submit=self._count_job,
                                  cost_policy=self.deps.cost_policy)
        self.deps.add_listener(self.replier)

    @staticmethod
    def _close_all(client: SocketModeClient | None, io: ThreadPoolExecutor | None, dedupe: DedupeStore | None,
                   outbox: SlackOutbox | None, sessions: weakref.WeakSet[Any], raws: list[socket.socket]) -> None:
        started = time.monotonic()
        quiet = _DropWhileClosing()
        for name in _NOISY_ON_CLOSE:
            logging.getLogger(name).addFilter(quiet)
        if client is not None:
            AgentService._shutdown_sockets(client, sessions, raws)
            # default_... too: connect() resets auto_reconnect_enabled from it, and a reconnect
            # racing with stop() would otherwise open a fresh session after the close.
            client.default_auto_reconnect_enabled = False
            client.auto_reconnect_enabled = False
            client.closed = True
            done = threading.Event()
            nudger = threading.Thread(target=AgentService._nudge_sockets, args=(client, sessions, raws, done),
                                      name="slackai-agent-close-nudge", daemon=True)
            nudger.start()
            try:
                # client.close(), step by step, timed: which part is slow is worth knowing.
                steps = [("disconnect", client.disconnect),
                         ("runner", client.current_session_runner.shutdown),
                         ("monitor", client.current_app_monitor.shutdown),
                         ("wake processor", lambda: client.message_queue.put(None)),  # ends its 1 s get()
                         ("processor", client.message_processor.shutdown),
                         ("workers", client.message_workers.shutdown)]
                for name, step in steps:
                    t = time.monotonic()
                    try:
                        step()
                    except Exception:
                        log.warning("closing the Socket Mode client (%s) failed", name, exc_info=True)
                    took = time.monotonic() - t
                    (log.warning if took > 2 else log.debug)("close step %s took %.2fs", name, took)
            finally:
                done.set()
        closed_at = time.monotonic()
        if outbox is not None:
            outbox.updates.stop()
        if io is not None:
            io.shutdown(wait=True, cancel_futures=False)
        if dedupe is not None:
            dedupe.close()
        for name in _NOISY_ON_CLOSE:
            logging.getLogger(name).removeFilter(quiet)
        log.info("agent stopped: socket closed in %.2fs, replies drained in %.2fs", closed_at - started,
                 time.monotonic() - closed_at)

    @staticmethod
    def _shutdown_sockets(client: SocketModeClient, sessions: weakref.WeakSet[Any], raws: list[socket.socket]) -> None:
        """shutdown() (not close()) every TCP socket of this client.

        websocket-client's runner waits in an epoll select() with a 10 s timeout, and a socket
        *closed* under it never wakes it (closing drops the fd from epoll silently; its own
        close() skips the shutdown on some error paths), so close() took up to 10 s
        (docs/SLACK_RULES.md, "Socket Mode connections"). shutdown() makes the fd readable (EOF) at once.
        """
        found = list(raws)
        for session in [client.current_session, *list(sessions)]:
            raw = getattr(getattr(session, "sock", None), "sock", None)
            if raw is not None:
                found.append(raw)
        for raw in found:
            try:
                raw.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass

    @staticmethod
    def _nudge_sockets(client: SocketModeClient, sessions: weakref.WeakSet[Any], raws: list[socket.socket],
                       done: threading.Event) -> None:
        """Repeat the shutdown while close() runs: a session opened by a reconnect racing
        with stop() can appear meanwhile."""
        while not done.wait(0.05):
            AgentService._shutdown_sockets(client, sessions, raws)

    def _listen_http(self) -> None:
        """HTTP events mode (agent/events_http.py): Slack's signed requests, acked by the
        listener and routed like Socket Mode envelopes; no websocket, no watchdog."""
        from .events_http import EventsHttpServer

        assert self.router is not None and self._dedupe is not None
        router = self.router
        try:
            server = EventsHttpServer(self.settings.events_http, signing_secret=self.settings.slack_signing_secret,
                                      seen=self._dedupe, ack=router.ack_payload, route=router.dispatch,
                                      on_request=self._count_envelope).start()
        except (OSError, ValueError) as exc:
            self._set_state(AgentState.ERROR, f"cannot listen on {self.settings.events_http}: {exc}")
            return
        with self._lock:
            self._events_http = server
        self._set_state(AgentState.CONNECTED, f"listening for Slack's signed requests on {server.url}")

    @property
    def events_http_url(self) -> str:
        """Where Slack's request URLs must point in HTTP events mode ("" when not listening)."""
        server = self._events_http
        return str(server.url) if server is not None else ""

    def _count_envelope(self) -> None:
        with self._lock:
            self._envelopes += 1
            self._last_frame_at = time.time()

    # ------------------------------------------------------------------ socket callbacks
    def _on_open(self, ws: Any) -> None:
        now = time.time()
        client = self._client
        if client is not None and ws is not client.current_session:
            log.warning("a replaced Socket Mode session opened (slack_sdk start-up race)")
        raw = getattr(getattr(ws, "sock", None), "sock", None)
        with self._lock:
            self._sessions.add(ws)
            # The raw TCP sockets, kept apart from the session: websocket-client drops its
            # reference (sock = None) before closing, and stop() must shut them down first.
            self._raw_sockets = [r for r in self._raw_sockets if r.fileno() != -1]
            if raw is not None:
                self._raw_sockets.append(raw)
            self._opens += 1
            self._hello_seen = False
            self._session_opened_at = now
            self._last_frame_at = now
            if not self._stopping.is_set():
                self._state, self._detail = AgentState.CONNECTED, "Socket Mode connection open"
                self._connected_since = now

    def _on_close(self, ws: Any) -> None:
        if self._stopping.is_set():
            return
        with self._lock:
            if self._client is not None and ws is self._client.current_session:
                self._state, self._detail = AgentState.RECONNECTING, "connection closed; reconnecting"
                self._connected_since = None

    def _on_error(self, ws: Any, error: Exception) -> None:
        with self._lock:
            self._detail = f"connection error: {type(error).__name__}"

    def _on_raw(self, ws: Any, raw: str) -> None:
        """Every inbound text frame, on the websocket runner thread, before slack_sdk queues
        it for its worker pool. The ack goes out from here: in a burst the pool is busy
        routing earlier envelopes, and an ack waiting behind them would miss Slack's 3 s.
        Never raises: an exception here would land in websocket-client's error handler."""
        try:
            received = time.perf_counter()
            self._last_frame_at = time.time()
            envelope_id, message = parse_frame(raw)
            if envelope_id:
                self._ack(envelope_id, message)
                envelope_type = message.get("type")
                for observe in self.ack_observers:
                    observe(envelope_type if isinstance(envelope_type, str) else "", time.perf_counter() - received)
            else:
                control = _control_frame(raw)
                if control.get("type") == "hello":
                    self._hello_seen = True
                elif control.get("type") == "disconnect" and control.get("reason") == "too_many_websockets":
                    self._on_too_many_websockets(control)
        except Exception:
            log.exception("handling an inbound frame failed")

    def _on_too_many_websockets(self, message: dict[str, Any]) -> None:
        """Slack allows 10 Socket Mode connections per app. A connection refused before its
        hello is one too many: reconnecting would only be refused again (slack_sdk reconnects
        on every disconnect, whatever the reason), so the agent stops and says why. On a
        connection that had its hello, it is a reconnect storm: slack_sdk reconnects."""
        count = message.get("num_connections")
        if self._hello_seen:
            log.warning("Slack sent too_many_websockets on an open connection (%s open); reconnecting", count)
            return
        self.refusal = (f"Slack refused the Socket Mode connection: too_many_websockets ({count} connections "
                        "already open; Slack allows 10 per app). Stop another listener, or run this node "
                        "with --role worker")
        log.error("%s", self.refusal)
        if self.refused.is_set():
            return
        self.refused.set()

        def stop_for_good() -> None:
            self.stop(10)
            self._set_state(AgentState.ERROR, self.refusal)
        threading.Thread(target=stop_for_good, name="slackai-agent-refused", daemon=True).start()

    def _ack(self, envelope_id: str, message: dict[str, Any]) -> None:
        ack = None
        router = self.router
        if router is not None and message.get("accepts_response_payload") is True:
            envelope_type = message.get("type")
            ack = router.ack_payload(envelope_type if isinstance(envelope_type, str) else "", message.get("payload"))
        client = self._client
        try:
            if client is not None:
                client.send_socket_mode_response(SocketModeResponse(envelope_id=envelope_id, payload=ack))
        except Exception:
            log.exception("ack failed for envelope %s", envelope_id)

    def _on_frame(self, client: Any, message: dict[str, Any], raw: str | None = None) -> None:
        """Every parsed frame, on slack_sdk's worker pool, after `_on_raw` acked it: route."""
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        if not isinstance(envelope_id, str) or not envelope_id:
            if isinstance(message, dict) and message.get("type") == "hello":
                self._set_state(AgentState.CONNECTED, "Socket Mode connection open")
            return
        envelope_type = message.get("type")
        with self._lock:
            self._envelopes += 1
        router = self.router
        if router is not None:
            router.dispatch(envelope_type if isinstance(envelope_type, str) else "", message.get("payload"),
                            envelope_id)

    # ------------------------------------------------------------------ watchdog
    def _last_alive(self) -> float:
        client = self._client
        if client is None or self._stopping.is_set():
            return 0.0
        session = client.current_session
        pong = float(getattr(session, "last_pong_tm", 0.0) or 0.0)
        return max(self._last_frame_at, self._session_opened_at, pong)

    def _force_reconnect(self) -> None:
        client = self._client
        if client is None or self._stopping.is_set():
            return
        self._set_state(AgentState.RECONNECTING, "connection silent; reconnecting")
        opened_before = self._session_opened_at
        # First shut the silent socket down: websocket-client's runner then sees EOF at once and
        # its on_close reconnects (about 0.5 s). A forced reconnect alone closes the socket under
        # a runner waiting in select() and can sit out its 10 s timeout (measured on the fake).
        AgentService._shutdown_sockets(client, self._sessions, self._raw_sockets)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not self._stopping.is_set():
            if self._session_opened_at != opened_before:
                return
            time.sleep(0.05)
        try:
            client.connect_to_new_endpoint(force=True)
        except Exception as exc:
            log.warning("forced reconnect failed: %s", exc)
            with self._lock:
                self._detail = f"reconnect failed: {type(exc).__name__}; retrying"

    # ------------------------------------------------------------------ helpers for the router
    def _set_state(self, state: AgentState, detail: str = "") -> None:
        with self._lock:
            if state is AgentState.CONNECTED and self._connected_since is None:
                self._connected_since = time.time()
            self._state, self._detail = state, detail

    def _count_job(self, job: Job) -> None:
        with self._lock:
            self._jobs += 1

    def _cancel_local(self, job_id: str) -> None:
        self.deps.cancel_local(job_id)

    def _classify(self, text: str) -> tuple[str, str]:
        if self._classifier is None:
            try:
                from ..providers import build_intent_classifier
                self._classifier = build_intent_classifier(self.settings, store=self.deps.store)
            except Exception:
                log.warning("no intent classifier; using keywords", exc_info=True)
                self._classifier = False
        if self._classifier:
            try:
                intent = self._classifier.classify(text)
                return str(getattr(intent, "kind", "chitchat")), str(getattr(intent, "provider", ""))
            except Exception:
                log.warning("intent classification failed; using keywords", exc_info=True)
        return keyword_intent(text), "keywords"

    def status_text(self) -> str:
        """`/blender status`: this node, its queue and its connection."""
        st = self.status()
        store = self.deps.store
        lines = ["*Node status*", f"• node: `{self.deps.node_id}`"]
        version = self.deps.blender_version
        lines.append(f"• Blender: {version}" if version else "• Blender: not loaded in this process")
        try:
            queued = store.count((JobStatus.QUEUED,))
            running = store.count((JobStatus.CLAIMED, JobStatus.RUNNING, JobStatus.UPLOADING))
            lines.append(f"• queue: {queued} waiting, {running} in progress (all nodes)")
        except Exception as exc:
            lines.append(f"• queue: unavailable ({type(exc).__name__})")
        activity = self.deps.activity()
        current = activity.current_job_id
        lines.append(f"• rendering now: `{current}`" if current else "• rendering now: nothing")
        if activity.dispatcher_running:
            lines.append(f"• jobs finished here: {activity.jobs_done}")
        try:
            nodes = store.list_nodes()
        except Exception as exc:
            nodes = []
            lines.append(f"• nodes: unavailable ({type(exc).__name__})")
        if nodes:
            now = time.time()
            lines.append(f"• farm: {len(nodes)} node(s)")
            for n in nodes[:20]:
                state = n.shown_state(now)
                job = f", job `{n.current_job}`" if n.current_job and state == "rendering" else ""
                lines.append(f"    ◦ `{bk.escape(n.id)}` {n.role}: *{state}*{job}, {n.jobs_done} done, "
                             f"{n.jobs_failed} failed" + (f", Blender {bk.escape(n.blender_version)}"
                                                          if n.blender_version else "")
                             # what capability routing sends it: a GPU, tags
                             + (f", GPU {bk.escape(n.gpu)}" if n.gpu else "")
                             + (f", tags {bk.escape(', '.join(n.tags))}" if n.tags else ""))
        uptime = time.time() - (self._started_at or time.time())
        lines.append(f"• uptime: {bk.fmt_seconds(uptime)}; Slack: {st.state}, {st.envelopes_seen} requests, "
                     f"{st.reconnects} reconnects")
        lines.append(f"• Python {sys.version.split()[0]}")
        return "\n".join(lines)
