"""HTTP events mode: Slack's Events API, slash commands and interactivity as signed POSTs.

The alternative to Socket Mode for workspaces whose policy forbids it (`serve --events-http
HOST:PORT`, `SLACK_AI_EVENTS_HTTP`). Each request goes through, in this order:

1. a size cap (`MAX_BODY_BYTES`, read only when `Content-Length` is within it);
2. the `v0` HMAC-SHA256 signature over `v0:{X-Slack-Request-Timestamp}:{raw body}` with the
   app's signing secret, by slack_sdk's `SignatureVerifier` (a timestamp more than 5 minutes
   from now fails, the digest is compared in constant time);
3. replay refusal: a (timestamp, signature) pair seen before is refused. Only an identical
   request can carry the same pair, and a valid pair is at most 5 minutes old, so remembering
   each one for the dedupe store's TTL (an hour) covers the whole window, restarts included;
4. the answer, at once (Slack wants one within 3 s): `url_verification` gets its challenge, a
   slash command gets the same ack payload Socket Mode sends (`AgentRouter.ack_payload`),
   events and clicks an empty 200;
5. then, on the request's thread, the request goes to the same `route(type, payload, id)`
   the Socket Mode listener calls, with Socket Mode's envelope types (`events_api`,
   `slash_commands`, `interactive`). An event Slack retries (`X-Slack-Retry-Num`) carries a
   new timestamp and signature but the same `event_id`, which the router already dedupes.

Refusals answer 401 (bad or missing signature, stale timestamp), 403 (replay), 413 (too
big), 400 (unreadable after a valid signature) or 415 (a content type Slack never sends);
none of them reaches the router. Nothing here touches bpy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.signature import SignatureVerifier

from ..httpserve import QuietHandler, bind
from .dedupe import DedupeStore

log = logging.getLogger(__name__)

# Slack's payloads are small; the largest, a block_actions click, carries the clicked
# message with its blocks (50 blocks of at most 3,000 characters: about 150 kB).
MAX_BODY_BYTES = 1024 * 1024
READ_TIMEOUT_S = 10.0  # a client that trickles its body loses its thread after this
PATHS = ("/slack/events", "/slack/commands", "/slack/interactive")

Ack = Callable[[str, Any], dict[str, Any] | None]  # (envelope type, payload) -> ack body or None
Route = Callable[[str, Any, str], None]  # (envelope type, payload, envelope id)


class SlackRequestRefused(Exception):
    """A request that gets no routing: `status` and a short reason for the log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def is_loopback_host(host: str) -> bool:
    return host in ("", "localhost", "::1") or host.startswith("127.")


class SlackRequestGate:
    """Signature, timestamp window and replay checks of one request (no I/O but the store)."""

    def __init__(self, signing_secret: str, seen: DedupeStore, *,
                 verifier: SignatureVerifier | None = None) -> None:
        self.verifier = verifier or SignatureVerifier(signing_secret)
        self.seen = seen

    def check(self, body: bytes, headers: dict[str, str]) -> None:
        """Raises SlackRequestRefused unless the request is Slack's and new."""
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        if not timestamp or not signature:
            raise SlackRequestRefused(401, "no Slack signature headers")
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise SlackRequestRefused(401, "malformed request timestamp")
        try:
            valid = self.verifier.is_valid(body=body, timestamp=timestamp, signature=signature)
        except (ValueError, UnicodeDecodeError):
            valid = False
        if not valid:
            # One answer for a wrong signature and a stale timestamp: a prober learns nothing.
            raise SlackRequestRefused(401, "invalid signature or timestamp outside the 5-minute window")
        if not self.seen.check_and_mark(f"http-request:{timestamp}:{signature}"):
            raise SlackRequestRefused(403, "replayed request (timestamp and signature seen before)")


def parse_slack_request(content_type: str, body: bytes) -> tuple[str, Any, dict[str, Any] | None]:
    """(envelope type, payload, immediate answer) of a verified body.

    The envelope type is Socket Mode's (`events_api`, `slash_commands`, `interactive`), or ""
    when the request is answered here alone (`url_verification`, `ssl_check`, rate-limit
    notices). Raises SlackRequestRefused(400/415) for a body that cannot be read."""
    kind = content_type.split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SlackRequestRefused(400, "body is not UTF-8") from None
    if kind == "application/json":
        data = _json_object(text)
        body_type = data.get("type")
        if body_type == "url_verification":
            challenge = data.get("challenge")
            if not isinstance(challenge, str):
                raise SlackRequestRefused(400, "url_verification without a challenge")
            return "", None, {"challenge": challenge}
        if body_type == "event_callback":
            return "events_api", data, None
        return "", None, None  # app_rate_limited and other notices: nothing to do
    if kind == "application/x-www-form-urlencoded":
        fields = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True, max_num_fields=200).items()}
        if "payload" in fields:
            return "interactive", _json_object(fields["payload"]), None
        if fields.get("ssl_check") == "1":
            return "", None, None
        if "command" in fields:
            return "slash_commands", fields, None
        raise SlackRequestRefused(400, "form without command or payload")
    raise SlackRequestRefused(415, f"unsupported content type {kind[:60]!r}")


def _json_object(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise SlackRequestRefused(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise SlackRequestRefused(400, "body is not a JSON object")
    return data


def envelope_id_of(envelope_type: str, payload: Any, signature: str) -> str:
    """An id standing in for Socket Mode's envelope id (the router dedupes slash commands and
    clicks by it): the event id, the trigger id of a command or click, else the signature."""
    if isinstance(payload, dict):
        for key in ("event_id", "trigger_id"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                return f"http:{value}"
    return f"http:{signature[-24:]}"


class EventsHttpServer:
    """Serves Slack's HTTP requests on HOST:PORT until `stop()` (a daemon thread per request)."""

    def __init__(self, address: str, *, signing_secret: str, seen: DedupeStore, ack: Ack, route: Route,
                 on_request: Callable[[], None] | None = None) -> None:
        if not signing_secret.strip():
            raise ValueError("HTTP events mode needs the app's signing secret (SLACK_SIGNING_SECRET)")
        host, _, port = address.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        self.gate = SlackRequestGate(signing_secret, seen)
        self.server, self.thread, self.address = bind(host, int(port), _handler_for(self.gate, ack, route, on_request),
                                                      "slackai-events-http")
        self.loopback = is_loopback_host(host)

    @property
    def url(self) -> str:
        return f"http://{self.address}/slack/events"

    def start(self) -> EventsHttpServer:
        self.thread.start()
        if not self.loopback:
            log.warning("Slack events listener bound to %s, not loopback: Slack sends only to https:// URLs, "
                        "so put a TLS reverse proxy in front of it (docs/SLACK_SETUP.md)", self.address)
        log.info("listening for Slack's signed requests on %s", self.url)
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler_for(gate: SlackRequestGate, ack: Ack, route: Route,
                 on_request: Callable[[], None] | None) -> type[QuietHandler]:
    class Handler(QuietHandler):
        log_name = "events http"

        timeout = READ_TIMEOUT_S

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            try:
                routed = self._answer()
            except TimeoutError:  # the body did not arrive within READ_TIMEOUT_S: drop the connection
                log.warning("a request to the Slack events listener from %s timed out", self.client_address[0])
                self.close_connection = True
                return
            except Exception:  # never let one request take the listener down
                log.exception("handling a Slack request failed")
                self._send(500, b"")
                return
            if routed is not None:
                # After the answer went out: the router only dedupes, records and enqueues.
                self.wfile.flush()
                envelope_type, payload, envelope_id = routed
                route(envelope_type, payload, envelope_id)

        def do_GET(self) -> None:  # noqa: N802
            self._send(405, b"POST only: point Slack's request URLs here")

        def _answer(self) -> tuple[str, Any, str] | None:
            if self.path.split("?")[0] not in PATHS:
                self._send(404, b"")
                return None
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._refuse(SlackRequestRefused(411, "no Content-Length"))
                return None
            if length < 0 or length > MAX_BODY_BYTES:
                self.close_connection = True  # the body is never read
                self._refuse(SlackRequestRefused(413, f"body of {length} bytes is over {MAX_BODY_BYTES}"))
                return None
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                gate.check(body, headers)
                envelope_type, payload, answer = parse_slack_request(headers.get("content-type", ""), body)
            except SlackRequestRefused as refused:
                self._refuse(refused)
                return None
            if on_request is not None:
                on_request()
            if envelope_type == "slash_commands":
                answer = ack(envelope_type, payload)
            retry = headers.get("x-slack-retry-num", "")
            if retry:
                log.info("Slack retry %s (%s) of a request", retry[:4], headers.get("x-slack-retry-reason", "")[:40])
            self._send(200, json.dumps(answer).encode() if answer else b"",
                       "application/json" if answer else "text/plain")
            if not envelope_type:
                return None
            return envelope_type, payload, envelope_id_of(envelope_type, payload, headers["x-slack-signature"])

        def _refuse(self, refused: SlackRequestRefused) -> None:
            log.warning("refused a request to the Slack events listener from %s: %s (%s)",
                        self.client_address[0], refused, refused.status)
            self._send(refused.status, str(refused).encode())

        def _send(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
            self.reply(code, body, content_type)

    return Handler
