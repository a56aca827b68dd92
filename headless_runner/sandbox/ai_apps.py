"""The fake Web API's methods for Slack's AI-app surfaces: streamed messages
(chat.startStream / appendStream / stopStream with markdown, task_update, plan_update and
blocks chunks), the App Home tab (views.publish) and the agent Messages tab
(assistant.threads.setSuggestedPrompts, assistant.threads.setStatus).

`AiAppMethods` is mixed into `WebApi`: each `_api_<method>` runs under the workspace lock and
answers Slack's JSON body or raises `ApiError`. The rules and where they come from are in
docs/TESTING.md ("AI-app methods"); what Slack does not document is marked ASSUMPTION.
"""

from __future__ import annotations

import copy
import json
import time
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.messages.chunk import Chunk, TaskUpdateChunk
from slack_sdk.models.views import View

from .block_kit import ApiError, block_kit_errors, parse_blocks, record_refusal, slack_file_errors

if TYPE_CHECKING:
    from .workspace import Options, Workspace

STREAM_MARKDOWN_MAX = 12_000  # markdown_text of one call (start, append or stop), per chunk too
TASK_STATUSES = ("pending", "in_progress", "complete", "error")
TASK_TITLE_MAX = 256  # ASSUMPTION: titles are seen capped near 256 characters
VIEW_BLOCKS_MAX = 100  # a home tab view holds up to 100 blocks
SUGGESTED_PROMPTS_MAX = 4
LOADING_MESSAGES_MAX = 10


def _json_param(value: Any, error: str) -> Any:
    """Slack takes arrays and objects as JSON strings in form bodies, as JSON in JSON bodies."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise ApiError(error) from None
    return value


class AiAppMethods:
    """Streaming, App Home and assistant-thread methods of the fake Web API."""

    ws: Workspace
    options: Options

    if TYPE_CHECKING:
        def _require_channel(self, params: dict[str, Any]) -> str: ...
        def _echo(self, channel_id: str, message: dict[str, Any], subtype: str | None = None,
                  previous: dict[str, Any] | None = None) -> None: ...

    # ------------------------------------------------------------------ streaming

    def _api_chat_startStream(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        thread_ts = str(params.get("thread_ts") or "")
        if not thread_ts:
            # Streamed messages are thread replies only. ASSUMPTION: answered invalid_arguments.
            raise ApiError("invalid_arguments", response_metadata={"messages": ["[ERROR] missing required field: "
                                                                                "thread_ts"]})
        if self.ws.find_message(channel_id, thread_ts) is None:
            raise ApiError("thread_not_found")  # ASSUMPTION: the name for an unknown parent
        if not self.ws.channels[channel_id]["is_im"]:
            # Outside a DM both recipient fields are needed (each error seen from Slack).
            if not params.get("recipient_team_id"):
                raise ApiError("missing_recipient_team_id")
            if not params.get("recipient_user_id"):
                raise ApiError("missing_recipient_user_id")
        mode = params.get("task_display_mode")
        if mode is not None and mode not in ("timeline", "plan"):
            raise ApiError("invalid_arguments")
        ts = self.ws.next_ts()
        message = self.ws.bot_message("", None, ts)
        message.update(thread_ts=thread_ts, streaming=True, chunks=[], task_display_mode=mode or "timeline")
        self._stream_apply(message, params)
        self.ws.store_message(channel_id, message)
        self.ws.streams[(channel_id, ts)] = {"started": time.monotonic(), "state": "streaming",
                                             "recipient_user_id": params.get("recipient_user_id")}
        return {"ok": True, "channel": channel_id, "ts": ts}

    def _api_chat_appendStream(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id, ts, message = self._open_stream(params)
        if not params.get("markdown_text") and not params.get("chunks"):
            raise ApiError("no_text")  # ASSUMPTION: an empty append is refused as a post would be
        self._stream_apply(message, params)
        return {"ok": True, "channel": channel_id, "ts": ts}

    def _api_chat_stopStream(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id, ts, message = self._open_stream(params)
        blocks = parse_blocks(params.get("blocks"), method="chat.stopStream",  # blocks only here
                              known_file=self.ws.has_file)
        self._stream_apply(message, params)
        if blocks is not None:
            message["blocks"] = blocks
        message.pop("streaming", None)
        self.ws.streams[(channel_id, ts)]["state"] = "stopped"
        self._echo(channel_id, message)
        return {"ok": True, "channel": channel_id, "ts": ts, "message": copy.deepcopy(message)}

    def _open_stream(self, params: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        channel_id = self._require_channel(params)
        ts = str(params.get("ts") or "")
        if not ts:
            raise ApiError("invalid_arguments")
        message = self.ws.find_message(channel_id, ts)
        if message is None:
            raise ApiError("message_not_found")
        stream = self.ws.streams.get((channel_id, ts))
        if stream is None or stream["state"] != "streaming":
            raise ApiError("message_not_in_streaming_state")
        if time.monotonic() - stream["started"] > self.ws.stream_lifetime_s:
            stream["state"] = "expired"
            message.pop("streaming", None)
            raise ApiError("message_not_in_streaming_state")
        return channel_id, ts, message

    def _stream_apply(self, message: dict[str, Any], params: dict[str, Any]) -> None:
        """Validate everything first (a refused call changes nothing), then apply it:
        markdown is appended, a task_update replaces title/status and appends details."""
        markdown = params.get("markdown_text")
        if markdown is not None:
            if not isinstance(markdown, str):
                raise ApiError("invalid_arguments")
            if len(markdown) > STREAM_MARKDOWN_MAX:
                raise ApiError("msg_too_long")
        chunks = self._parse_chunks(params.get("chunks"))
        if markdown:
            message["text"] += markdown
        for chunk in chunks:
            kind = chunk["type"]
            if kind == "markdown_text":
                message["text"] += chunk["text"]
            elif kind == "task_update":
                tasks = message["chunks"]
                task = next((t for t in tasks if t["id"] == chunk["id"]), None)
                if task is None:
                    task = {"id": chunk["id"], "title": "", "status": "pending", "details": "", "output": ""}
                    tasks.append(task)
                task["title"], task["status"] = chunk["title"], chunk["status"]
                task["details"] += str(chunk.get("details") or "")
                if chunk.get("output"):
                    task["output"] = str(chunk["output"])
            elif kind == "plan_update":
                message["plan_title"] = chunk["title"]
            elif kind == "blocks":
                message.setdefault("blocks", []).extend(chunk["blocks"])

    def _parse_chunks(self, raw: Any) -> list[dict[str, Any]]:
        if raw is None or raw == "":
            return []
        chunks = _json_param(raw, "invalid_chunks")
        if not isinstance(chunks, list):
            raise ApiError("invalid_chunks")
        errors: list[str] = []
        for i, chunk in enumerate(chunks):
            at = f"/chunks/{i}"
            try:
                parsed = Chunk.parse(chunk) if isinstance(chunk, dict) else None
                if parsed is not None:
                    parsed.to_dict()
            except (TypeError, SlackObjectFormationError):
                parsed = None
            if parsed is None:
                errors.append(f"failed to match all allowed schemas [json-pointer:{at}]")
                continue
            if isinstance(parsed, TaskUpdateChunk):
                if chunk["status"] not in TASK_STATUSES:
                    errors.append(f"must be one of {', '.join(TASK_STATUSES)} [json-pointer:{at}/status]")
                if len(str(chunk["title"])) > TASK_TITLE_MAX:
                    errors.append(f"must be less than {TASK_TITLE_MAX + 1} characters [json-pointer:{at}/title]")
            if chunk["type"] == "markdown_text" and len(str(chunk["text"])) > STREAM_MARKDOWN_MAX:
                raise ApiError("msg_too_long")
            if chunk["type"] == "blocks":
                found = block_kit_errors(list(chunk["blocks"])) if isinstance(chunk["blocks"], list) else \
                    ["failed to match all allowed schemas"]
                errors.extend(e.replace("[json-pointer:/blocks", f"[json-pointer:{at}/blocks") for e in found)
        if errors:
            record_refusal("chunks", "invalid_chunks", errors)
            raise ApiError("invalid_chunks", errors=errors,
                           response_metadata={"messages": [f"[ERROR] {e}" for e in errors]})
        return [c for c in chunks if isinstance(c, dict)]

    # ------------------------------------------------------------------ App Home

    def _api_views_publish(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        user_id = str(params.get("user_id") or "")
        if not user_id:
            raise ApiError("invalid_arguments")
        view = _json_param(params.get("view"), "invalid_arguments")
        if not isinstance(view, dict):
            raise ApiError("invalid_arguments")
        errors: list[str] = []
        if view.get("type") != "home":
            errors.append("must be home [json-pointer:/view/type]")  # views.publish is the home tab only
        blocks = view.get("blocks")
        if not isinstance(blocks, list):
            errors.append("failed to match all allowed schemas [json-pointer:/view/blocks]")
        else:
            found = block_kit_errors(blocks, most=VIEW_BLOCKS_MAX) or slack_file_errors(blocks, self.ws.has_file)
            errors.extend(e.replace("[json-pointer:/blocks", "[json-pointer:/view/blocks") for e in found)
        if not errors:
            try:
                View(**view).to_dict()
            except (TypeError, SlackObjectFormationError) as exc:
                errors.append(f"{exc} [json-pointer:/view]")
        if errors:
            # Slack answers a bad view invalid_arguments with the problems in response_metadata.
            record_refusal("views.publish", "invalid_arguments", errors)
            raise ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {e}" for e in errors]})
        previous = self.ws.home_views.get(user_id)
        if params.get("hash") and previous is not None and params["hash"] != previous["hash"]:
            raise ApiError("hash_conflict")
        stored = {**copy.deepcopy(view), "id": previous["id"] if previous else f"V{next(self.ws.ids):09d}",
                  "team_id": self.ws.team_id, "app_id": self.ws.app_id, "bot_id": self.ws.bot_id,
                  "hash": f"{time.time():.6f}.{next(self.ws.ids)}", "user_id": user_id}
        self.ws.home_views[user_id] = stored
        return {"ok": True, "view": copy.deepcopy(stored)}

    # ------------------------------------------------------------------ assistant threads

    def _api_assistant_threads_setSuggestedPrompts(self, params: dict[str, Any],
                                                   files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = str(params.get("channel_id") or "")
        if not channel_id or self.ws.resolve_channel(channel_id) is None:
            raise ApiError("channel_not_found")
        prompts = _json_param(params.get("prompts"), "invalid_arguments")
        if not isinstance(prompts, list) or not prompts or len(prompts) > SUGGESTED_PROMPTS_MAX:
            raise ApiError("invalid_arguments")
        for p in prompts:
            if not isinstance(p, dict) or not str(p.get("title") or "") or not str(p.get("message") or ""):
                raise ApiError("invalid_arguments")
        entry = {"channel_id": channel_id, "thread_ts": params.get("thread_ts"), "title": params.get("title"),
                 "prompts": copy.deepcopy(prompts)}
        self.ws.suggested_prompts.append(entry)
        return {"ok": True}

    def _api_assistant_threads_setStatus(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        channel_id = str(params.get("channel_id") or "")
        if not channel_id or self.ws.resolve_channel(channel_id) is None:
            raise ApiError("channel_not_found")
        if not params.get("thread_ts") or params.get("status") is None:
            raise ApiError("invalid_arguments")
        loading = _json_param(params.get("loading_messages"), "invalid_arguments")
        if loading is not None and (not isinstance(loading, list) or len(loading) > LOADING_MESSAGES_MAX):
            raise ApiError("invalid_arguments")
        self.ws.statuses.append({"channel_id": channel_id, "thread_ts": params["thread_ts"],
                                 "status": params["status"], "loading_messages": loading})
        return {"ok": True}
