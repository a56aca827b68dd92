"""A faithful local Slack: Web API + Socket Mode + a small web page, on one loopback port.

Used by the e2e tests, by `scripts/run "/render ..."` and by `python -m headless_runner sandbox`.
It speaks Slack's wire formats so the agent is tested against the same behaviour it meets in
a real workspace: hello sent unprompted, server pings, the 3 s ack deadline with event
redelivery (new envelope_id, same event_id), the 10-connection cap, response_url limits,
files_upload_v2's three steps, Slack's rate tiers (429 with Retry-After), Block Kit limits
(`invalid_blocks`), and the failure modes the SDK does not notice by itself (half-open
connections). docs/TESTING.md lists which rules come from Slack's documentation, with the
numbers; behaviour Slack does not document is marked `# ASSUMPTION:` and no test locks it in.

The parts, one module each:

- workspace.py: the workspace model (channels, messages, threads, files, response URLs);
- web_api.py: `/api/<method>`, the upload URL, response URLs, rate tiers, fault injection;
- block_kit.py: Block Kit validation as Slack answers it;
- socket_mode.py: connections, envelopes, acks, redelivery, disconnects;
- page.py: the sandbox web page.

FakeSlackServer puts them on one aiohttp application and is the one object tests and the
CLI use: what a user does in Slack (`send_slash_command`, `post_user_message`,
`click_button`...), what Slack saw (`calls`, `acks`, `channel_messages`, `files`...), the
`wait_for_*` helpers, and the test controls (`inject_fault`, `send_disconnect`,
`drop_connections`, `freeze_connections`).

The server runs its own asyncio loop on a daemon thread (daemon so that a test or CLI that
forgets stop() can still exit). Every public method is safe to call from any thread: state is
guarded by one lock, and anything that writes to a socket is scheduled onto the loop.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from .block_kit import block_kit_errors
from .page import SandboxPage, is_loopback
from .socket_mode import Ack, Delivery, SocketModeTransport
from .web_api import ApiCall, WebApi
from .workspace import Options, UploadedFile, Workspace

__all__ = ["Ack", "ApiCall", "Delivery", "FakeSlackServer", "UploadedFile", "block_kit_errors"]

log = logging.getLogger(__name__)


class _Forward:
    """An attribute of the server that lives on one of its parts (read and written live)."""

    def __init__(self, part: str) -> None:
        self.part = part
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(getattr(obj, self.part), self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(getattr(obj, self.part), self.name, value)


class FakeSlackServer:
    """A local Slack workspace with one app installed (the bot), for tests and the sandbox."""

    # Tunables (Options) and the workspace's identity, as attributes of the server.
    bot_token = _Forward("options")
    app_token = _Forward("options")
    ack_timeout_s = _Forward("options")
    redelivery_delays_s = _Forward("options")
    ping_interval_s = _Forward("options")
    max_connections = _Forward("options")
    echo_bot_messages = _Forward("options")
    ticket_ttl_s = _Forward("options")
    disconnect_grace_s = _Forward("options")
    enforce_rate_limits = _Forward("options")
    rate_window_scale = _Forward("options")
    team_id = _Forward("workspace")
    team_domain = _Forward("workspace")
    app_id = _Forward("workspace")
    bot_id = _Forward("workspace")
    bot_user_id = _Forward("workspace")
    bot_name = _Forward("workspace")

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 bot_token: str = "xoxb-sandbox",  # noqa: S107 - the sandbox's own fake tokens, not secrets
                 app_token: str = "xapp-sandbox",  # noqa: S107 - same
                 ack_timeout_s: float = 3.0,
                 redelivery_delays_s: Iterable[float] = (1.0, 2.0, 4.0), ping_interval_s: float = 10.0,
                 max_connections: int = 10, *, echo_bot_messages: bool = True,
                 ticket_ttl_s: float = 60.0, disconnect_grace_s: float = 10.0,
                 team_id: str = "T0SANDBOX", team_domain: str = "sandbox",
                 enforce_rate_limits: bool = True, rate_window_scale: float = 1.0) -> None:
        if not is_loopback(host):  # the page runs jobs with the environment's LLM keys: never on a network
            raise ValueError(f"the sandbox listens on loopback only, not {host!r}")
        self.host = host
        self._requested_port = port
        self.port = 0
        self.options = Options(bot_token=bot_token, app_token=app_token, ack_timeout_s=ack_timeout_s,
                               redelivery_delays_s=tuple(redelivery_delays_s), ping_interval_s=ping_interval_s,
                               max_connections=max_connections, echo_bot_messages=echo_bot_messages,
                               ticket_ttl_s=ticket_ttl_s, disconnect_grace_s=disconnect_grace_s,
                               enforce_rate_limits=enforce_rate_limits, rate_window_scale=rate_window_scale)
        self.workspace = Workspace(lambda: self.base_url, team_id=team_id, team_domain=team_domain)
        self.socket_mode = SocketModeTransport(self.workspace, self.options, address=lambda: (self.host, self.port))
        self.web_api = WebApi(self.workspace, self.options, socket_url=self.socket_mode.new_socket_url,
                              send_event=self.send_event)
        self.page = SandboxPage(self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

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
            self.socket_mode.loop = loop
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
        self.web_api.add_routes(app)
        self.socket_mode.add_routes(app)
        self.page.add_routes(app)
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
        self.socket_mode.loop = None
        self.workspace.notify()

    async def _shutdown(self) -> None:
        await self.socket_mode.shutdown()
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
        return self.socket_mode.acks

    @property
    def deliveries(self) -> list[Delivery]:
        return self.socket_mode.deliveries

    @property
    def operation_timeouts(self) -> list[Delivery]:
        """Slash commands / interactions not acked in time: the user saw `operation_timeout`."""
        return [d for d in self.socket_mode.deliveries
                if d.type != "events_api" and d.outcome in ("timed_out", "undelivered")]

    @property
    def files(self) -> dict[str, UploadedFile]:
        with self.workspace.lock:
            return dict(self.workspace.files)

    @property
    def response_url_posts(self) -> list[dict[str, Any]]:
        with self.workspace.lock:
            return copy.deepcopy(self.workspace.response_url_posts)

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        """Ephemeral messages (chat.postEphemeral, response_url, slash ack payloads)."""
        with self.workspace.lock:
            return copy.deepcopy(self.workspace.ephemerals)

    @property
    def reactions(self) -> list[dict[str, Any]]:
        with self.workspace.lock:
            return copy.deepcopy(self.workspace.reactions)

    @property
    def connection_count(self) -> int:
        return self.socket_mode.connection_count

    @property
    def usable_connection_count(self) -> int:
        """Open connections that are not frozen (half-open)."""
        return self.socket_mode.usable_connection_count

    @property
    def connections_opened(self) -> int:
        return self.socket_mode.connections_opened

    def calls(self, method: str | None = None) -> list[ApiCall]:
        """The call log, optionally for one method ("upload" for the upload URL)."""
        return self.web_api.calls(method)

    def channel_messages(self, channel_id: str) -> list[dict[str, Any]]:
        """Current messages of a channel (threads included), oldest first."""
        return self.workspace.channel_messages(channel_id)

    def thread_messages(self, channel_id: str, thread_ts: str) -> list[dict[str, Any]]:
        return self.workspace.thread_messages(channel_id, thread_ts)

    def sandbox_state(self) -> dict[str, Any]:
        """What the web page shows: channels with threaded messages, ephemerals, connection info."""
        with self.workspace.lock:
            return {**self.workspace.snapshot(), "connections": self.socket_mode.connection_count}

    # ------------------------------------------------------------------ waiting (tests and the `command` CLI)

    def wait_for_call(self, method: str, predicate: Callable[[ApiCall], bool] | None = None,
                      timeout: float = 5.0) -> ApiCall:
        """Block until a call of `method` (matching `predicate`) has been received."""
        call: ApiCall = self._wait(lambda: self.web_api.find_call(method, predicate), timeout, f"no {method} call")
        return call

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> Ack:
        """Block until the ack for `envelope_id` has arrived (late ones included)."""
        ack: Ack = self._wait(lambda: self.socket_mode.find_ack(envelope_id), timeout, f"no ack for {envelope_id}")
        return ack

    def wait_for_connection(self, count: int = 1, timeout: float = 5.0) -> None:
        """Block until at least `count` usable (not frozen) connections are open."""
        self._wait(lambda: self.socket_mode.usable_now() >= count or None, timeout, f"fewer than {count} connections")

    def wait_for(self, condition: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
        """Block until `condition()` returns something truthy (re-checked on every state change)."""
        return self._wait(condition, timeout, what)

    def _wait(self, find: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        changed = self.workspace.changed
        with changed:
            while True:
                found = find()
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fake Slack: {what} within {timeout} s")
                changed.wait(min(left, 0.1))

    # ------------------------------------------------------------------ what users do in Slack

    def send_slash_command(self, command: str, text: str = "", *, user_id: str = "U0SANDUSER",
                           channel_id: str = "C0GENERAL", user_name: str = "sandbox-user") -> str:
        """Deliver a slash command as Slack does; returns the envelope_id."""
        payload = self.workspace.slash_command_payload(command, text, user_id=user_id, channel_id=channel_id,
                                                       user_name=user_name)
        return self.socket_mode.submit("slash_commands", payload, accepts_response_payload=True)

    def send_event(self, event: dict[str, Any], event_id: str | None = None) -> str:
        """Deliver an Events API event (wrapped in event_callback); returns the event_id."""
        event_id, payload = self.workspace.event_callback(event, event_id)
        self.socket_mode.submit("events_api", payload, accepts_response_payload=False, event_id=event_id)
        return event_id

    def send_interactive(self, payload: dict[str, Any]) -> str:
        """Deliver an interactive payload (block_actions, shortcut...); returns the envelope_id."""
        payload = copy.deepcopy(payload)
        accepts = payload.get("type") in ("block_actions", "view_submission", "view_closed")
        return self.socket_mode.submit("interactive", payload, accepts_response_payload=accepts)

    def click_button(self, channel_id: str, message_ts: str, action_id: str, *, user_id: str = "U0SANDUSER",
                     value: str | None = None) -> str:
        """A user clicks the button `action_id` of a stored message: a block_actions envelope."""
        payload = self.workspace.block_actions_payload(channel_id, message_ts, action_id, user_id=user_id,
                                                       value=value)
        return self.send_interactive(payload)

    def post_user_message(self, channel_id: str, user_id: str, text: str, thread_ts: str | None = None) -> str:
        """A human posts a message: stored, then delivered as `message` (+ `app_mention`) events."""
        with self.workspace.lock:
            channel = self.workspace.ensure_channel(channel_id)
            message = self.workspace.user_message(channel_id, user_id, text, thread_ts)
        ts = message["ts"]
        event = dict(copy.deepcopy(message), channel=channel_id, event_ts=ts,
                     channel_type="im" if channel["is_im"] else "channel")
        self.send_event(event)
        # Slack sends app_mention only for channel messages; a DM arrives as message.im alone.
        if f"<@{self.bot_user_id}>" in text and not channel["is_im"]:
            mention = {k: v for k, v in event.items() if k != "channel_type"}
            mention["type"] = "app_mention"
            self.send_event(mention)
        return str(ts)

    def add_channel(self, channel_id: str, name: str, *, is_im: bool = False) -> None:
        self.workspace.add_channel(channel_id, name, is_im=is_im)

    # ------------------------------------------------------------------ test controls

    def inject_fault(self, method: str, *, status: int | None = 429, error: str | None = "ratelimited",
                     retry_after: int | None = 1, times: int = 1, delay_s: float = 0.0, drop: bool = False) -> None:
        """Make the next `times` calls of `method` fail ("upload" = the upload URL, "response_url",
        "*" = any). `delay_s` delays the answer (a hang), `drop` closes the connection without
        an answer, `status=None` with `error=None` only delays. A 5xx answers an HTML page."""
        self.web_api.inject_fault(method, status=status, error=error, retry_after=retry_after, times=times,
                                  delay_s=delay_s, drop=drop)

    def clear_faults(self) -> None:
        self.web_api.clear_faults()

    def send_disconnect(self, reason: str = "refresh_requested", close_after_s: float | None = None) -> None:
        """Send a `disconnect` frame to every usable connection; the server closes each one
        after `close_after_s` (default: the grace window) if the client has not."""
        self.socket_mode.send_disconnect(reason, close_after_s)

    def drop_connections(self) -> None:
        """Abrupt TCP close of every connection, without a close frame."""
        self.socket_mode.drop_connections()

    def freeze_connections(self) -> None:
        """Half-open: current connections stop sending anything (no pings, pongs or envelopes)
        and whatever the client sends is lost; TCP stays open. New connections work normally."""
        self.socket_mode.freeze_connections()
