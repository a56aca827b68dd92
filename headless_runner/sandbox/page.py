"""The sandbox's web page: a small Slack-like client in the browser (static/index.html) that
shows the workspace and lets a person type slash commands, mention the bot, reply in
threads and click buttons. What the page sends goes through the same paths as the tests'
controls (`send_slash_command`, `post_user_message`, `click_button`), so the agent sees
exactly what Slack would send it.

The command endpoint runs jobs with whatever LLM keys the environment holds, so it accepts
only the page's own requests: a JSON content type (a cross-site form or `text/plain` fetch
cannot send one without a CORS preflight, which this server never grants), the per-start
token embedded in the page (`X-Sandbox-Token`), a same-origin `Origin` / `Sec-Fetch-Site`
when the browser sends them, and a loopback peer. The server itself binds to loopback.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from .web_api import file_response

if TYPE_CHECKING:
    from .slack_server import FakeSlackServer

STATIC_DIR = Path(__file__).with_name("static")
TOKEN_HEADER = "X-Sandbox-Token"  # noqa: S105 - a header name, not a secret
TOKEN_PLACEHOLDER = "{{SANDBOX_TOKEN}}"  # noqa: S105 - where the page gets its token


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SandboxPage:
    def __init__(self, server: FakeSlackServer) -> None:
        self.server = server
        self.token = secrets.token_urlsafe(32)  # new for every server: a page from an old start is refused

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/health", self._handle_health)
        app.router.add_get("/", self._handle_index)
        app.router.add_get("/sandbox/state", self._handle_state)
        app.router.add_get("/sandbox/files/{file_id}", self._handle_sandbox_file)
        app.router.add_post("/sandbox/command", self._handle_sandbox_command)

    async def _handle_health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True, "connections": self.server.connection_count})

    async def _handle_index(self, request: web.Request) -> web.StreamResponse:
        page = (STATIC_DIR / "index.html").read_text(encoding="utf-8").replace(TOKEN_PLACEHOLDER, self.token)
        # No framing by other sites, no caching of the token.
        return web.Response(text=page, content_type="text/html",
                            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                     "Content-Security-Policy": "frame-ancestors 'none'"})

    def refusal(self, request: web.Request) -> str:
        """Why a command request is not the page's own ("" when it is)."""
        if not is_loopback(request.remote or ""):
            return "not_loopback"
        if request.content_type != "application/json":
            return "json_only"
        own = {f"http://{self.server.host}:{self.server.port}", f"http://localhost:{self.server.port}",
               f"http://127.0.0.1:{self.server.port}"}
        origin = request.headers.get("Origin")
        if origin is not None and origin not in own:
            return "cross_origin"
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return "cross_origin"
        if not hmac.compare_digest(request.headers.get(TOKEN_HEADER, "").encode(), self.token.encode()):
            return "bad_token"
        return ""

    async def _handle_sandbox_file(self, request: web.Request) -> web.StreamResponse:
        return file_response(self.server.workspace.uploaded_file(request.match_info["file_id"]))

    async def _handle_state(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.server.sandbox_state())

    async def _handle_sandbox_command(self, request: web.Request) -> web.StreamResponse:
        server = self.server
        refused = self.refusal(request)
        if refused:
            return web.json_response({"ok": False, "error": refused}, status=415 if refused == "json_only" else 403)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"ok": False, "error": "invalid_json"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"ok": False, "error": "invalid_json"}, status=400)
        channel_id = str(body.get("channel_id") or "C0GENERAL")
        user_id = str(body.get("user_id") or "U0SANDUSER")
        click = body.get("click")
        if isinstance(click, dict):
            try:
                value = click.get("value")
                envelope_id = server.click_button(str(click.get("channel_id") or channel_id),
                                                  str(click.get("message_ts")), str(click.get("action_id")),
                                                  user_id=user_id, value=None if value is None else str(value))
            except KeyError as exc:
                return web.json_response({"ok": False, "error": str(exc)}, status=404)
            return web.json_response({"ok": True, "envelope_id": envelope_id})
        home = body.get("open_home")
        if home in ("home", "messages"):  # the user opens the app's Home or Messages tab
            event_id = server.send_event({"type": "app_home_opened", "user": user_id, "channel": "D0SANDBOX",
                                          "tab": home})
            return web.json_response({"ok": True, "event_id": event_id})
        view_click = body.get("view_click")
        if isinstance(view_click, dict):  # a button of the published home view
            envelope_id = server.send_interactive({
                "type": "block_actions", "user": {"id": user_id, "username": "sandbox-user"},
                "team": {"id": server.team_id}, "container": {"type": "view"},
                "actions": [{"action_id": str(view_click.get("action_id")), "value": str(view_click.get("value", "")),
                             "type": "button"}]})
            return web.json_response({"ok": True, "envelope_id": envelope_id})
        text = str(body.get("text", "")).strip()
        thread_ts = body.get("thread_ts") or None
        if not text:
            return web.json_response({"ok": False, "error": "no_text"}, status=400)
        # Display name of the bot, typed as "@blender", becomes a real mention like Slack's composer.
        text = text.replace(f"@{server.bot_name}", f"<@{server.bot_user_id}>")
        if text.startswith("/") and not thread_ts:
            command, _, rest = text.partition(" ")
            envelope_id = server.send_slash_command(command, rest.strip(), user_id=user_id, channel_id=channel_id,
                                                    user_name=str(body.get("user_name") or "sandbox-user"))
            return web.json_response({"ok": True, "envelope_id": envelope_id})
        ts = server.post_user_message(channel_id, user_id, text, thread_ts=thread_ts)
        return web.json_response({"ok": True, "ts": ts})
