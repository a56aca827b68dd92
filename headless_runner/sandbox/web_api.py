"""The fake Slack's Web API: `/api/<method>` with Slack's authentication, token types, rate
tiers (429 with Retry-After) and error answers; the files_upload_v2 upload URL; the
response_url endpoints; private file downloads. Test controls: `inject_fault` (errors,
hangs, dropped connections) and the call log.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import mimetypes
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .ai_apps import AiAppMethods
from .block_kit import ApiError, parse_blocks
from .workspace import RESPONSE_URL_MAX_USES, RESPONSE_URL_TTL_S, Options, UploadedFile, Workspace

POST_MESSAGE_MAX_CHARS = 40_000  # chat.postMessage: longer text is truncated, not refused
UPDATE_MESSAGE_MAX_CHARS = 4_000  # chat.update: msg_too_long above this


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
    # ASSUMPTION: the tiers of the AI-app methods (Slack lists them without figures we could
    # confirm): appends are the frequent call; start/stop as often as chat.update.
    "chat.startStream": TIER_3,
    "chat.appendStream": TIER_4,
    "chat.stopStream": TIER_3,
    "views.publish": TIER_4,
    "assistant.threads.setSuggestedPrompts": TIER_4,
    "assistant.threads.setStatus": TIER_4,
}




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
class _Fault:
    method: str
    status: int | None
    error: str | None
    retry_after: int | None
    times: int
    delay_s: float
    drop: bool



class WebApi(AiAppMethods):
    """Slack's HTTP side for one workspace. Handlers run on the server's event loop; state
    changes happen under the workspace lock."""

    def __init__(self, workspace: Workspace, options: Options, *, socket_url: Callable[[], str],
                 send_event: Callable[[dict[str, Any]], object]) -> None:
        self.ws = workspace
        self.options = options
        self._socket_url = socket_url  # a fresh single-use Socket Mode URL (apps.connections.open)
        self._send_event = send_event  # deliver an Events API event to the app
        self._calls: list[ApiCall] = []
        self._faults: list[_Fault] = []
        self._rate_log: dict[tuple[str, str, int], deque[float]] = {}  # accepted call times per window

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/{method}", self._handle_api)
        app.router.add_get("/api/{method}", self._handle_api)  # Slack also accepts GET with query args
        app.router.add_post("/upload/v1/{key}", self._handle_upload)
        app.router.add_post("/commands/{team}/{rid}/{secret}", self._handle_response_url)
        app.router.add_post("/actions/{team}/{rid}/{secret}", self._handle_response_url)
        app.router.add_get("/files-pri/{file_id}/{name}", self._handle_private_file)

    # ------------------------------------------------------------------ test controls and the call log

    def calls(self, method: str | None = None) -> list[ApiCall]:
        with self.ws.lock:
            return [c for c in self._calls if method is None or c.method == method]

    def find_call(self, method: str, predicate: Callable[[ApiCall], bool] | None) -> ApiCall | None:
        """Caller holds the workspace lock."""
        return next((c for c in self._calls if c.method == method and (predicate is None or predicate(c))), None)

    def inject_fault(self, method: str, *, status: int | None, error: str | None, retry_after: int | None,
                     times: int, delay_s: float, drop: bool) -> None:
        with self.ws.lock:
            self._faults.append(_Fault(method, status, error, retry_after, times, delay_s, drop))

    def clear_faults(self) -> None:
        with self.ws.lock:
            self._faults.clear()

    def _take_fault(self, method: str) -> _Fault | None:
        with self.ws.lock:
            for fault in self._faults:
                if fault.times > 0 and fault.method in (method, "*"):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _record_call(self, method: str, params: dict[str, Any], headers: dict[str, str], status: int,
                     response: dict[str, Any] | None) -> None:
        with self.ws.changed:
            self._calls.append(ApiCall(method, params, headers, time.time(), status, response))
            self.ws.changed.notify_all()

    def _echo(self, channel_id: str, message: dict[str, Any], subtype: str | None = None,
              previous: dict[str, Any] | None = None) -> None:
        """Slack echoes the bot's own posts as events; the agent must not react to them."""
        if not self.options.echo_bot_messages:
            return
        self._send_event(self.ws.echo_event(channel_id, message, subtype, previous))


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
        if token not in (self.options.bot_token, self.options.app_token):
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        wants_app_token = method == "apps.connections.open"
        if (token == self.options.app_token) != wants_app_token:
            return 200, {"ok": False, "error": "not_allowed_token_type"}, {}
        with self.ws.changed:
            wait_s = self._rate_limited(method, params)
            if wait_s is not None:
                # ASSUMPTION: Retry-After is the whole seconds until the window lets the call
                # through (Slack documents the header, not how it computes it).
                retry_after = max(1, math.ceil(wait_s))
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
            try:
                result: dict[str, Any] = handler(params, files)
            except ApiError as exc:
                result = {"ok": False, "error": exc.error, **exc.extra}
            self.ws.changed.notify_all()
        return 200, result, {}

    def _rate_limited(self, method: str, params: dict[str, Any]) -> float | None:
        """Seconds until this call would be accepted, or None: accepted and counted.

        ASSUMPTION: only accepted calls count against a window (a 429 costs nothing), and a
        call that ends in an ok:false error still counts, since it reached the method.
        """
        if not self.options.enforce_rate_limits:
            return None
        rules: list[tuple[tuple[str, str, int], RateLimit]]
        if method == "chat.postMessage":
            channel = self.ws.channel_key(params.get("channel"))
            rules = [((method, channel, i), r) for i, r in enumerate(POST_MESSAGE_PER_CHANNEL)]
            rules += [((method, "*", i), r) for i, r in enumerate(POST_MESSAGE_PER_WORKSPACE)]
        else:
            rules = [((method, "", i), r) for i, r in enumerate(METHOD_RATE_LIMITS.get(method, ()))]
        now = time.monotonic()
        wait = 0.0
        for key, rule in rules:
            window = rule.window_s * self.options.rate_window_scale
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

    # -- methods (each returns Slack's JSON body; runs under the lock)

    def _api_api_test(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        return {"ok": True, "args": {k: v for k, v in params.items() if k != "token"}}

    def _api_auth_test(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        return {"ok": True, "url": f"https://{self.ws.team_domain}.slack.com/", "team": "Sandbox",
                "user": self.ws.bot_name, "team_id": self.ws.team_id, "user_id": self.ws.bot_user_id,
                "bot_id": self.ws.bot_id, "is_enterprise_install": False}

    def _api_apps_connections_open(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        return {"ok": True, "url": self._socket_url()}

    def _api_chat_postMessage(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        text = _str_or_none(params.get("text"))
        blocks = parse_blocks(params.get("blocks"), "chat.postMessage", known_file=self.ws.has_file)
        if not text and not blocks and not params.get("attachments"):
            raise ApiError("no_text")
        if text and len(text) > POST_MESSAGE_MAX_CHARS:
            text = text[:POST_MESSAGE_MAX_CHARS]  # Slack truncates really long messages
        ts = self.ws.next_ts()
        message = self.ws.bot_message(text or "", blocks, ts)
        thread_ts = _str_or_none(params.get("thread_ts"))
        if thread_ts:
            message["thread_ts"] = thread_ts
        self.ws.store_message(channel_id, message)
        self._echo(channel_id, message)
        return {"ok": True, "channel": channel_id, "ts": ts, "message": copy.deepcopy(message)}

    def _api_chat_update(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        ts = _str_or_none(params.get("ts"))
        if not ts:
            raise ApiError("invalid_arguments")
        message = self.ws.find_message(channel_id, ts)
        if message is None:
            raise ApiError("message_not_found")
        if message.get("bot_id") != self.ws.bot_id:
            raise ApiError("cant_update_message")
        text = _str_or_none(params.get("text"))
        blocks = parse_blocks(params.get("blocks"), "chat.update", known_file=self.ws.has_file)
        if text is None and blocks is None:
            raise ApiError("no_text")
        if text and len(text) > UPDATE_MESSAGE_MAX_CHARS:
            raise ApiError("msg_too_long")
        previous = copy.deepcopy(message)
        if text is not None:
            message["text"] = text
        # Slack: text without blocks removes the blocks, so callers resend blocks every time.
        if blocks is not None:
            message["blocks"] = blocks
        else:
            message.pop("blocks", None)
        message["edited"] = {"user": self.ws.bot_user_id, "ts": self.ws.next_ts()}
        self._echo(channel_id, message, "message_changed", previous)
        return {"ok": True, "channel": channel_id, "ts": ts, "text": message["text"],
                "message": {k: v for k, v in copy.deepcopy(message).items() if k != "ts"}}

    def _api_chat_postEphemeral(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        user = _str_or_none(params.get("user"))
        if not user:
            raise ApiError("user_not_in_channel")
        text = _str_or_none(params.get("text"))
        blocks = parse_blocks(params.get("blocks"), "chat.postEphemeral", known_file=self.ws.has_file)
        if not text and not blocks:
            raise ApiError("no_text")
        ts = self.ws.next_ts()
        self.ws.ephemerals.append({"channel": channel_id, "user": user, "text": text or "", "blocks": blocks,
                                 "ts": ts, "thread_ts": _str_or_none(params.get("thread_ts")),
                                 "source": "chat.postEphemeral"})
        return {"ok": True, "message_ts": ts}

    def _api_chat_delete(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        ts = _str_or_none(params.get("ts")) or ""
        message = self.ws.find_message(channel_id, ts)
        if message is None:
            raise ApiError("message_not_found")
        if message.get("bot_id") != self.ws.bot_id:
            raise ApiError("cant_delete_message")
        self.ws.messages[channel_id].remove(message)
        return {"ok": True, "channel": channel_id, "ts": ts}

    def _api_reactions_add(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        ts = _str_or_none(params.get("timestamp")) or ""
        name = _str_or_none(params.get("name"))
        if not name:
            raise ApiError("invalid_name")
        message = self.ws.find_message(channel_id, ts)
        if message is None:
            raise ApiError("message_not_found")
        reactions = message.setdefault("reactions", [])
        entry = next((r for r in reactions if r["name"] == name), None)
        if entry is not None and self.ws.bot_user_id in entry["users"]:
            raise ApiError("already_reacted")
        if entry is None:
            entry = {"name": name, "users": [], "count": 0}
            reactions.append(entry)
        entry["users"].append(self.ws.bot_user_id)
        entry["count"] += 1
        self.ws.reactions.append({"channel": channel_id, "ts": ts, "name": name})
        return {"ok": True}

    def _api_conversations_history(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        limit = _int(params.get("limit"), 100)
        top = [m for m in self.ws.messages.get(channel_id, []) if m.get("thread_ts") in (None, m["ts"])]
        newest_first = list(reversed(top))[:limit]
        return {"ok": True, "messages": copy.deepcopy(newest_first), "has_more": len(top) > limit,
                "pin_count": 0, "response_metadata": {"next_cursor": ""}}

    def _api_conversations_replies(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        ts = _str_or_none(params.get("ts")) or ""
        if self.ws.find_message(channel_id, ts) is None:
            raise ApiError("thread_not_found")
        limit = _int(params.get("limit"), 1000)
        thread = [m for m in self.ws.messages.get(channel_id, []) if m["ts"] == ts or m.get("thread_ts") == ts]
        return {"ok": True, "messages": copy.deepcopy(thread[:limit]), "has_more": len(thread) > limit,
                "response_metadata": {"next_cursor": ""}}

    def _api_conversations_info(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        channel = self.ws.channels[channel_id]
        return {"ok": True, "channel": {"id": channel_id, "name": channel["name"], "is_im": channel["is_im"],
                                        "is_channel": not channel["is_im"], "is_member": True}}

    def _api_files_getUploadURLExternal(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        filename = _str_or_none(params.get("filename"))
        length = _int(params.get("length"), 0)
        if not filename or length <= 0:
            raise ApiError("missing_argument" if filename else "invalid_arguments")
        file_id = f"F{secrets.token_hex(5).upper()}"
        key = secrets.token_urlsafe(12)
        self.ws.upload_keys[key] = file_id
        self.ws.files[file_id] = UploadedFile(id=file_id, filename=filename, title=filename, data=b"", channel_id=None,
                                            thread_ts=None, initial_comment=None, completed=False, length=length,
                                            alt_txt=_str_or_none(params.get("alt_txt")))
        return {"ok": True, "upload_url": f"{self.ws.base_url()}upload/v1/{key}", "file_id": file_id}

    def _api_files_completeUploadExternal(self, params: dict[str, Any],
                                          files: dict[str, bytes]) -> dict[str, Any]:
        raw = params.get("files")
        try:
            entries = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise ApiError("invalid_arguments") from None
        if not isinstance(entries, list) or not entries:
            raise ApiError("invalid_arguments")
        chosen: list[tuple[UploadedFile, dict[str, Any]]] = []
        for entry in entries:
            upload = self.ws.files.get(str(entry.get("id"))) if isinstance(entry, dict) else None
            # Slack discards uploads never filled, and completes a file only once.
            # ASSUMPTION: both are answered file_not_found.
            if upload is None or not upload.uploaded or upload.completed:
                raise ApiError("file_not_found")
            chosen.append((upload, entry))
        channel_value = params.get("channel_id") or (str(params.get("channels") or "").split(",")[0] or None)
        channel_id = None
        if channel_value:
            channel_id = self.ws.resolve_channel(channel_value)
            if channel_id is None:
                raise ApiError("channel_not_found")
        thread_ts = _str_or_none(params.get("thread_ts"))
        comment = _str_or_none(params.get("initial_comment"))
        for upload, entry in chosen:
            upload.completed = True
            upload.title = str(entry.get("title") or upload.filename)
            upload.channel_id, upload.thread_ts, upload.initial_comment = channel_id, thread_ts, comment
        if channel_id is not None:
            # Shared as one message from the bot, in the thread when thread_ts is given.
            ts = self.ws.next_ts()
            message = self.ws.bot_message(comment or "", None, ts)
            message["files"] = [self.ws.file_object(u) for u, _ in chosen]
            message["upload"] = True
            if thread_ts:
                message["thread_ts"] = thread_ts
            for upload, _ in chosen:
                upload.message_ts = ts
            self.ws.store_message(channel_id, message)
            self._echo(channel_id, message, "file_share")
        # Like Slack: no message ts in the answer (shares happen asynchronously).
        return {"ok": True, "files": [{"id": u.id, "title": u.title} for u, _ in chosen]}

    def _api_files_info(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        upload = self.ws.files.get(str(params.get("file")))
        if upload is None or not upload.completed:
            raise ApiError("file_not_found")
        return {"ok": True, "file": self.ws.file_object(upload)}

    def _require_channel(self, params: dict[str, Any]) -> str:
        value = params.get("channel")
        if not value:
            raise ApiError("channel_not_found")
        channel_id = self.ws.resolve_channel(value)
        if channel_id is None:
            raise ApiError("channel_not_found")
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
        with self.ws.changed:
            file_id = self.ws.upload_keys.get(key)
            upload = self.ws.files.get(file_id or "")
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
        blocks: list[Any] | None = None
        try:
            blocks = parse_blocks(body.get("blocks") if isinstance(body, dict) else None, "response_url")
        except ApiError as exc:
            blocks_error = exc.error
        with self.ws.changed:
            rurl = self.ws.response_urls.get(secret)
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
                self.ws.apply_response_url(rurl, body if isinstance(body, dict) else {}, blocks)
            self.ws.response_url_posts.append({"url": str(request.url), "body": body, "status": status,
                                             "use": rurl.uses if rurl else 0, "at": time.time()})
            self.ws.changed.notify_all()
        return web.Response(status=status, text=text, content_type="text/plain")

    async def _handle_private_file(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization", "") != f"Bearer {self.options.bot_token}":
            return web.Response(status=403, text="forbidden")
        return file_response(self.ws.uploaded_file(request.match_info["file_id"]))


def file_response(upload: UploadedFile | None) -> web.StreamResponse:
    """An uploaded file's bytes, or 404 while it has none."""
    if upload is None:
        return web.Response(status=404, text="file not found")
    mimetype = mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
    return web.Response(body=upload.data, content_type=mimetype)


_DROPPED = "Dropped"


def _logged_status(response: web.Response) -> int:
    """Status for the call log: 0 when the connection was dropped without an answer."""
    return 0 if response.reason == _DROPPED else response.status


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


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default

