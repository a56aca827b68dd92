"""Block Kit as Slack checks it: the documented message and block limits, then slack_sdk's
own block models, worded the way Slack words its `invalid_blocks` errors.

Used by the fake Web API (chat.postMessage, chat.update, chat.postEphemeral) and by its
response_url handler. docs/TESTING.md lists where each limit comes from.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

# Slack's documented limits (docs/TESTING.md has the sources).
MAX_BLOCKS = 50
SECTION_TEXT_MAX = 3_000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_TEXT_MAX = 2_000
HEADER_TEXT_MAX = 150
BLOCK_ID_MAX = 255
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25


@dataclass(frozen=True)
class Refusal:
    """A payload the fake refused as Slack would (invalid_blocks, a bad view, bad chunks)."""

    method: str
    error: str
    errors: tuple[str, ...]
    at: float


# Every refusal of every fake server in this process, for the test suite's check that the
# agent never sends a payload Slack would refuse (tests/conftest.py reads it after each test).
_refusals: list[Refusal] = []
_refusals_lock = threading.Lock()


def record_refusal(method: str, error: str, errors: list[str]) -> None:
    with _refusals_lock:
        _refusals.append(Refusal(method, error, tuple(errors), time.time()))


def refusals_since(index: int) -> tuple[int, list[Refusal]]:
    """The refusals recorded after position `index`, and the position to ask from next."""
    with _refusals_lock:
        return len(_refusals), list(_refusals[index:])


class ApiError(Exception):
    """A Web API error answer: `{"ok": false, "error": error, **extra}`."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra  # more fields of the JSON answer (invalid_blocks: errors, response_metadata)



def slack_file_errors(blocks: list[Any], known: Callable[[str], bool], at: str = "/blocks") -> list[str]:
    """Image elements (`slack_file: {"id": ...}`) that name no uploaded file of the workspace.
    ASSUMPTION: Slack's wording; it refuses such blocks as invalid_blocks."""
    errors: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            ref = node.get("slack_file")
            if isinstance(ref, dict) and ref.get("id") is not None and not known(str(ref["id"])):
                errors.append(f"invalid slack_file id [json-pointer:{where}/slack_file/id]")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(blocks, at)
    return errors


def parse_blocks(value: Any, method: str = "message", *,
                 known_file: Callable[[str], bool] | None = None) -> list[Any] | None:
    """The message's blocks, or ApiError exactly as Slack refuses them."""
    if value is None or value == "":
        return None
    if isinstance(value, str):  # form bodies carry blocks as a JSON string
        try:
            value = json.loads(value)
        except ValueError:
            raise ApiError("invalid_blocks_format") from None
    if not isinstance(value, list):
        raise ApiError("invalid_blocks_format")
    errors = block_kit_errors(value)
    if not errors and known_file is not None:
        errors = slack_file_errors(value, known_file)
    if errors:
        record_refusal(method, "invalid_blocks", errors)
        raise ApiError("invalid_blocks", errors=errors,
                        response_metadata={"messages": [f"[ERROR] {e}" for e in errors]})
    return value


def block_kit_errors(blocks: list[Any], *, most: int = MAX_BLOCKS) -> list[str]:
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
    if len(blocks) > most:
        errors.append(f"no more than {most} items allowed [json-pointer:/blocks]")
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
