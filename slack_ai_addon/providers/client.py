"""One `openai` SDK client per provider, with the settings that keep it honest.

`api_key` and `base_url` are always passed explicitly: given `None`, the SDK reads
`OPENAI_API_KEY` / `OPENAI_BASE_URL` from the environment and would send the real
OpenAI key to RouteLLM, LM Studio or a test server. `max_retries=0` because the chain
owns retries (it can switch provider between attempts; the SDK cannot).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from .errors import ErrorKind, ProviderError, classify_exception, redact
from .profiles import ProviderProfile

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
LM_STUDIO_DEFAULT_URL = "http://localhost:1234/v1"


@dataclass
class Completion:
    """The parts of a chat completion the layer uses, provider-neutral."""

    content: str
    model: str  # response.model: what actually ran
    reasoning: str = ""  # reasoning_content / reasoning (LM Studio, DeepSeek-style models)
    refusal: str = ""
    finish_reason: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    request_id: str = ""


class ProviderClient:
    """A configured provider: profile, endpoint, key, model. Thread-safe."""

    def __init__(self, profile: ProviderProfile, *, base_url: str, api_key: str = "", model: str = "",
                 timeout_s: float | None = None) -> None:
        if profile.needs_key and not api_key:
            raise ValueError(f"{profile.label} needs an API key")
        self.profile = profile
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or profile.dummy_key
        self._model = model or profile.default_model
        self.timeout_s = timeout_s if timeout_s is not None else profile.timeout_s
        self._sdk: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the key
        return f"ProviderClient({self.profile.name}, {self.base_url!r}, model={self._model!r})"

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def label(self) -> str:
        return self.profile.label

    @property
    def secrets(self) -> list[str]:
        return [self._api_key] if self._api_key != self.profile.dummy_key else []

    def sdk(self) -> Any:
        """The `openai.OpenAI` client, built on first use (importing the SDK costs ~0.9 s)."""
        with self._lock:
            if self._sdk is None:
                import openai

                self._sdk = openai.OpenAI(api_key=self._api_key, base_url=self.base_url, max_retries=0,
                                          timeout=openai.Timeout(self.timeout_s, connect=CONNECT_TIMEOUT_S))
            return self._sdk

    # -- models
    def model(self, *, timeout_s: float = 3.0) -> str:
        """The model to ask for. For LM Studio: a loaded chat model from the native
        GET /api/v0/models (which tells LLMs from embedding models), else the first chat
        model it lists; /v1/models when the native API is absent."""
        if self._model:
            return self._model
        chosen = ""
        if self.profile.name == "lmstudio":
            entries = self.native_models(timeout_s=timeout_s)
            if entries is not None:
                chosen = choose_lmstudio_model(entries)
                if not chosen:
                    raise ProviderError(ErrorKind.MODEL_NOT_LOADED, "no chat model is available",
                                        provider=self.name)
        if not chosen:
            models = self.list_models(timeout_s=timeout_s)
            # With JIT loading /v1/models lists every download, embedding models included.
            chat = [m for m in models if not looks_like_embedding_model(m)]
            if not chat:
                raise ProviderError(ErrorKind.MODEL_NOT_LOADED, "no model is loaded", provider=self.name)
            chosen = chat[0]
        self._model = chosen
        log.info("using model %s on %s", self._model, self.label)
        return self._model

    def native_models(self, *, timeout_s: float = 3.0) -> list[dict[str, Any]] | None:
        """LM Studio's GET /api/v0/models entries, or None where that API is absent (404,
        an older or a different server). Raises ProviderError when the server is down."""
        request = urllib.request.Request(_server_root(self.base_url) + "/api/v0/models")  # noqa: S310
        request.add_header("Authorization", f"Bearer {self._api_key}")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
                data = json.loads(response.read(1_000_000))
        except urllib.error.HTTPError as exc:
            log.debug("no native model list at %s: HTTP %s", self.base_url, exc.code)
            return None
        except (urllib.error.URLError, OSError) as exc:
            raise ProviderError(ErrorKind.TRANSIENT, redact(f"connection failed: {exc}"[:200], self.secrets),
                                provider=self.name) from None
        except ValueError:
            return None
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            return None
        return [e for e in entries if isinstance(e, dict) and e.get("id")]

    def forget_model(self) -> None:
        """After a model-not-loaded error: look it up again next time (LM Studio only)."""
        if self.profile.name == "lmstudio":
            self._model = ""

    def list_models(self, *, timeout_s: float = 3.0) -> list[str]:
        """Model ids from GET /v1/models; also the health check. Raises ProviderError."""
        try:
            page = self.sdk().models.list(timeout=timeout_s)
            return [m.id for m in page.data]
        except Exception as exc:
            raise classify_exception(exc, provider=self.name, secrets=self.secrets) from None

    # -- chat
    def chat(self, kwargs: dict[str, Any], *, timeout_s: float | None = None) -> Completion:
        """One attempt, no retries. Raises ProviderError (already classified, redacted)."""
        import openai

        timeout = openai.Timeout(timeout_s or self.timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s or 1e9))
        start = time.perf_counter()
        try:
            if kwargs.get("stream"):
                completion = self._chat_stream(kwargs, timeout)
            else:
                raw = self.sdk().chat.completions.create(**kwargs, timeout=timeout)
                completion = _from_response(raw)
        except ProviderError:
            raise
        except Exception as exc:
            raise classify_exception(exc, provider=self.name, secrets=self.secrets) from None
        completion.latency_ms = (time.perf_counter() - start) * 1000.0
        return completion

    def _chat_stream(self, kwargs: dict[str, Any], timeout: Any) -> Completion:
        content: list[str] = []
        reasoning: list[str] = []
        tools: dict[int, dict[str, Any]] = {}
        out = Completion(content="", model=str(kwargs.get("model", "")))
        stream = self.sdk().chat.completions.create(**kwargs, timeout=timeout)
        try:
            for chunk in stream:
                out.model = chunk.model or out.model
                if chunk.usage:
                    out.prompt_tokens = chunk.usage.prompt_tokens or 0
                    out.completion_tokens = chunk.usage.completion_tokens or 0
                for choice in chunk.choices or []:
                    delta = choice.delta
                    if delta.content:
                        content.append(delta.content)
                    extra = getattr(delta, "reasoning_content", None) or getattr(delta, "reasoning", None)
                    if isinstance(extra, str):
                        reasoning.append(extra)
                    # Tool calls arrive in fragments; later fragments may carry an empty name,
                    # so accumulate by index (LM Studio, reference §2.3).
                    for call in delta.tool_calls or []:
                        slot = tools.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                        slot["id"] = call.id or slot["id"]
                        if call.function is not None:
                            slot["name"] = slot["name"] or (call.function.name or "")
                            slot["arguments"] += call.function.arguments or ""
                    if choice.finish_reason:
                        out.finish_reason = choice.finish_reason
        finally:
            stream.close()
        out.content = "".join(content)
        out.reasoning = "".join(reasoning)
        out.tool_calls = [tools[i] for i in sorted(tools)]
        return out


def _from_response(raw: Any) -> Completion:
    if not getattr(raw, "choices", None):
        raise ProviderError(ErrorKind.INVALID_OUTPUT, "response has no choices")
    choice = raw.choices[0]
    message = choice.message
    reasoning = getattr(message, "reasoning_content", None) or getattr(message, "reasoning", None)
    usage = raw.usage
    calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
             for c in (message.tool_calls or []) if getattr(c, "function", None) is not None]
    return Completion(
        content=message.content or "",
        model=raw.model or "",
        reasoning=reasoning if isinstance(reasoning, str) else "",
        refusal=message.refusal or "",
        finish_reason=choice.finish_reason or "",
        tool_calls=calls,
        prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
        completion_tokens=(usage.completion_tokens or 0) if usage else 0,
        request_id=getattr(raw, "_request_id", None) or "",
    )


# ------------------------------------------------------------------ LM Studio discovery

_CHAT_TYPES = ("llm", "vlm")


def choose_lmstudio_model(entries: list[dict[str, Any]]) -> str:
    """From /api/v0/models entries: a loaded LLM, a loaded VLM, the first LLM, the first
    VLM; never an embedding model. "" when there is none."""
    for want_loaded in (True, False):
        for kind in _CHAT_TYPES:
            for entry in entries:
                if entry.get("type") == kind and (not want_loaded or entry.get("state") == "loaded"):
                    return str(entry["id"])
    return ""


def looks_like_embedding_model(model_id: str) -> bool:
    """An embedding model by its id (for /v1/models, which does not say)."""
    return "embed" in model_id.lower()


def _server_root(base_url: str) -> str:
    """http://host:1234/v1 -> http://host:1234 (where LM Studio's /api/v0 lives)."""
    base_url = base_url.rstrip("/")
    if base_url.endswith("/v1"):
        return base_url[:-3]
    parts = urllib.parse.urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


_probe_cache: dict[str, tuple[float, list[str] | None]] = {}
_probe_lock = threading.Lock()
PROBE_TTL_S = 300.0


def probe_models(base_url: str, *, timeout_s: float = 0.3, api_key: str = "") -> list[str] | None:
    """Model ids a local server lists at /v1/models, or None if it does not answer quickly.

    Cached per URL for a few minutes: this runs when the pipeline is assembled, and a
    closed port must not cost a timeout on every job. Uses urllib so that probing does
    not pay for importing the SDK.
    """
    base_url = base_url.rstrip("/")
    now = time.monotonic()
    with _probe_lock:
        hit = _probe_cache.get(base_url)
        if hit is not None and now - hit[0] < PROBE_TTL_S:
            return hit[1]
    result: list[str] | None = None
    request = urllib.request.Request(base_url + "/models")  # noqa: S310 (http(s) URL from settings)
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            data = json.loads(response.read(1_000_000))
        result = [str(m["id"]) for m in data.get("data", []) if isinstance(m, dict) and "id" in m]
    except (OSError, ValueError, urllib.error.URLError, AttributeError) as exc:
        log.debug("no OpenAI-compatible server at %s: %s", base_url, redact(str(exc)))
        result = None
    with _probe_lock:
        _probe_cache[base_url] = (now, result)
    return result


def clear_probe_cache() -> None:
    """Forget probe results (tests, or when settings change)."""
    with _probe_lock:
        _probe_cache.clear()
