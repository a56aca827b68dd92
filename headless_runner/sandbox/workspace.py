"""The fake Slack's workspace model: one team with one app installed (the bot), its channels,
messages, threads, ephemeral messages, uploaded files, reactions and response URLs.

No networking here: the Web API (web_api.py), the Socket Mode transport (socket_mode.py) and
the page (page.py) read and change this state under its one lock (`lock`, with `changed`
notified on every change so that waiters re-check).
"""

from __future__ import annotations

import copy
import itertools
import mimetypes
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESPONSE_URL_MAX_USES = 5
RESPONSE_URL_TTL_S = 30 * 60

_CHANNEL_ID_RE = re.compile(r"^[CDG][A-Z0-9]+$")


@dataclass
class Options:
    """The fake's tunables, shared by its parts and read live (a test may change one on a
    running server, e.g. `max_connections`)."""

    bot_token: str
    app_token: str
    ack_timeout_s: float
    redelivery_delays_s: tuple[float, ...]
    ping_interval_s: float
    max_connections: int
    # When the bot posts, Slack echoes its own message back as an event; the agent must
    # ignore it (self-event filter). Tests of raw Socket Mode turn the echo off.
    echo_bot_messages: bool
    ticket_ttl_s: float
    disconnect_grace_s: float
    # Slack's rate tiers (web_api.METHOD_RATE_LIMITS). Tests that run Slack's clock faster
    # shrink every window by `rate_window_scale` (0.1: a one-minute window lasts 6 s) and pace
    # the agent by the same factor; `enforce_rate_limits=False` is for tests that burst on
    # purpose and are not about the limits.
    enforce_rate_limits: bool
    rate_window_scale: float


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
class ResponseUrl:
    id: str
    created_at: float
    channel_id: str
    user_id: str
    uses: int = 0
    message_ts: str | None = None  # the message holding the button, for block_actions


class Workspace:
    """The state of one sandbox workspace, guarded by `lock`. The lookups and changes that
    the Web API makes inside one locked request (find_message, store_message, resolve_channel,
    ...) expect the caller to hold `lock`; observation methods and payload builders take it
    themselves."""

    def __init__(self, base_url: Callable[[], str], *, team_id: str = "T0SANDBOX",
                 team_domain: str = "sandbox") -> None:
        self.base_url = base_url  # the server's address is known only once it listens
        self.team_id = team_id
        self.team_domain = team_domain
        self.app_id = "A0SANDBOX"
        self.bot_id = "B0SANDBOX"
        self.bot_user_id = "U0SANDBOT"
        self.bot_name = "blender"

        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.ids = itertools.count(1)
        self._last_ts_us = 0

        self.channels: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.files: dict[str, UploadedFile] = {}
        self.upload_keys: dict[str, str] = {}  # upload url key -> file id
        self.response_urls: dict[str, ResponseUrl] = {}
        self.response_url_posts: list[dict[str, Any]] = []
        self.reactions: list[dict[str, Any]] = []
        # AI-app surfaces (ai_apps.py): open and closed streams, home tabs, assistant threads.
        self.streams: dict[tuple[str, str], dict[str, Any]] = {}
        # ASSUMPTION: a streamed message stays open about five minutes after it starts (seen
        # by others as ~306 s); appends do not extend it, later calls are refused.
        self.stream_lifetime_s = 300.0
        self.home_views: dict[str, dict[str, Any]] = {}
        self.suggested_prompts: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        for channel_id, name, is_im in (("C0GENERAL", "general", False), ("C0RENDERS", "renders", False),
                                         ("D0SANDBOX", "blender", True)):
            self._add_channel(channel_id, name, is_im)

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    # ------------------------------------------------------------------ channels and messages

    def add_channel(self, channel_id: str, name: str, *, is_im: bool = False) -> None:
        with self.lock:
            self._add_channel(channel_id, name, is_im)

    def _add_channel(self, channel_id: str, name: str, is_im: bool) -> dict[str, Any]:
        channel = {"id": channel_id, "name": name, "is_im": is_im}
        self.channels[channel_id] = channel
        self.messages.setdefault(channel_id, [])
        return channel

    def ensure_channel(self, channel_id: str) -> dict[str, Any]:
        channel = self.channels.get(channel_id)
        if channel is None:
            channel = self._add_channel(channel_id, channel_id.lower(), channel_id.startswith("D"))
        return channel

    def resolve_channel(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return None
        name = value.lstrip("#")
        for channel in self.channels.values():
            if channel["name"] == name or channel["id"] == value:
                return str(channel["id"])
        if _CHANNEL_ID_RE.match(value):
            self.ensure_channel(value)
            return value
        return None

    def channel_key(self, value: Any) -> str:
        """The channel a postMessage goes to, by id, without creating anything."""
        if not isinstance(value, str):
            return ""
        name = value.lstrip("#")
        for channel in self.channels.values():
            if channel["id"] == value or channel["name"] == name:
                return str(channel["id"])
        return value

    def next_ts(self) -> str:
        # Strictly increasing, "%d.%06d", like Slack's message timestamps.
        with self.lock:
            now_us = int(time.time() * 1_000_000)
            self._last_ts_us = max(now_us, self._last_ts_us + 1)
            return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    def store_message(self, channel_id: str, message: dict[str, Any]) -> None:
        self.messages.setdefault(channel_id, []).append(message)
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != message["ts"]:
            parent = self.find_message(channel_id, thread_ts)
            if parent is not None:
                parent["thread_ts"] = thread_ts
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["latest_reply"] = message["ts"]
        self.changed.notify_all()

    def find_message(self, channel_id: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self.messages.get(channel_id, []) if m["ts"] == ts), None)

    def bot_message(self, text: str, blocks: list[Any] | None, ts: str) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "message", "user": self.bot_user_id, "bot_id": self.bot_id,
                                   "app_id": self.app_id, "text": text, "ts": ts, "team": self.team_id,
                                   "bot_profile": {"id": self.bot_id, "app_id": self.app_id,
                                                   "name": self.bot_name, "team_id": self.team_id}}
        if blocks:
            message["blocks"] = blocks
        return message

    def user_message(self, channel_id: str, user_id: str, text: str, thread_ts: str | None) -> dict[str, Any]:
        """A human's message, stored as Slack stores it."""
        ts = self.next_ts()
        message: dict[str, Any] = {"type": "message", "user": user_id, "text": text, "ts": ts,
                                   "team": self.team_id, "client_msg_id": str(uuid.uuid4()),
                                   "blocks": [_rich_text_block(text)]}
        if thread_ts:
            message["thread_ts"] = thread_ts
        self.store_message(channel_id, message)
        return message

    # ------------------------------------------------------------------ observation (copies)

    def channel_messages(self, channel_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self.messages.get(channel_id, []))

    def thread_messages(self, channel_id: str, thread_ts: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(m) for m in self.messages.get(channel_id, [])
                    if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts]

    def snapshot(self) -> dict[str, Any]:
        """Team, bot, channels with their messages (and page links for files), ephemerals."""
        with self.lock:
            channels = []
            for channel in self.channels.values():
                messages = copy.deepcopy(self.messages.get(channel["id"], []))
                for message in messages:
                    for f in message.get("files", []):
                        f["sandbox_url"] = f"/sandbox/files/{f['id']}"
                channels.append({**channel, "messages": messages})
            return {"team": {"id": self.team_id, "domain": self.team_domain},
                    "bot": {"user_id": self.bot_user_id, "bot_id": self.bot_id, "name": self.bot_name},
                    "channels": channels, "ephemerals": copy.deepcopy(self.ephemerals),
                    "home_views": copy.deepcopy(self.home_views),
                    "suggested_prompts": copy.deepcopy(self.suggested_prompts[-1:])}

    # ------------------------------------------------------------------ files

    def file_object(self, upload: UploadedFile) -> dict[str, Any]:
        mimetype = mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
        obj: dict[str, Any] = {"id": upload.id, "name": upload.filename, "title": upload.title,
                               "mimetype": mimetype, "filetype": Path(upload.filename).suffix.lstrip("."),
                               "size": len(upload.data), "user": self.bot_user_id,
                               "url_private": f"{self.base_url()}files-pri/{upload.id}/{upload.filename}",
                               "shares": {}}
        if upload.channel_id and upload.message_ts:
            kind = "private" if self.channels.get(upload.channel_id, {}).get("is_im") else "public"
            share: dict[str, Any] = {"ts": upload.message_ts}
            if upload.thread_ts:
                share["thread_ts"] = upload.thread_ts
            obj["shares"] = {kind: {upload.channel_id: [share]}}
        return obj

    def has_file(self, file_id: str) -> bool:
        """A completed upload with this id (what a `slack_file` image may name)."""
        upload = self.files.get(file_id)
        return upload is not None and upload.completed

    def uploaded_file(self, file_id: str) -> UploadedFile | None:
        """The file if its bytes have arrived, else None."""
        with self.lock:
            upload = self.files.get(file_id)
        return upload if upload is not None and upload.uploaded else None

    # ------------------------------------------------------------------ replies to commands and buttons

    def new_response_url(self, kind: str, channel_id: str, user_id: str, message_ts: str | None = None) -> str:
        rid = str(next(self.ids) + 10_000_000)
        secret = secrets.token_urlsafe(18)
        self.response_urls[secret] = ResponseUrl(secret, time.monotonic(), channel_id, user_id,
                                                 message_ts=message_ts)
        return f"{self.base_url()}{kind}/{self.team_id}/{rid}/{secret}"

    def apply_command_response(self, command: dict[str, Any], response: dict[str, Any]) -> None:
        """An ack payload is the immediate reply to a slash command, as Slack shows it."""
        channel_id = str(command["channel_id"])
        text = str(response.get("text", ""))
        blocks = response.get("blocks")
        with self.changed:
            self.ensure_channel(channel_id)
            if response.get("response_type") == "in_channel":
                # The user's invocation becomes visible in the channel, followed by the reply.
                self.store_message(channel_id, {"type": "message", "user": command["user_id"],
                                                 "text": f"{command['command']} {command['text']}".strip(),
                                                 "ts": self.next_ts(), "team": self.team_id,
                                                 "is_slash_command": True})
                if text or blocks:
                    self.store_message(channel_id, self.bot_message(text, blocks, self.next_ts()))
            elif text or blocks:
                self.ephemerals.append({"channel": channel_id, "user": command["user_id"], "text": text,
                                        "blocks": blocks, "ts": self.next_ts(), "source": "ack"})
            self.changed.notify_all()

    def apply_response_url(self, rurl: ResponseUrl, body: dict[str, Any], blocks: list[Any] | None) -> None:
        """A post to a response_url, shown as Slack shows it (`blocks` already validated)."""
        text = str(body.get("text", ""))
        original = self.find_message(rurl.channel_id, rurl.message_ts) if rurl.message_ts else None
        if body.get("delete_original") and original is not None and original.get("bot_id") == self.bot_id:
            self.messages[rurl.channel_id].remove(original)
            return
        if body.get("replace_original") and original is not None and original.get("bot_id") == self.bot_id:
            original["text"] = text
            if blocks is not None:
                original["blocks"] = blocks
            else:
                original.pop("blocks", None)
            return
        if body.get("response_type") == "in_channel":
            message = self.bot_message(text, blocks, self.next_ts())
            if body.get("thread_ts"):
                message["thread_ts"] = str(body["thread_ts"])
            self.store_message(rurl.channel_id, message)
        else:
            self.ephemerals.append({"channel": rurl.channel_id, "user": rurl.user_id, "text": text,
                                    "blocks": blocks, "ts": self.next_ts(), "source": "response_url"})

    # ------------------------------------------------------------------ payloads Slack sends to the app

    def slash_command_payload(self, command: str, text: str, *, user_id: str, channel_id: str,
                              user_name: str) -> dict[str, Any]:
        with self.lock:
            self.ensure_channel(channel_id)
            rurl = self.new_response_url("commands", channel_id, user_id)
            return {
                "token": "verification-token", "team_id": self.team_id, "team_domain": self.team_domain,
                "channel_id": channel_id, "channel_name": self.channels[channel_id]["name"],
                "user_id": user_id, "user_name": user_name, "command": command, "text": text,
                "api_app_id": self.app_id, "is_enterprise_install": "false",
                "response_url": rurl,
                "trigger_id": f"{next(self.ids)}.{secrets.token_hex(6)}.{secrets.token_hex(16)}",
            }

    def event_callback(self, event: dict[str, Any], event_id: str | None) -> tuple[str, dict[str, Any]]:
        """An Events API event wrapped as Slack wraps it; returns (event_id, payload)."""
        event = dict(event)
        with self.lock:
            ts = event.get("ts") or self.next_ts()
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
        return event_id, payload

    def block_actions_payload(self, channel_id: str, message_ts: str, action_id: str, *, user_id: str,
                              value: str | None) -> dict[str, Any]:
        """A user clicks the button `action_id` of a stored message (KeyError: no such button)."""
        with self.lock:
            message = self.find_message(channel_id, message_ts)
            if message is None:
                raise KeyError(f"no message {message_ts} in {channel_id}")
            button = _find_action(message.get("blocks") or [], action_id)
            if button is None:
                raise KeyError(f"message {message_ts} has no action {action_id!r}")
            rurl = self.new_response_url("actions", channel_id, user_id, message_ts=message_ts)
            action_ts = self.next_ts()
            return {
                "type": "block_actions",
                "user": {"id": user_id, "username": "sandbox-user", "team_id": self.team_id},
                "api_app_id": self.app_id, "token": "verification-token",
                "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id,
                              "is_ephemeral": False},
                "trigger_id": f"{next(self.ids)}.{secrets.token_hex(6)}",
                "team": {"id": self.team_id, "domain": self.team_domain},
                "channel": {"id": channel_id, "name": self.channels.get(channel_id, {}).get("name", channel_id)},
                "message": copy.deepcopy(message),
                "response_url": rurl,
                "actions": [{"action_id": action_id, "block_id": button.get("_block_id", ""),
                             "value": value if value is not None else button.get("value", ""),
                             "type": button.get("type", "button"), "action_ts": action_ts}],
            }

    def echo_event(self, channel_id: str, message: dict[str, Any], subtype: str | None = None,
                   previous: dict[str, Any] | None = None) -> dict[str, Any]:
        """The event Slack sends back to the app for the bot's own post (or edit)."""
        channel = self.channels.get(channel_id, {})
        event: dict[str, Any]
        if subtype == "message_changed":
            event = {"type": "message", "subtype": "message_changed", "hidden": True, "channel": channel_id,
                     "message": copy.deepcopy(message), "previous_message": copy.deepcopy(previous),
                     "ts": self.next_ts()}
        else:
            event = dict(copy.deepcopy(message), channel=channel_id)
            event["subtype"] = subtype or "bot_message"
        event["event_ts"] = event["ts"]
        event["channel_type"] = "im" if channel.get("is_im") else "channel"
        return event


def _find_action(blocks: list[Any], action_id: str) -> dict[str, Any] | None:
    for block in blocks:
        candidates = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            candidates.append(block["accessory"])
        if block.get("type") == "carousel":  # the buttons of its cards
            candidates += [a for card in block.get("elements") or [] if isinstance(card, dict)
                           for a in card.get("actions") or []]
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return dict(element, _block_id=block.get("block_id", ""))
    return None


def _rich_text_block(text: str) -> dict[str, Any]:
    return {"type": "rich_text", "block_id": secrets.token_hex(2),
            "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}]}
