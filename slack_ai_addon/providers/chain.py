"""The fallback chain: retries, cooldowns and the deadline, for every task.

Three scopes, as in LiteLLM's router (reference §4.2): a *retry* repeats the request on
the same provider (only transient errors and 429s, capped exponential backoff with
jitter, Retry-After honoured); a *fallback* moves to the next provider; a *cooldown*
takes a provider out of every chain for a while (short after 429/5xx/timeouts, long
after a bad key or no credits, lifted early when a health check on /v1/models passes;
where /v1/models is public, as on RouteLLM, that check proves nothing, so the provider
sits out a fixed `public_list_cooldown_s` instead). Before sending, the prompt is sized
against the provider's context (chars/4): a trimmable task's user text is cut with a
note, any other task skips that provider as `context_overflow`.
The whole request has one deadline, so a Slack command never waits on a hung server.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .accounting import CallRecorder
from .client import Completion, ProviderClient
from .errors import ErrorKind, InvalidOutput, ProviderError
from .profiles import adapt_request, fix_for_bad_request
from .structured import check_completion, max_answer_chars, repair_messages

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class RetryPolicy:
    """Knobs of the chain. Defaults suit a Slack command; tests shrink them."""

    max_attempts: int = 2  # per provider, for retryable errors only
    base_delay_s: float = 0.5
    max_delay_s: float = 4.0
    max_retry_after_s: float = 20.0  # a longer Retry-After: move on to the next provider
    deadline_s: float = 60.0  # the whole request, every provider together
    short_cooldown_s: float = 20.0  # after 429 (without Retry-After), 5xx, timeouts
    model_cooldown_s: float = 60.0  # LM Studio with no model loaded
    long_cooldown_s: float = 6 * 3600.0  # bad key, no credits: until a health check passes
    health_check_interval_s: float = 120.0  # how often a long cooldown probes /v1/models
    health_check_timeout_s: float = 2.0
    # Bad key / no credits on a provider whose /v1/models is public (RouteLLM): the health
    # check would pass at once, so wait this long instead before trying a real call again.
    public_list_cooldown_s: float = 30 * 60.0


@dataclass
class Cooldown:
    until: float
    kind: ErrorKind
    health_gated: bool
    last_check: float


class CooldownBook:
    """Cooldowns per provider endpoint, shared by every chain in the process."""

    def __init__(self) -> None:
        self._entries: dict[str, Cooldown] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Cooldown | None:
        with self._lock:
            return self._entries.get(key)

    def set(self, key: str, cooldown: Cooldown) -> None:
        with self._lock:
            self._entries[key] = cooldown

    def clear(self, key: str | None = None) -> None:
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)

    def snapshot(self) -> dict[str, Cooldown]:
        with self._lock:
            return dict(self._entries)


SHARED_COOLDOWNS = CooldownBook()


@dataclass
class StructuredTask(Generic[T]):
    """One provider-neutral request and how to turn its answer into a value."""

    task: str  # "scene_spec" | "analysis" | "intent": recorded with each call
    messages: list[dict[str, Any]]
    parse: Callable[[Completion], T]  # raises InvalidOutput for a bad answer
    schema: dict[str, Any] | None = None
    schema_name: str = "result"
    max_tokens: int = 1500
    temperature: float | None = 0.2
    repair: bool = True  # one re-prompt with the validation errors
    stream: bool = False
    # The last user message may be cut to fit a small context (analysis); otherwise a
    # prompt too long for a provider skips it as context_overflow.
    trimmable: bool = False


@dataclass
class Failure:
    label: str  # "RouteLLM"
    error: ProviderError
    skipped: bool = False  # cooling down or out of time: not called at all


@dataclass
class ChainResult(Generic[T]):
    value: T
    provider: str  # profile name: "openai"
    label: str
    model: str  # the model that actually answered (response.model)
    failures: list[Failure] = field(default_factory=list)
    repaired: bool = False
    notes: list[str] = field(default_factory=list)  # e.g. the text was trimmed to fit

    @property
    def provider_tag(self) -> str:
        """e.g. "routellm:gpt-4o-mini-2024-07-18"."""
        return f"{self.provider}:{self.model}"


def describe_failures(failures: list[Failure]) -> str:
    """'RouteLLM and OpenAI were unavailable (rate limited; bad key)'."""
    labels: list[str] = []
    reasons: list[str] = []
    for f in failures:
        if f.label in labels:
            continue
        labels.append(f.label)
        reasons.append(f.error.kind.user_words + (", cooling down" if f.skipped and
                                                  f.error.message.startswith("cooling") else ""))
    if not labels:
        return "no language model is configured"
    names = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
    verb = "was" if len(labels) == 1 else "were"
    return f"{names} {verb} unavailable ({'; '.join(reasons)})"


class AllProvidersFailed(RuntimeError):
    """Every configured provider failed or was skipped; `failures` says why, in order."""

    def __init__(self, failures: list[Failure]) -> None:
        super().__init__(describe_failures(failures))
        self.failures = failures


CHARS_PER_TOKEN = 4  # a rough estimate; good enough to keep well clear of the limit
MESSAGE_OVERHEAD_TOKENS = 8  # role markers and template tokens per message
TRIM_NOTE = "\n[... text trimmed to fit the model's context ...]"
MIN_TRIMMED_CHARS = 200  # below this a trimmed text is not worth analysing


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens, estimated as characters / 4 plus a little per message."""
    total = 0
    for message in messages:
        content = message.get("content")
        text = content if isinstance(content, str) else json.dumps(content, default=str) if content else ""
        total += -(-len(text) // CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS
    return total


def fit_to_context(client: ProviderClient, task: StructuredTask[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The messages to send to this provider, and notes for the user.

    The budget is the profile's context minus the completion budget. A trimmable task has
    its last user message cut (with a marker); anything else raises CONTEXT_OVERFLOW so
    the chain moves on to a provider with a larger context.
    """
    budget = client.profile.context_tokens - task.max_tokens
    needed = estimate_tokens(task.messages)
    if needed <= budget:
        return task.messages, []
    where = f"about {needed} prompt tokens, {client.label} allows {max(budget, 0)}"
    user_at = next((i for i in range(len(task.messages) - 1, -1, -1)
                    if task.messages[i].get("role") == "user" and isinstance(task.messages[i].get("content"), str)),
                   None)
    if task.trimmable and user_at is not None:
        text = str(task.messages[user_at]["content"])
        excess_chars = (needed - budget) * CHARS_PER_TOKEN + len(TRIM_NOTE)
        keep = len(text) - excess_chars
        if keep >= MIN_TRIMMED_CHARS:
            messages = list(task.messages)
            messages[user_at] = dict(messages[user_at], content=text[:keep].rstrip() + TRIM_NOTE)
            log.info("trimmed the prompt to fit the context", extra={"provider": client.name, "task": task.task,
                                                                      "error": where})
            return messages, [f"the text was trimmed to its first {keep} of {len(text)} characters "
                              f"to fit {client.label}'s context"]
    raise ProviderError(ErrorKind.CONTEXT_OVERFLOW, f"prompt too long ({where})", provider=client.name)


def _cooldown_key(client: ProviderClient) -> str:
    return f"{client.name}@{client.base_url}"


class ProviderChain:
    """An ordered list of providers tried in turn for each request."""

    def __init__(self, clients: list[ProviderClient], *, recorder: CallRecorder | None = None,
                 policy: RetryPolicy | None = None, cooldowns: CooldownBook | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 rng: Callable[[], float] = random.random) -> None:
        self.clients = list(clients)
        self.recorder = recorder or CallRecorder(None)
        self.policy = policy or RetryPolicy()
        self.cooldowns = cooldowns if cooldowns is not None else SHARED_COOLDOWNS
        self._clock = clock
        self._sleep = sleep
        self._rng = rng

    def __bool__(self) -> bool:
        return bool(self.clients)

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.clients]

    # ------------------------------------------------------------------ the request
    def run(self, task: StructuredTask[T], *, correlation_id: str = "",
            deadline_s: float | None = None) -> ChainResult[T]:
        """Try each provider in order; the first valid answer wins. Raises AllProvidersFailed."""
        deadline = self._clock() + (deadline_s if deadline_s is not None else self.policy.deadline_s)
        failures: list[Failure] = []
        for client in self.clients:
            if self._clock() >= deadline:
                failures.append(Failure(client.label, ProviderError(ErrorKind.TRANSIENT, "out of time",
                                                                    provider=client.name), skipped=True))
                continue
            cooling = self._cooling(client, deadline)
            if cooling is not None:
                failures.append(Failure(client.label, ProviderError(cooling.kind, "cooling down",
                                                                    provider=client.name), skipped=True))
                continue
            try:
                messages, notes = fit_to_context(client, task)
                value, model, repaired = self._run_on(client, task, deadline, correlation_id, messages)
            except ProviderError as err:
                err.provider = err.provider or client.name
                log.warning("provider failed", extra={"correlation_id": correlation_id, "provider": client.name,
                                                      "task": task.task, "error_class": err.kind.value,
                                                      "error": str(err)})
                failures.append(Failure(client.label, err))
                self._cool(client, err)
                continue
            self.cooldowns.clear(_cooldown_key(client))
            return ChainResult(value=value, provider=client.name, label=client.label, model=model,
                               failures=failures, repaired=repaired, notes=notes)
        raise AllProvidersFailed(failures)

    def _run_on(self, client: ProviderClient, task: StructuredTask[T], deadline: float,
                correlation_id: str, messages: list[dict[str, Any]] | None = None) -> tuple[T, str, bool]:
        messages = task.messages if messages is None else messages
        model = client.model(timeout_s=max(0.1, min(3.0, deadline - self._clock())))
        kwargs = adapt_request(client.profile, model=model, messages=messages, schema=task.schema,
                               schema_name=task.schema_name, max_tokens=task.max_tokens,
                               temperature=task.temperature, stream=task.stream)
        completion, kwargs = self._call(client, kwargs, task, deadline, correlation_id)
        try:
            return self._accept(client, model, task, completion, correlation_id), completion.model or model, False
        except InvalidOutput as bad:
            if not task.repair:
                raise
            log.info("repairing an invalid answer", extra={"correlation_id": correlation_id,
                                                           "provider": client.name, "error": bad.message})
            kwargs = dict(kwargs, messages=repair_messages(messages, completion.content or completion.reasoning,
                                                           bad.repair_hint))
        completion, _ = self._call(client, kwargs, task, deadline, correlation_id)
        return self._accept(client, model, task, completion, correlation_id), completion.model or model, True

    def _accept(self, client: ProviderClient, requested_model: str, task: StructuredTask[T],
                completion: Completion, correlation_id: str) -> T:
        """Validate an HTTP-successful answer and record the call with its outcome."""
        error_class = ""
        try:
            check_completion(completion, provider=client.name)
            limit = max_answer_chars(task.max_tokens)
            if len(completion.content) > limit:
                raise InvalidOutput(f"the answer was {len(completion.content)} characters, more than "
                                    f"max_tokens={task.max_tokens} allows", provider=client.name,
                                    raw=completion.content[:500])
            try:
                return task.parse(completion)
            except RecursionError:  # a hostile answer must fall back, never crash the chain
                raise InvalidOutput("the answer was nested too deeply", provider=client.name) from None
        except ProviderError as err:
            err.provider = client.name
            error_class = err.kind.value
            raise
        finally:
            self.recorder.record(correlation_id=correlation_id, provider=client.name,
                                 requested_model=requested_model, actual_model=completion.model, task=task.task,
                                 latency_ms=completion.latency_ms, prompt_tokens=completion.prompt_tokens,
                                 completion_tokens=completion.completion_tokens, local=client.profile.is_local,
                                 error_class=error_class)

    def _call(self, client: ProviderClient, kwargs: dict[str, Any], task: StructuredTask[T], deadline: float,
              correlation_id: str) -> tuple[Completion, dict[str, Any]]:
        """One request with retries on the same provider. Returns the completion and the
        (possibly fixed) kwargs, so a repair re-prompt keeps the fix."""
        attempt = 0
        fixed_once = False
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise ProviderError(ErrorKind.TRANSIENT, "deadline reached", provider=client.name)
            start = time.perf_counter()
            try:
                return client.chat(kwargs, timeout_s=min(client.timeout_s, remaining)), kwargs
            except ProviderError as err:
                self.recorder.record(correlation_id=correlation_id, provider=client.name,
                                     requested_model=str(kwargs.get("model", "")), actual_model="",
                                     task=task.task, latency_ms=(time.perf_counter() - start) * 1000.0,
                                     local=client.profile.is_local, error_class=err.kind.value)
                if err.kind is ErrorKind.BAD_REQUEST and not fixed_once:
                    fixed = fix_for_bad_request(client.profile, kwargs, err.message)
                    if fixed is not None:
                        log.info("adapting the request after a 400", extra={"provider": client.name,
                                                                            "error": err.message[:200]})
                        kwargs, fixed_once = fixed, True
                        continue
                if err.kind is ErrorKind.MODEL_NOT_LOADED:
                    client.forget_model()
                attempt += 1
                if not err.kind.retryable or attempt >= self.policy.max_attempts:
                    raise
                delay = self._retry_delay(attempt, err)
                if delay is None or self._clock() + delay >= deadline:
                    raise
                log.info("retrying in %.2fs", delay, extra={"correlation_id": correlation_id,
                                                            "provider": client.name, "error_class": err.kind.value})
                self._sleep(delay)

    def _retry_delay(self, attempt: int, err: ProviderError) -> float | None:
        if err.retry_after is not None:
            return None if err.retry_after > self.policy.max_retry_after_s else err.retry_after
        backoff = min(self.policy.base_delay_s * 2.0 ** (attempt - 1), self.policy.max_delay_s)
        return backoff * (1.0 - 0.25 * self._rng())  # jitter spreads retries of parallel jobs

    # ------------------------------------------------------------------ cooldowns
    def _cool(self, client: ProviderClient, err: ProviderError) -> None:
        now = self._clock()
        p = self.policy
        if err.kind in (ErrorKind.AUTH, ErrorKind.QUOTA_EXHAUSTED):
            if client.profile.public_model_list:
                # /v1/models answers without a key or credits: a health check there would
                # put the provider back every health_check_interval_s. Time-based instead.
                cooldown = Cooldown(now + p.public_list_cooldown_s, err.kind, False, now)
            else:
                cooldown = Cooldown(now + p.long_cooldown_s, err.kind, True, now)
        elif err.kind is ErrorKind.RATE_LIMITED:
            wait = p.short_cooldown_s if err.retry_after is None else err.retry_after
            cooldown = Cooldown(now + wait, err.kind, False, now)
        elif err.kind is ErrorKind.TRANSIENT:
            cooldown = Cooldown(now + p.short_cooldown_s, err.kind, False, now)
        elif err.kind is ErrorKind.MODEL_NOT_LOADED:
            cooldown = Cooldown(now + p.model_cooldown_s, err.kind, False, now)
        else:
            return  # bad request, overflow, refusal, invalid output: about this request, not the provider
        self.cooldowns.set(_cooldown_key(client), cooldown)

    def _cooling(self, client: ProviderClient, deadline: float) -> Cooldown | None:
        key = _cooldown_key(client)
        cooldown = self.cooldowns.get(key)
        if cooldown is None:
            return None
        now = self._clock()
        if now >= cooldown.until:
            self.cooldowns.clear(key)
            return None
        if cooldown.health_gated and now - cooldown.last_check >= self.policy.health_check_interval_s:
            cooldown.last_check = now
            try:
                client.list_models(timeout_s=max(0.1, min(self.policy.health_check_timeout_s, deadline - now)))
            except ProviderError as err:
                log.info("health check still failing", extra={"provider": client.name,
                                                              "error_class": err.kind.value})
                return cooldown
            log.info("health check passed; provider back in the chain", extra={"provider": client.name})
            self.cooldowns.clear(key)
            return None
        return cooldown

    def status(self) -> list[dict[str, Any]]:
        """Per provider: label, model, and the cooldown if any (for panels and /blender status)."""
        now = self._clock()
        out = []
        for client in self.clients:
            cd = self.cooldowns.get(_cooldown_key(client))
            out.append({"provider": client.name, "label": client.label, "base_url": client.base_url,
                        "cooling_down_s": round(cd.until - now, 1) if cd and cd.until > now else 0.0,
                        "reason": cd.kind.user_words if cd and cd.until > now else ""})
        return out
