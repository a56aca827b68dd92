"""The fake Slack's Socket Mode side: single-use connection URLs, the WebSocket with hello,
server pings and acks, envelope delivery with Slack's 3 s ack deadline and event
redelivery (new envelope_id, same event_id), the 10-connection cap, and the failure modes
a client must survive (disconnect frames, dropped and half-open connections).

Everything here runs on the server's event loop; `call_soon` schedules work onto it from
other threads. State is guarded by the workspace lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .workspace import Options, Workspace

log = logging.getLogger(__name__)

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


class SocketModeTransport:
    """Socket Mode connections of the one app, and the envelopes pushed over them."""

    def __init__(self, workspace: Workspace, options: Options, *, address: Callable[[], tuple[str, int]]) -> None:
        self.ws = workspace
        self.options = options
        self._address = address  # (host, port) once the server listens
        self.loop: asyncio.AbstractEventLoop | None = None  # set by the server while it runs
        self._acks: list[Ack] = []
        self._deliveries: list[Delivery] = []
        self._ack_events: dict[str, asyncio.Event] = {}
        self._connections: dict[int, _Connection] = {}
        self._connections_opened = 0
        self._tickets: dict[str, tuple[float, bool]] = {}  # ticket -> (issued_at, used)
        self._bg_tasks: set[asyncio.Task[Any]] = set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/link", self._handle_socket)
        app.router.add_get("/link/", self._handle_socket)

    def new_socket_url(self) -> str:
        """apps.connections.open: a fresh single-use WebSocket URL (caller holds the lock)."""
        ticket = str(uuid.uuid4())
        self._tickets[ticket] = (time.monotonic(), False)
        host, port = self._address()
        return f"ws://{host}:{port}/link/?ticket={ticket}&app_id={self.ws.app_id}"

    # ------------------------------------------------------------------ observation

    @property
    def acks(self) -> list[Ack]:
        with self.ws.lock:
            return list(self._acks)

    @property
    def deliveries(self) -> list[Delivery]:
        with self.ws.lock:
            return list(self._deliveries)

    @property
    def connection_count(self) -> int:
        with self.ws.lock:
            return sum(1 for c in self._connections.values() if not c.closed)

    @property
    def usable_connection_count(self) -> int:
        """Open connections that are not frozen (half-open)."""
        with self.ws.lock:
            return sum(1 for c in self._connections.values() if not c.closed and not c.frozen)

    @property
    def connections_opened(self) -> int:
        with self.ws.lock:
            return self._connections_opened

    def find_ack(self, envelope_id: str) -> Ack | None:
        """Caller holds the workspace lock."""
        return next((a for a in self._acks if a.envelope_id == envelope_id), None)

    def usable_now(self) -> int:
        """Caller holds the workspace lock."""
        return sum(1 for c in self._connections.values() if not c.closed and not c.frozen)

    # ------------------------------------------------------------------ controls

    def send_disconnect(self, reason: str, close_after_s: float | None) -> None:
        grace = self.options.disconnect_grace_s if close_after_s is None else close_after_s
        self.call_soon(self._disconnect_all(reason, grace))

    def drop_connections(self) -> None:
        self.call_soon(self._drop_all())

    def freeze_connections(self) -> None:
        with self.ws.lock:
            for conn in self._connections.values():
                conn.frozen = True
        self.ws.notify()

    async def shutdown(self) -> None:
        """Cancel background work and close every connection (on the loop)."""
        with self.ws.lock:
            conns = list(self._connections.values())
            tasks = list(self._bg_tasks)
        for task in tasks:
            task.cancel()
        for conn in conns:
            await self._close_connection(conn, code=1001, message=b"server shutting down", abrupt=conn.frozen)

    # ------------------------------------------------------------------ delivery

    def call_soon(self, coro: Any) -> None:
        """Run `coro` on the server's loop (from any thread)."""
        loop = self.loop
        if loop is None or not loop.is_running():
            coro.close()
            raise RuntimeError("fake Slack server is not running")
        asyncio.run_coroutine_threadsafe(coro, loop)

    def _spawn(self, coro: Any) -> None:
        """Start a background task on the loop (call from the loop thread)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._bg_tasks.add(task)
        task.add_done_callback(self._bg_tasks.discard)

    def submit(self, env_type: str, payload: dict[str, Any], *, accepts_response_payload: bool,
               event_id: str | None = None) -> str:
        """Push an envelope to the app (redelivered while unacked, for events); returns its id."""
        envelope_id = str(uuid.uuid4())

        async def start() -> None:
            self._spawn(self._deliver(envelope_id, env_type, payload, accepts_response_payload, event_id))

        self.call_soon(start())
        return envelope_id

    async def _deliver(self, first_envelope_id: str, env_type: str, payload: dict[str, Any],
                       accepts_response_payload: bool, event_id: str | None) -> None:
        # Slack documents retries for events; commands and interactions that miss the deadline
        # show the user an error. ASSUMPTION: commands and interactions are never re-sent.
        attempts = 1 + (len(self.options.redelivery_delays_s) if env_type == "events_api" else 0)
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self.options.redelivery_delays_s[attempt - 1])
            delivery = Delivery(envelope_id=first_envelope_id if attempt == 0 else str(uuid.uuid4()),
                                type=env_type, payload=payload, accepts_response_payload=accepts_response_payload,
                                retry_attempt=attempt, retry_reason="timeout" if attempt else "",
                                event_id=event_id, created_at=time.time())
            acked = asyncio.Event()
            with self.ws.changed:
                self._deliveries.append(delivery)
                self._ack_events[delivery.envelope_id] = acked
                self.ws.changed.notify_all()
            deadline = time.monotonic() + self.options.ack_timeout_s
            conn = await self._wait_for_target(deadline)
            if conn is not None:
                await self._send_envelope(conn, delivery)
            try:
                await asyncio.wait_for(acked.wait(), max(0.0, deadline - time.monotonic()))
                return
            except TimeoutError:
                with self.ws.changed:
                    delivery.outcome = "timed_out" if delivery.sent_at is not None else "undelivered"
                    self.ws.changed.notify_all()
                log.info("envelope %s (%s) not acked within %.1f s", delivery.envelope_id, env_type,
                         self.options.ack_timeout_s)

    async def _wait_for_target(self, deadline: float) -> _Connection | None:
        """Pick a connection for the next envelope, waiting up to the ack deadline for one."""
        while True:
            with self.ws.lock:
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
        with self.ws.changed:
            delivery.sent_at = time.time()
            delivery.connection_id = conn.id
            self.ws.changed.notify_all()
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
        with self.ws.changed:
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
            self.ws.changed.notify_all()
        if response is not None and delivery is not None and delivery.type == "slash_commands":
            self.ws.apply_command_response(delivery.payload, response)

    # ------------------------------------------------------------------ internals: WebSocket

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        with self.ws.lock:
            issued = self._tickets.get(ticket)
            valid = issued is not None and not issued[1] and time.monotonic() - issued[0] <= self.options.ticket_ttl_s
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
        with self.ws.changed:
            self._connections_opened += 1
            conn = _Connection(id=self._connections_opened, ws=ws, transport=request.transport,
                               opened_at=time.time(), ticket=ticket)
            open_count = sum(1 for c in self._connections.values() if not c.closed)
            # At most 10 connections per app (documented). ASSUMPTION: the one over the cap is
            # the one refused, with a too_many_websockets disconnect frame.
            over_limit = open_count >= self.options.max_connections
            if not over_limit:
                self._connections[conn.id] = conn
            self.ws.changed.notify_all()
        if over_limit:
            await ws.send_str(json.dumps({"type": "disconnect", "reason": "too_many_websockets",
                                          "num_connections": open_count,
                                          "debug_info": {"host": "applink-sandbox"},
                                          "connection_info": {"app_id": self.ws.app_id}}))
            await ws.close(code=1000, message=b"too_many_websockets")
            return ws
        await ws.send_str(json.dumps({
            "type": "hello", "num_connections": open_count + 1,
            "debug_info": {"host": "applink-sandbox", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.ws.app_id}}))
        conn.tasks.append(asyncio.get_running_loop().create_task(self._ping_loop(conn)))
        try:
            await self._read_loop(conn)
        finally:
            for task in conn.tasks:
                task.cancel()
            with self.ws.changed:
                conn.closed = True
                self._connections.pop(conn.id, None)
                self.ws.changed.notify_all()
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
            await asyncio.sleep(self.options.ping_interval_s)
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
        with self.ws.lock:
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
        with self.ws.lock:
            targets = [c for c in self._connections.values() if not c.closed]
        for conn in targets:
            await self._close_connection(conn, abrupt=True)
