"""The preferences' "Test" buttons: check one service with the plain Settings, off the main
thread, and post a typed result to a queue that the timer drains.

No bpy here: a check runs on a worker thread and only sees the `Settings` dataclass.
Messages never contain secrets (errors are reduced to their class and a redacted text).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.config import Settings
from ..redaction import redact
from ..textutil import clip

log = logging.getLogger(__name__)

SERVICES: dict[str, str] = {
    "slack": "Slack (auth.test with the bot token)",
    "routellm": "RouteLLM (list models)",
    "openai": "OpenAI (list models)",
    "lmstudio": "LM Studio (list models)",
    "s3": "S3 / MinIO (head bucket)",
    "database": "Database (open and count jobs)",
}
CHECK_TIMEOUT_S = 8.0


@dataclass(frozen=True)
class ServiceCheckResult:
    """What a Test button reports; safe to show (no secrets)."""

    service: str
    ok: bool
    detail: str
    elapsed_s: float = 0.0
    at: float = field(default_factory=time.time)


def _redact(text: str, settings: Settings) -> str:
    return clip(redact(text, settings.secrets()), 300)


def service_urls(service: str, settings: Settings) -> list[str]:
    """The network endpoints a check (or the connection) would reach; [] for local-only."""
    if service == "slack":
        return [settings.slack_api_url or "https://slack.com/api/"]
    if service == "routellm":
        return [settings.routellm_base_url]
    if service == "openai":
        return [settings.openai_base_url or "https://api.openai.com/v1"]
    if service == "lmstudio":
        return [settings.lm_studio_base_url or "http://localhost:1234/v1"]
    if service == "s3":
        return [settings.s3_endpoint_url or f"https://s3.{settings.s3_region}.amazonaws.com"]
    if service == "database":
        url = settings.resolved_database_url()
        return [] if url.startswith("sqlite") else [url]
    return []




def _http_json(url: str, *, token: str = "", method: str = "GET", timeout: float = CHECK_TIMEOUT_S) -> object:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    req = urllib.request.Request(url, method=method, headers=headers,  # noqa: S310 - scheme checked above
                                 data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - scheme checked above
        return json.loads(resp.read().decode("utf-8") or "null")


def _check_slack(settings: Settings) -> str:
    if not settings.slack_bot_token:
        raise LookupError("no bot token (SLACK_BOT_TOKEN)")
    base = settings.slack_api_url.rstrip("/") + "/"
    data = _http_json(base + "auth.test", token=settings.slack_bot_token, method="POST")
    if not isinstance(data, dict) or not data.get("ok"):
        err = data.get("error") if isinstance(data, dict) else "bad reply"
        raise RuntimeError(f"Slack said: {err}")
    app = "app token set" if settings.slack_app_token else "no app token (SLACK_APP_TOKEN): Socket Mode cannot start"
    return f"bot {data.get('user', '?')} in {data.get('team', '?')}; {app}"


def _check_models(base_url: str, key: str, label: str) -> str:
    data = _http_json(base_url.rstrip("/") + "/models", token=key)
    models = data.get("data", []) if isinstance(data, dict) else []
    names = [str(m.get("id")) for m in models if isinstance(m, dict)][:3]
    return f"{label}: {len(models)} model(s)" + (f" ({', '.join(names)})" if names else "")


def _check_s3(settings: Settings) -> str:
    if not settings.s3_bucket_name:
        raise LookupError("no bucket (S3_BUCKET_NAME): outputs stay in the local folder")
    import boto3  # heavy: only when the button is pressed

    client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url or None,
                          aws_access_key_id=settings.s3_access_key or None,
                          aws_secret_access_key=settings.s3_secret_key or None,
                          region_name=settings.s3_region or None)
    client.head_bucket(Bucket=settings.s3_bucket_name)
    return f"bucket {settings.s3_bucket_name} reachable"


def _check_database(settings: Settings) -> str:
    from ..core.jobs import JobStatus
    from ..storage import open_job_store

    store = open_job_store(settings)
    try:
        queued = store.count((JobStatus.QUEUED,))
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()
    kind = settings.resolved_database_url().split(":", 1)[0]
    return f"{kind}: {queued} queued job(s)"


def check_service(service: str, settings: Settings) -> ServiceCheckResult:
    """Run one check synchronously (on a worker thread). Never raises."""
    start = time.perf_counter()
    try:
        if service == "slack":
            detail = _check_slack(settings)
        elif service == "routellm":
            if not settings.abacus_api_key:
                raise LookupError("no key (ABACUS_API_KEY)")
            detail = _check_models(settings.routellm_base_url, settings.abacus_api_key, "RouteLLM")
        elif service == "openai":
            if not settings.openai_api_key:
                raise LookupError("no key (OPENAI_API_KEY)")
            detail = _check_models(settings.openai_base_url or "https://api.openai.com/v1",
                                   settings.openai_api_key, "OpenAI")
        elif service == "lmstudio":
            detail = _check_models(settings.lm_studio_base_url or "http://localhost:1234/v1", "", "LM Studio")
        elif service == "s3":
            detail = _check_s3(settings)
        elif service == "database":
            detail = _check_database(settings)
        else:
            raise LookupError(f"unknown service {service!r}")
        ok = True
    except BaseException as exc:  # a check must always answer the panel
        ok = False
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        detail = _redact(f"{type(exc).__name__}: {reason}", settings)
    return ServiceCheckResult(service, ok, detail, round(time.perf_counter() - start, 3))


def start_check(service: str, settings: Settings, post: Callable[[ServiceCheckResult], None]) -> threading.Thread:
    """Check in a daemon thread (a hung HTTP call must not keep Blender from quitting)."""

    def run() -> None:
        try:
            post(check_service(service, settings))
        except BaseException:  # the panel must hear about a dead worker
            log.exception("service check %s crashed", service)
            post(ServiceCheckResult(service, False, "check crashed; see the log"))

    thread = threading.Thread(target=run, name=f"slackai-check-{service}", daemon=True)
    thread.start()
    return thread

