"""A fake OpenAI-compatible server on 127.0.0.1 for the provider layer's tests.

Speaks enough of the wire format for the real `openai` SDK: GET /v1/models, POST
/v1/chat/completions (plain, json_schema, json_object, tool calls, SSE streaming).
Personas reproduce each provider's quirks (docs/PROVIDER_RULES.md):

- "openai":   object-shaped errors, x-request-id, reasoning models reject max_tokens and
              temperature != 1, a bad key gets a 401 that echoes the key (as OpenAI does);
              a `json_schema` (or tool) with `strict: true` that strict mode does not support
              is a 400 naming the schema and where the problem is (`strict_schema_error`).
- "routellm": `route-llm` is answered by a concrete model; out of credits is a 400 with
              Abacus's own body; strict tools are a 400.
- "lmstudio": no auth; json_object is a 400 with a plain-string error; an unknown model or
              nothing loaded is the object-shaped 404 "No models loaded"; tool_calls: [] always.
              As with JIT loading, /v1/models lists every download, an embedding model
              first; the native GET /api/v0/models says which is an "llm" and which is
              "loaded" (`native_api = False`: an older server, 404 there).
- "llamacpp": only {"type": "json_object", "schema": ...}; json_schema is a 500.

Tests script answers with `fake.script(Reply...)` (consumed one per chat call, then the
default answer) and read `fake.calls` (path, lower-cased headers, JSON body).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OUT_OF_CREDITS = {"success": False, "error": "You have no remaining credits to use the LLM apis."}
NO_MODELS_LOADED = {"error": {"message": "No models loaded. Please load a model in the developer page or use the "
                              "'lms load' command.", "type": "invalid_request_error", "param": "model",
                              "code": None}}
LMSTUDIO_JSON_OBJECT = {"error": "'response_format.type' must be 'json_schema' or 'text'"}


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    json: Any


@dataclass
class Reply:
    """One scripted answer. `content` etc. are wrapped in a chat completion envelope;
    `body` (dict or str) is sent as is with `status`."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    model: str | None = None
    finish_reason: str = "stop"
    refusal: str | None = None
    delay_s: float = 0.0  # sleep before answering (a hang when longer than the client timeout)
    content_type: str = "application/json"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @classmethod
    def text(cls, content: str, **kw: Any) -> Reply:
        return cls(content=content, **kw)

    @classmethod
    def json(cls, obj: Any, **kw: Any) -> Reply:
        return cls(content=json.dumps(obj), **kw)

    @classmethod
    def error(cls, status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
        return cls(status=status, body=body, headers=headers or {})

    @classmethod
    def openai_error(cls, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
                     param: str | None = None, headers: dict[str, str] | None = None) -> Reply:
        return cls.error(status, {"error": {"message": message, "type": type_, "param": param, "code": code}},
                         headers)

    @classmethod
    def rate_limited(cls, retry_after: float = 1) -> Reply:
        return cls.openai_error(429, "Rate limit reached", "rate_limit_error", "rate_limit_exceeded",
                                headers={"retry-after": str(retry_after)})

    @classmethod
    def server_error(cls) -> Reply:
        return cls.openai_error(500, "The server had an error while processing your request.", "server_error")

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Reply:
        return cls(delay_s=seconds, content="too late")

    @classmethod
    def malformed(cls) -> Reply:
        """A 200 whose body is not JSON (a proxy's page, a cut connection)."""
        return cls(status=200, body="{\"id\": \"chatcmpl-1\", \"choices\": [", content_type="application/json")

    @classmethod
    def html(cls, status: int = 502) -> Reply:
        return cls(status=status, body="<html><body><h1>502 Bad Gateway</h1></body></html>",
                   content_type="text/html")

    @classmethod
    def context_overflow_empty(cls) -> Reply:
        """LM Studio >= 0.4.21: HTTP 200, empty content, usage filled."""
        return cls(content="", prompt_tokens=5000, completion_tokens=0, finish_reason="stop")


Responder = Callable[[dict[str, Any]], "Reply | str | dict[str, Any] | None"]

# OpenAI Structured Outputs, strict mode (docs/TESTING.md has the sources). The root is an
# object; every object has additionalProperties: false and lists all its properties in
# `required`; composition keywords and a few type-specific ones are not supported.
STRICT_MAX_NESTING = 10
STRICT_MAX_PROPERTIES = 5000
STRICT_MAX_ENUM_VALUES = 1000
STRICT_MAX_STRING_CHARS = 120_000  # property names, definition names, enum and const values
STRICT_UNSUPPORTED = (
    "allOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas",
    "patternProperties", "unevaluatedProperties", "propertyNames", "minProperties", "maxProperties",
    "unevaluatedItems", "contains", "minContains", "maxContains", "uniqueItems",
    # Strings support `pattern` and `format` only; `default` was refused as "not permitted".
    "minLength", "maxLength", "default",
)
SCHEMA_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
SCHEMA_NAME_MAX = 64


def strict_schema_error(schema: Any) -> str | None:
    """What OpenAI's strict mode refuses in `schema` (the first problem), worded as OpenAI
    words it after "Invalid schema for ...: ", or None when strict mode accepts it.

    ASSUMPTION: the exact sentences for the size limits (nesting, properties, enum values,
    characters) and the order in which problems are reported are not documented.
    """
    if not isinstance(schema, dict) or schema.get("type") != "object" or "anyOf" in schema:
        got = schema.get("type") if isinstance(schema, dict) else type(schema).__name__
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{got}\"'."
    totals = {"properties": 0, "enum": 0, "chars": 0}
    problem = _strict_node(schema, (), 0, totals)
    if problem:
        return problem
    if totals["properties"] > STRICT_MAX_PROPERTIES:
        return f"{totals['properties']} object properties exceeds limit of {STRICT_MAX_PROPERTIES}."
    if totals["enum"] > STRICT_MAX_ENUM_VALUES:
        return f"{totals['enum']} enum values exceeds limit of {STRICT_MAX_ENUM_VALUES}."
    if totals["chars"] > STRICT_MAX_STRING_CHARS:
        return (f"{totals['chars']} characters of property names, definition names and enum values "
                f"exceeds limit of {STRICT_MAX_STRING_CHARS}.")
    return None


def _strict_node(node: Any, context: tuple[str, ...], depth: int, totals: dict[str, int]) -> str | None:
    if not isinstance(node, dict):
        return None
    where = f"In context={context!r}, "
    if depth > STRICT_MAX_NESTING:
        return f"{where}{depth} levels of nesting exceeds limit of {STRICT_MAX_NESTING}."
    for keyword in STRICT_UNSUPPORTED:
        if keyword in node:
            return f"{where}'{keyword}' is not permitted."
    kinds = node.get("type")
    is_object = kinds == "object" or (isinstance(kinds, list) and "object" in kinds) or "properties" in node
    if is_object:
        if node.get("additionalProperties") is not False:
            return f"{where}'additionalProperties' is required to be supplied and to be false."
        props = node.get("properties") or {}
        required = node.get("required")
        missing = [k for k in props if not isinstance(required, list) or k not in required]
        if missing:
            return (f"{where}'required' is required to be supplied and to be an array including every key in "
                    f"properties. Missing '{missing[0]}'.")
        totals["properties"] += len(props)
        totals["chars"] += sum(len(k) for k in props)
    if isinstance(node.get("enum"), list):
        totals["enum"] += len(node["enum"])
        totals["chars"] += sum(len(v) for v in node["enum"] if isinstance(v, str))
    if isinstance(node.get("const"), str):
        totals["chars"] += len(node["const"])
    children: list[tuple[tuple[str, ...], Any]] = []
    for name, sub in (node.get("properties") or {}).items():
        children.append(((*context, "properties", name), sub))
    for defs in ("$defs", "definitions"):
        for name, sub in (node.get(defs) or {}).items():
            totals["chars"] += len(name)
            children.append(((*context, defs, name), sub))
    if isinstance(node.get("items"), dict):
        children.append(((*context, "items"), node["items"]))
    for i, sub in enumerate(node.get("anyOf") or []):
        children.append(((*context, "anyOf", str(i)), sub))
    for child_context, sub in children:
        problem = _strict_node(sub, child_context, depth + 1, totals)
        if problem:
            return problem
    return None

_ANSWER_MODELS = {"route-llm": "gpt-4o-mini-2024-07-18", "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
                  "gpt-4o": "gpt-4o-2024-11-20"}
_DEFAULT_MODELS = {
    "openai": ["gpt-4o-mini", "gpt-4o", "gpt-5-mini"],
    "routellm": ["route-llm", "gpt-4o-mini", "claude-haiku-4-5-20251001"],
    "lmstudio": ["qwen2.5-7b-instruct"],
    "llamacpp": ["gemma-3-270m"],
}
LMSTUDIO_EMBEDDING_MODEL = "text-embedding-nomic-embed-text-v1.5"


def schema_instance(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A minimal instance valid for a (strict) JSON schema: what a grammar-constrained
    model could answer. Nullable branches choose null, numbers their minimum."""
    root = root or schema
    if "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        return schema_instance(node, root)
    if "anyOf" in schema:
        options = schema["anyOf"]
        for option in options:
            if option.get("type") == "null":
                return None
        return schema_instance(options[0], root)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = "null" if "null" in kind else kind[0]
    if kind == "object" or "properties" in schema:
        return {k: schema_instance(v, root) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [schema_instance(schema["items"], root) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        return "#808080" if schema.get("pattern", "").startswith("^#") else ""
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return float(schema.get("minimum", 0.0))
    if kind == "boolean":
        return False
    return None


class FakeOpenAI:
    """The server. Use as a context manager or call start()/stop()."""

    def __init__(self, persona: str = "openai", *, api_key: str | None = None, models: list[str] | None = None,
                 responder: Responder | None = None, loaded: bool = True) -> None:
        assert persona in _DEFAULT_MODELS, persona
        self.persona = persona
        self.api_key = api_key  # None: no auth check
        self.models = list(models or _DEFAULT_MODELS[persona])
        self.responder = responder
        self.loaded = loaded  # LM Studio: False answers every chat with 404 No models loaded
        self.out_of_credits = False  # RouteLLM
        # LM Studio: downloaded embedding models (listed first, never chat models) and the
        # native /api/v0/models endpoint (False: answers 404, as servers before 0.3.6).
        self.embedding_models = [LMSTUDIO_EMBEDDING_MODEL] if persona == "lmstudio" else []
        self.native_api = persona == "lmstudio"
        self.not_loaded_models: list[str] = []  # LM Studio: listed with state "not-loaded"
        self.calls: list[Call] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True  # a hanging handler must not block shutdown
        # A short poll interval: shutdown() waits up to one interval.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name=f"fake-openai-{self.persona}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting and inspection
    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def chat_calls(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path.endswith("/chat/completions")]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self._queue.clear()

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _next_scripted(self) -> Reply | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    # -- behaviour
    def _auth_error(self, headers: dict[str, str]) -> Reply | None:
        if self.api_key is None:
            return None
        sent = headers.get("authorization", "")
        if sent == f"Bearer {self.api_key}":
            return None
        received = sent.removeprefix("Bearer ")
        if self.persona == "routellm":
            return Reply.error(401, {"success": False, "error": "Invalid API key"})
        # OpenAI echoes the key it received in the message: the client must redact it.
        return Reply.openai_error(401, f"Incorrect API key provided: {received}.", code="invalid_api_key")

    def models_reply(self, headers: dict[str, str]) -> Reply:
        if self.persona == "openai":  # RouteLLM's and LM Studio's lists are public
            auth = self._auth_error(headers)
            if auth is not None:
                return auth
        data = [{"id": m, "object": "model", "created": 0, "owned_by": self.persona}
                for m in [*self.embedding_models, *self.models]]
        return Reply(body={"object": "list", "data": data})

    def native_models_reply(self) -> Reply:
        """LM Studio's GET /api/v0/models (reference §2.4)."""
        if not self.native_api:
            return Reply.error(404, {"error": "Unexpected endpoint or method. (GET /api/v0/models)"})
        data = [{"id": m, "object": "model", "type": "embeddings", "publisher": "nomic-ai", "arch": "nomic-bert",
                 "compatibility_type": "gguf", "quantization": "Q4_K_M", "state": "not-loaded",
                 "max_context_length": 2048} for m in self.embedding_models]
        data += [{"id": m, "object": "model", "type": "llm", "publisher": "lmstudio-community", "arch": "qwen2",
                  "compatibility_type": "gguf", "quantization": "Q4_K_M",
                  "state": "not-loaded" if m in self.not_loaded_models or not self.loaded else "loaded",
                  "max_context_length": 32768} for m in self.models]
        return Reply(body={"object": "list", "data": data})

    def chat_reply(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        auth = self._auth_error(headers)
        if auth is not None:
            return auth
        quirk = self._quirk(body)
        if quirk is not None:
            return quirk
        scripted = self._next_scripted()
        if scripted is not None:
            return scripted
        if self.responder is not None:
            answer = self.responder(body)
            if isinstance(answer, Reply):
                return answer
            if isinstance(answer, str):
                return Reply.text(answer)
            if answer is not None:
                return Reply.json(answer)
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            return Reply.json(schema_instance(fmt["json_schema"]["schema"]))
        if fmt.get("type") == "json_object":
            return Reply.json(schema_instance(fmt["schema"]) if "schema" in fmt else {})
        return Reply.text("Hello from the fake server.")

    def _quirk(self, body: dict[str, Any]) -> Reply | None:
        model = str(body.get("model", ""))
        fmt = body.get("response_format") or {}
        if self.persona == "openai" and (model.startswith("gpt-5") or model[:2] in ("o1", "o3", "o4")):
            if "max_tokens" in body:
                return Reply.openai_error(400, "Unsupported parameter: 'max_tokens' is not supported with this "
                                          "model. Use 'max_completion_tokens' instead.",
                                          code="unsupported_parameter", param="max_tokens")
            if body.get("temperature") not in (None, 1, 1.0):
                return Reply.openai_error(400, f"Unsupported value: 'temperature' does not support "
                                          f"{body['temperature']} with this model. Only the default (1) value "
                                          "is supported.", code="unsupported_value", param="temperature")
        if self.persona == "openai":
            strict = self._strict_refusal(body)
            if strict is not None:
                return strict
        if self.persona == "routellm":
            if self.out_of_credits:
                return Reply.error(400, OUT_OF_CREDITS)
            if any(t.get("function", {}).get("strict") for t in body.get("tools") or []):
                return Reply.error(400, {"success": False, "error": "Invalid tool definition: strict"})
        if self.persona == "lmstudio":
            if fmt.get("type") == "json_object":
                return Reply.error(400, LMSTUDIO_JSON_OBJECT)
            if not self.loaded or model not in self.models:
                return Reply.error(404, NO_MODELS_LOADED)
        if self.persona == "llamacpp" and fmt.get("type") == "json_schema":
            return Reply.error(500, {"message": "1 validation error for CreateChatCompletionRequest "
                                                "response_format.type: Input should be 'text' or 'json_object'"})
        return None

    def _strict_refusal(self, body: dict[str, Any]) -> Reply | None:
        """OpenAI refuses, with a 400 before any generation, a strict schema it cannot enforce."""
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema") or {}
            name = str(spec.get("name", ""))
            param = "response_format.json_schema.name"
            if len(name) > SCHEMA_NAME_MAX:
                return Reply.openai_error(400, f"Invalid '{param}': string too long. Expected a string with maximum "
                                          f"length {SCHEMA_NAME_MAX}, but got a string with length {len(name)} "
                                          "instead.", code="string_above_max_length", param=param)
            if not SCHEMA_NAME.match(name):
                return Reply.openai_error(400, f"Invalid '{param}': string does not match pattern. Expected a string "
                                          f"that matches the pattern '{SCHEMA_NAME.pattern}'.", code="invalid_value",
                                          param=param)
            if spec.get("strict") is True:
                problem = strict_schema_error(spec.get("schema"))
                if problem:
                    return Reply.openai_error(400, f"Invalid schema for response_format '{name}': {problem}",
                                              param="response_format")
        for i, tool in enumerate(body.get("tools") or []):
            function = (tool.get("function") or {}) if isinstance(tool, dict) else {}
            if function.get("strict") is True:
                problem = strict_schema_error(function.get("parameters"))
                if problem:
                    return Reply.openai_error(400, f"Invalid schema for function '{function.get('name')}': {problem}",
                                              code="invalid_function_parameters",
                                              param=f"tools[{i}].function.parameters")
        return None

    def answered_model(self, requested: str) -> str:
        if self.persona in ("openai", "routellm"):
            return _ANSWER_MODELS.get(requested, requested)
        return requested


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeOpenAI
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus the
        # client's delayed ACK add ~40 ms to every keep-alive answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        pass  # tests read the call log, not stderr

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        fake = self.server_fake
        headers = self._headers()
        fake._record(Call("GET", self.path, headers, None))
        if fake.persona == "lmstudio" and self.path.rstrip("/") == "/api/v0/models":
            self._send(fake.native_models_reply())
        elif self.path.rstrip("/").endswith("/models"):
            self._send(fake.models_reply(headers))
        else:
            self._send(Reply.error(404, {"error": f"Unexpected endpoint or method. (GET {self.path})"}))

    def do_POST(self) -> None:  # noqa: N802 (stdlib name)
        fake = self.server_fake
        headers = self._headers()
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        fake._record(Call("POST", self.path, headers, body))
        if not self.path.rstrip("/").endswith("/chat/completions") or not isinstance(body, dict):
            self._send(Reply.error(404, {"error": f"Unexpected endpoint or method. (POST {self.path})"}))
            return
        reply = fake.chat_reply(body, headers)
        if reply.delay_s:
            fake._release.wait(reply.delay_s)
        if reply.body is not None or reply.status != 200:
            self._send(reply)
        elif body.get("stream"):
            self._stream(reply, body)
        else:
            self._send(Reply(status=200, body=self._completion(reply, body),
                             headers={"x-request-id": "req_" + uuid.uuid4().hex[:12]}))

    def _completion(self, reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
        fake = self.server_fake
        model = reply.model or fake.answered_model(str(request.get("model", "")))
        message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": reply.refusal}
        finish = reply.finish_reason
        if reply.tool_calls:
            message["content"] = None
            message["tool_calls"] = [{"id": f"call_{i}", "type": "function",
                                      "function": {"name": t["name"], "arguments": json.dumps(t["arguments"])}}
                                     for i, t in enumerate(reply.tool_calls)]
            finish = "tool_calls"
        elif fake.persona == "lmstudio":
            message["tool_calls"] = []  # LM Studio 0.3.35 always sends it
        if reply.reasoning is not None:
            message["reasoning_content"] = reply.reasoning
        prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else \
            max(1, len(json.dumps(request.get("messages", []))) // 4)
        completion_tokens = reply.completion_tokens if reply.completion_tokens is not None else \
            max(0, len(reply.content or "") // 4)
        out: dict[str, Any] = {
            "id": "chatcmpl-" + uuid.uuid4().hex[:12], "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }
        if fake.persona == "lmstudio":
            out["system_fingerprint"] = model
        return out

    def _stream(self, reply: Reply, request: dict[str, Any]) -> None:
        full = self._completion(reply, request)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")  # no length: the end of the stream ends the body
        self.end_headers()
        base = {"id": full["id"], "object": "chat.completion.chunk", "created": full["created"],
                "model": full["model"]}

        def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk = dict(base, choices=choices, **extra)
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()

        send([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        content = reply.content or ""
        for i in range(0, len(content), 16):
            send([{"index": 0, "delta": {"content": content[i:i + 16]}, "finish_reason": None}])
        for i, tool in enumerate(reply.tool_calls or []):
            args = json.dumps(tool["arguments"])
            half = len(args) // 2
            # As LM Studio does: the name only in the first fragment, arguments split.
            send([{"index": 0, "delta": {"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                                         "function": {"name": tool["name"],
                                                                      "arguments": args[:half]}}]},
                   "finish_reason": None}])
            send([{"index": 0, "delta": {"tool_calls": [{"index": i, "function": {"name": "",
                                                                                  "arguments": args[half:]}}]},
                   "finish_reason": None}])
        send([{"index": 0, "delta": {}, "finish_reason": full["choices"][0]["finish_reason"]}])
        if (request.get("stream_options") or {}).get("include_usage"):
            send([], usage=full["usage"])
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def _send(self, reply: Reply) -> None:
        body = reply.body
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): that is the point of a hang
