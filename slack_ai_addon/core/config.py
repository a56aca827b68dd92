"""Settings: one plain dataclass that crosses threads; built from flags, env, a TOML file,
Blender preferences and defaults, in that order of precedence (the README's Configuration
section lists them).

Secrets live in the same object but never in its `repr`, logs or `public_dict()`; the
masking itself is `slack_ai_addon.redaction`'s, shared with every other layer.

Every value, whichever source it came from, goes through one validation step
(`validate_settings`): its type from the field's annotation, then RULES (ranges, choices,
formats), then the relations between settings. A bad value is a ConfigError whose one-line
message names the setting and its source: `setting lease_s from config file /x.toml: 'soon'
is not a number; use seconds, at least 2`. Only the value that wins the precedence is checked.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import tomllib
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..redaction import mask_secret, redact, redact_url, split_database_url
from ..textutil import clip

# env var -> Settings field. Names kept from the original deployment.
ENV_VARS: dict[str, str] = {
    "SLACK_BOT_TOKEN": "slack_bot_token",
    "SLACK_APP_TOKEN": "slack_app_token",
    "SLACK_SIGNING_SECRET": "slack_signing_secret",
    "SLACK_API_URL": "slack_api_url",
    "ABACUS_API_KEY": "abacus_api_key",
    "ROUTELLM_BASE_URL": "routellm_base_url",
    "ROUTELLM_MODEL": "routellm_model",
    "OPENAI_API_KEY": "openai_api_key",
    "OPENAI_BASE_URL": "openai_base_url",
    "OPENAI_MODEL": "openai_model",
    "LM_STUDIO_BASE_URL": "lm_studio_base_url",
    "LM_STUDIO_MODEL": "lm_studio_model",
    "SLACK_AI_PROVIDER_ORDER": "provider_order",
    "S3_ENDPOINT_URL": "s3_endpoint_url",
    "S3_ACCESS_KEY": "s3_access_key",
    "S3_SECRET_KEY": "s3_secret_key",
    "S3_BUCKET_NAME": "s3_bucket_name",
    "S3_REGION": "s3_region",
    "DATABASE_URL": "database_url",
    "SLACK_AI_OUTPUT_DIR": "output_dir",
    "SLACK_AI_NODE_ID": "node_id",
    "SLACK_AI_ADMINS": "admin_user_ids",
    "SLACK_AI_LOG_LEVEL": "log_level",
    "SLACK_AI_DEFAULT_ENGINE": "default_engine",
    "SLACK_AI_HTTP": "http",
    "SLACK_AI_LOG_FORMAT": "log_format",
    # Access control, quotas and cost tiers (docs/SECURITY.md).
    "SLACK_AI_ALLOWED_TEAMS": "allowed_team_ids",
    "SLACK_AI_ALLOWED_CHANNELS": "allowed_channel_ids",
    "SLACK_AI_ALLOWED_USERS": "allowed_user_ids",
    "SLACK_AI_QUOTA_USER_PER_MINUTE": "quota_user_requests_per_minute",
    "SLACK_AI_QUOTA_CHANNEL_PER_MINUTE": "quota_channel_requests_per_minute",
    "SLACK_AI_QUOTA_USER_RENDER_S_PER_DAY": "quota_user_render_s_per_day",
    "SLACK_AI_QUOTA_CHANNEL_RENDER_S_PER_DAY": "quota_channel_render_s_per_day",
    "SLACK_AI_QUOTA_USER_QUEUED": "quota_user_queued",
    "SLACK_AI_QUOTA_CHANNEL_QUEUED": "quota_channel_queued",
    "SLACK_AI_QUEUE_CAP": "queue_cap",
    "SLACK_AI_USER_MAX_COST_S": "user_max_cost_s",
    "SLACK_AI_ADMIN_MAX_COST_S": "admin_max_cost_s",
    # Farm: capability routing and the shared Slack budget (docs/FARM.md).
    "SLACK_AI_NODE_GPU": "node_gpu",
    "SLACK_AI_NODE_TAGS": "node_tags",
    "SLACK_AI_REQUIRE_GPU": "require_gpu",
    "SLACK_AI_REQUIRE_ENGINE": "require_engine",
    "SLACK_AI_REQUIRE_BLENDER": "require_blender",
    "SLACK_AI_SLACK_UPDATES_PER_MINUTE": "slack_updates_per_minute",
    "SLACK_AI_SLACK_POSTS_PER_SECOND": "slack_posts_per_second",
    # Optional HTTP listener for Slack's Events API (instead of Socket Mode).
    "SLACK_AI_EVENTS_HTTP": "events_http",
    # Render threads (0: automatic; cores - 1 while a Slack agent is attached).
    "SLACK_AI_RENDER_THREADS": "render_threads",
    # Blender asset libraries: folders separated by os.pathsep (docs/ASSETS.md).
    "SLACK_AI_ASSET_LIBRARIES": "asset_libraries",
}

# Secrets: never posted, logged or written in clear; masked in settings dumps and panels and
# redacted from every log line and error (with the database password, `Settings.secrets`).
SECRET_FIELDS = frozenset({
    "slack_bot_token", "slack_app_token", "slack_signing_secret",
    "abacus_api_key", "openai_api_key", "s3_secret_key",
})
# Identifiers, not secrets, masked in settings dumps, panels and logs only as a courtesy. The S3
# access key id names a key pair without signing anything (AWS documents it as an
# identifier), and every presigned S3 link the bot posts to Slack carries it in
# X-Amz-Credential (docs/SECURITY.md, "Secrets").
COURTESY_MASKED_FIELDS = frozenset({"s3_access_key"})
MASKED_FIELDS = SECRET_FIELDS | COURTESY_MASKED_FIELDS


def user_data_dir() -> Path:
    """Where the embedded defaults keep state (SQLite, outputs) outside the CLI."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "slack_ai_addon"


@dataclass
class Settings:
    slack_bot_token: str = field(default="", repr=False)
    slack_app_token: str = field(default="", repr=False)
    slack_signing_secret: str = field(default="", repr=False)
    slack_api_url: str = "https://slack.com/api/"
    abacus_api_key: str = field(default="", repr=False)
    routellm_base_url: str = "https://routellm.abacus.ai/v1"
    routellm_model: str = "route-llm"
    openai_api_key: str = field(default="", repr=False)
    openai_base_url: str = ""  # empty: the SDK default
    openai_model: str = "gpt-4o-mini"
    lm_studio_base_url: str = ""  # empty: http://localhost:1234/v1, used only if reachable
    lm_studio_model: str = ""  # empty: whatever model LM Studio has loaded
    provider_order: str = "routellm,openai,lmstudio,offline"
    s3_endpoint_url: str = ""
    s3_access_key: str = field(default="", repr=False)
    s3_secret_key: str = field(default="", repr=False)
    s3_bucket_name: str = ""
    s3_region: str = "us-east-1"
    s3_url_lifetime_s: float = 604800.0  # presigned links posted to Slack (SigV4 max: 7 days)
    database_url: str = field(default="", repr=False)  # may hold a password; empty: SQLite
    output_dir: str = ""  # empty: ./out for the CLI, user data folder in Blender
    node_id: str = ""  # empty: hostname-pid
    admin_user_ids: str = ""  # comma-separated Slack user ids allowed to cancel any job
    log_level: str = "INFO"
    default_engine: str = "cycles"
    lease_s: float = 60.0
    heartbeat_s: float = 10.0
    http: str = ""  # HOST:PORT for GET /health and /metrics on serve and farm nodes ("" = off)
    log_format: str = ""  # json | text; "" = json for services (serve, workers), text for commands
    stop_grace_s: float = 30.0  # on SIGTERM, how long a running render may go on before it is handed back
    # -- access control (comma-separated ids; empty = everyone in the workspace)
    allowed_team_ids: str = ""
    allowed_channel_ids: str = ""
    allowed_user_ids: str = ""
    # -- quotas (0 = no limit)
    quota_user_requests_per_minute: int = 6
    quota_channel_requests_per_minute: int = 30
    quota_user_render_s_per_day: float = 3600.0
    quota_channel_render_s_per_day: float = 0.0
    quota_user_queued: int = 10
    quota_channel_queued: int = 40
    queue_cap: int = 500
    # -- cost tiers: the estimated CPU render seconds one job may cost
    user_max_cost_s: float = 300.0
    admin_max_cost_s: float = 7200.0
    # -- farm: what this node offers, what every job needs, and the farm's Slack budget
    node_gpu: str = ""  # "" = detect; "none" = no GPU; else the GPU's name
    node_tags: str = ""  # comma-separated capability tags (e.g. assets:props)
    require_gpu: bool = False  # every job needs a GPU node
    require_engine: str = ""  # every job needs this engine ("" = the spec's own)
    require_blender: str = ""  # every job needs at least this Blender version, e.g. 4.2
    slack_updates_per_minute: float = 50.0  # chat.update across the farm (Slack Tier 3)
    slack_posts_per_second: float = 1.0  # chat.postMessage per channel across the farm
    events_http: str = ""  # HOST:PORT for Slack's Events API over HTTP ("" = Socket Mode only)
    render_threads: int = 0  # 0 = automatic
    asset_libraries: str = ""  # folders of .blend asset files, separated by os.pathsep (docs/ASSETS.md)

    def public_dict(self) -> dict[str, Any]:
        """All settings with secrets masked: safe for logs, panels and Slack."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = mask_secret(value) if f.name in MASKED_FIELDS else value
        out["database_url"] = redact_url(self.database_url)
        return out

    def secrets(self) -> list[str]:
        """Every secret value that is set (the database password too): for `redact`."""
        values = [v for name in SECRET_FIELDS if (v := getattr(self, name))]
        return values + database_secrets(self.database_url)

    def masked_values(self) -> list[str]:
        """What log lines hide: the secrets, and the identifiers masked as a courtesy."""
        return self.secrets() + [v for name in COURTESY_MASKED_FIELDS if (v := getattr(self, name))]

    @property
    def admins(self) -> frozenset[str]:
        return frozenset(u.strip() for u in self.admin_user_ids.split(",") if u.strip())

    @property
    def providers(self) -> list[str]:
        return [p.strip().lower() for p in self.provider_order.split(",") if p.strip()]

    def resolved_output_dir(self, *, cli: bool) -> Path:
        if self.output_dir:
            return Path(self.output_dir).expanduser()
        return Path("out") if cli else user_data_dir() / "out"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{user_data_dir() / 'jobs.db'}"

    def resolved_node_id(self) -> str:
        if self.node_id:
            return self.node_id
        import socket
        return f"{socket.gethostname()}-{os.getpid()}"


def is_loopback_url(url: str) -> bool:
    """True for services on this machine (the sandbox, LM Studio): not "online" for Blender."""
    from urllib.parse import urlparse

    host = (urlparse(url).hostname or "").lower()
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def _database_host(url: str) -> str:
    try:
        return split_database_url(url).host if "://" in url else ""
    except ValueError:
        return ""


def database_secrets(url: str) -> list[str]:
    """The password in a database URL (both spellings), or [] when it has none."""
    try:
        return split_database_url(url).secrets if isinstance(url, str) and url else []
    except ValueError:
        return []


def local_only(settings: Settings) -> tuple[Settings, list[str]]:
    """The settings with every service off this machine removed, and the names of those.

    Blender's rule: with online access off, an add-on uses no network. The pipeline still
    works on the embedded defaults (offline interpreter, local folder, SQLite); loopback
    services (the sandbox, LM Studio here, a local MinIO or SQL Server) stay.
    """
    changes: dict[str, Any] = {}
    dropped: list[str] = []
    if settings.abacus_api_key and not is_loopback_url(settings.routellm_base_url):
        changes["abacus_api_key"] = ""
        dropped.append("RouteLLM")
    if settings.openai_api_key and not is_loopback_url(settings.openai_base_url or "https://api.openai.com/v1"):
        changes["openai_api_key"] = ""
        dropped.append("OpenAI")
    if settings.lm_studio_base_url and not is_loopback_url(settings.lm_studio_base_url):
        changes["lm_studio_base_url"] = ""
        dropped.append("LM Studio")
    if settings.s3_bucket_name and not is_loopback_url(settings.s3_endpoint_url or "https://s3.amazonaws.com"):
        changes["s3_bucket_name"] = ""
        dropped.append("S3")
    db_host = _database_host(settings.database_url)
    if settings.database_url.startswith("mssql") and db_host not in ("localhost", "127.0.0.1", "::1") \
            and not db_host.startswith("127."):
        changes["database_url"] = ""
        dropped.append("SQL Server")
    if (settings.slack_bot_token or settings.slack_app_token) and not is_loopback_url(settings.slack_api_url):
        changes["slack_bot_token"] = changes["slack_app_token"] = ""
        dropped.append("Slack")
    return dataclasses.replace(settings, **changes), dropped


class ConfigError(ValueError):
    """A setting that cannot be used. The message is one line, names the setting and where its
    value came from, says what is wrong and what is allowed, and never holds a secret."""

    def __init__(self, message: str, *, setting: str = "", source: str = "") -> None:
        super().__init__(" ".join(message.split()))
        self.setting = setting
        self.source = source


# ---- validation: one step for every setting, whichever source it came from ----------------

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ENGINES = ("cycles", "eevee", "workbench")
PROVIDERS = ("routellm", "openai", "lmstudio", "offline")
URL_FIELDS = frozenset({"slack_api_url", "routellm_base_url", "openai_base_url", "lm_studio_base_url",
                        "s3_endpoint_url"})
LIST_FIELDS = frozenset({"provider_order", "admin_user_ids"})  # comma-separated; a TOML array works too
DATABASE_PREFIXES = ("sqlite:///", "mssql+pymssql://")
MIN_LEASE_S = 2.0
MAX_S3_URL_LIFETIME_S = 604800.0  # SigV4's limit: 7 days

# CLI flags that feed settings, by field (other fields: --field-name).
FLAG_NAMES: dict[str, str] = {"output_dir": "--out", "default_engine": "--engine", "log_level": "--log-level"}
PREFS_SOURCE = "Blender preferences"
DEFAULT_SOURCE = "default"


def flag_source(name: str) -> str:
    return f"flag {FLAG_NAMES.get(name, '--' + name.replace('_', '-'))}"


def env_source(variable: str) -> str:
    return f"environment {variable}"


def file_source(path: str | Path) -> str:
    return f"config file {path}"


Check = Callable[[Any], str | None]  # the coerced value -> what is wrong with it, or None


@dataclass(frozen=True)
class Rule:
    allowed: str  # what is allowed, in words, for the message
    check: Check | None = None
    normalize: Callable[[Any], Any] | None = None
    empty_ok: bool = False  # "" means "not set" (the embedded default) and is always fine


def _at_least(low: float) -> Check:
    return lambda v: None if v >= low else "is too small"


def _more_than(low: float) -> Check:
    return lambda v: None if v > low else "is too small"


def _between(low: float, high: float) -> Check:
    return lambda v: "is too small" if v < low else "is too large" if v > high else None


def _one_of(choices: tuple[str, ...], what: str) -> Check:
    return lambda v: None if v in choices else f"is not {what}"


def _providers(value: Any) -> str | None:
    names = [p.strip().lower() for p in str(value).split(",") if p.strip()]
    if not names:
        return "names no provider"
    unknown = [n for n in names if n not in PROVIDERS]
    if unknown:
        return f"names an unknown provider {unknown[0]!r}"
    return None


def _http_url(value: Any) -> str | None:
    parsed = urlparse(str(value))
    if parsed.scheme.lower() not in ("http", "https"):
        return "is not an http(s) URL"
    if not parsed.netloc:
        return "has no host"
    return None


def _database_url(value: Any) -> str | None:
    text = str(value)
    if not text.lower().startswith(DATABASE_PREFIXES):
        return "is not a supported database URL"
    if text.lower().startswith("sqlite:///") and len(text) == len("sqlite:///"):
        return "names no file"
    return None


def _host_port(value: Any) -> str | None:
    host, sep, port = str(value).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return "is not HOST:PORT"
    return None


_SECONDS = "seconds"
RULES: dict[str, Rule] = {
    "http": Rule("HOST:PORT, e.g. 127.0.0.1:9464, or leave it empty", _host_port, lambda v: str(v).strip(),
                 empty_ok=True),
    "log_format": Rule("json or text, or leave it empty", _one_of(("json", "text"), "a log format"),
                       lambda v: str(v).strip().lower(), empty_ok=True),
    "events_http": Rule("HOST:PORT, e.g. 127.0.0.1:3000, or leave it empty", _host_port, lambda v: str(v).strip(),
                        empty_ok=True),
    "require_blender": Rule("a Blender version such as 4.2 or 4.2.1, or leave it empty",
                            lambda v: None if re.fullmatch(r"\d+(\.\d+){0,2}", str(v)) else "is not a version",
                            lambda v: str(v).strip(), empty_ok=True),
    "require_engine": Rule("one of " + ", ".join(ENGINES) + ", or leave it empty", _one_of(ENGINES, "a render engine"),
                           lambda v: str(v).strip().lower(), empty_ok=True),
    **{name: Rule("a whole number, 0 (no limit) or more", _at_least(0))
       for name in ("quota_user_requests_per_minute", "quota_channel_requests_per_minute", "quota_user_queued",
                    "quota_channel_queued", "queue_cap", "render_threads")},
    **{name: Rule(f"{_SECONDS}, 0 (no limit) or more", _at_least(0))
       for name in ("quota_user_render_s_per_day", "quota_channel_render_s_per_day")},
    **{name: Rule(f"{_SECONDS}, more than 0", _more_than(0)) for name in ("user_max_cost_s", "admin_max_cost_s")},
    **{name: Rule("calls, more than 0", _more_than(0))
       for name in ("slack_updates_per_minute", "slack_posts_per_second")},
    "lease_s": Rule(f"{_SECONDS}, at least {MIN_LEASE_S:g}", _at_least(MIN_LEASE_S)),
    "heartbeat_s": Rule(f"{_SECONDS}, more than 0 and at most half of lease_s", _more_than(0)),
    "stop_grace_s": Rule(f"{_SECONDS}, 0 or more", _at_least(0)),
    "s3_url_lifetime_s": Rule(f"{_SECONDS} from 1 to {MAX_S3_URL_LIFETIME_S:g} (7 days)",
                              _between(1, MAX_S3_URL_LIFETIME_S)),
    "log_level": Rule("one of " + ", ".join(LOG_LEVELS), _one_of(LOG_LEVELS, "a log level"),
                      lambda v: str(v).strip().upper()),
    "default_engine": Rule("one of " + ", ".join(ENGINES), _one_of(ENGINES, "a render engine"),
                           lambda v: str(v).strip().lower()),
    "provider_order": Rule("a comma-separated list of " + ", ".join(PROVIDERS), _providers),
    "database_url": Rule("sqlite:///PATH or mssql+pymssql://USER:PASSWORD@HOST:PORT/DB, or leave it empty",
                         _database_url, lambda v: str(v).strip(), empty_ok=True),
    **{name: Rule("an http:// or https:// URL, or leave it empty", _http_url, lambda v: str(v).strip(),
                  empty_ok=True)
       for name in URL_FIELDS},
}

# The allowed-values text for a field without a rule, by its type.
_TYPE_ALLOWED = {float: "a number", int: "a whole number", bool: "true or false", str: "text (a quoted string)"}


MESSAGE_VALUE_CHARS = 80  # how much of a bad value (or its problem) a message shows


def _shown(name: str, value: Any) -> str:
    """The value as a message may show it (secret fields hidden; `_fail` redacts and clips it)."""
    if name == "database_url" and isinstance(value, str):
        scheme, sep, _rest = value.partition("://")
        return repr(scheme + "://…") if sep else "the value (hidden)"
    if name in MASKED_FIELDS:
        return "the value (hidden)"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


_FIELD_TYPES: dict[str, dict[str, Any]] = {}


def _field_types(cls: type[Settings]) -> dict[str, Any]:
    """Each field's type, from the annotations (a field added later is type-checked too)."""
    key = f"{cls.__module__}.{cls.__qualname__}:{id(cls)}"
    if key not in _FIELD_TYPES:
        _FIELD_TYPES[key] = typing.get_type_hints(cls)
    return _FIELD_TYPES[key]


def _number(value: Any, whole: bool) -> float | int | None:
    """The number in value (TOML numbers, environment text), or None if there is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            number: float | int = int(value.strip()) if whole else float(value.strip())
        except ValueError:
            return None
        return number
    if isinstance(value, (int, float)):
        if whole and isinstance(value, float):
            return int(value) if value.is_integer() else None
        return value if whole else float(value)
    return None


def _coerce(name: str, kind: Any, value: Any) -> tuple[Any, str | None]:
    """(the value as the field's type, or None and what is wrong)."""
    if kind is float or kind is int:
        number = _number(value, whole=kind is int)
        if number is None:
            return None, "is not a whole number" if kind is int else "is not a number"
        if not math.isfinite(number):
            return None, "is not a finite number"
        return number, None
    if kind is bool:
        if isinstance(value, bool):
            return value, None
        text = str(value).strip().lower() if isinstance(value, (str, int)) else ""
        if text in ("1", "true", "yes", "on"):
            return True, None
        if text in ("0", "false", "no", "off"):
            return False, None
        return None, "is not true or false"
    if kind is str:
        if isinstance(value, str):
            return value, None
        if name in LIST_FIELDS and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return ",".join(value), None
        return None, "is not text"
    # A type this module has no rule for (a field added later): pydantic checks it.
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(kind).validate_python(value), None
    except ValidationError as exc:
        first = exc.errors()[0]
        return None, f"is not valid ({first.get('msg', 'wrong type')})"


def _fail(name: str, source: str, value: Any, problem: str, allowed: str, secrets: Collection[str]) -> ConfigError:
    # Redacted before clipping, so that no part of a secret shows.
    shown = clip(redact(_shown(name, value), secrets), MESSAGE_VALUE_CHARS)
    problem = clip(redact(problem, secrets), MESSAGE_VALUE_CHARS)
    return ConfigError(f"setting {name} from {source}: {shown} {problem}; use {allowed}", setting=name,
                       source=source)


def validate_setting(name: str, value: Any, source: str, *, cls: type[Settings] = Settings,
                     secrets: Collection[str] = ()) -> Any:
    """One setting's value, type-converted and checked, or ConfigError naming it and its source.

    Every Settings field is type-checked from its annotation; RULES add ranges, choices and
    formats. (Relations between settings are checked by `validate_settings`.) The message
    shows no secret field's value, and none of `secrets` wherever they appear.
    """
    kinds = _field_types(cls)
    if name not in kinds:
        raise ConfigError(f"setting {name} from {source}: there is no such setting", setting=name, source=source)
    kind = kinds[name]
    rule = RULES.get(name)
    allowed = rule.allowed if rule else _TYPE_ALLOWED.get(kind, str(kind))
    coerced, problem = _coerce(name, kind, value)
    if problem:
        raise _fail(name, source, value, problem, allowed, secrets)
    if rule is None:
        return coerced
    if rule.normalize is not None:
        coerced = rule.normalize(coerced)
    if rule.empty_ok and coerced == "":
        return coerced
    problem = rule.check(coerced) if rule.check is not None else None
    if problem:
        raise _fail(name, source, value, problem, allowed, secrets)
    return coerced


_S = typing.TypeVar("_S", bound="Settings")


def validate_settings(settings: _S, sources: Mapping[str, str] | None = None) -> _S:
    """Every field of settings checked (see validate_setting), then the relations between them.

    `sources` names where each value came from (missing: "default"). Returns a checked copy.
    """
    sources = sources or {}
    secrets = [v for n in MASKED_FIELDS if isinstance(v := getattr(settings, n, ""), str) and v]
    secrets += database_secrets(settings.database_url)
    values = {f.name: validate_setting(f.name, getattr(settings, f.name), sources.get(f.name, DEFAULT_SOURCE),
                                       cls=type(settings), secrets=secrets)
              for f in fields(settings)}
    heartbeat, lease = values["heartbeat_s"], values["lease_s"]
    if heartbeat > lease / 2:
        # The heartbeat must be well under the lease, or a busy node loses jobs it is rendering.
        # Blame the one the user set (the heartbeat when both or neither were set).
        hb_src, lease_src = sources.get("heartbeat_s", DEFAULT_SOURCE), sources.get("lease_s", DEFAULT_SOURCE)

        def origin(src: str) -> str:
            return "the default" if src == DEFAULT_SOURCE else f"from {src}"

        if hb_src == DEFAULT_SOURCE and lease_src != DEFAULT_SOURCE:
            raise ConfigError(
                f"setting lease_s from {lease_src}: {lease:g} is too short for heartbeat_s {heartbeat:g} "
                f"({origin(hb_src)}); use at least twice heartbeat_s ({max(2 * heartbeat, MIN_LEASE_S):g})",
                setting="lease_s", source=lease_src)
        raise ConfigError(
            f"setting heartbeat_s from {hb_src}: {heartbeat:g} is not well under lease_s {lease:g} "
            f"({origin(lease_src)}); use more than 0 and at most half of lease_s ({lease / 2:g})",
            setting="heartbeat_s", source=hb_src)
    return dataclasses.replace(settings, **values)


def load_settings(
    *,
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    prefs: Mapping[str, Any] | None = None,
    config_file: str | Path | None = None,
) -> Settings:
    """Build Settings. Precedence: flags > env > config file > Blender prefs > defaults.

    The TOML file (`SLACK_AI_CONFIG` or `config_file`) uses either the field names or the
    environment variable names as keys, at the top level or under `[slack_ai]`.
    """
    env = os.environ if env is None else env
    names = {f.name for f in fields(Settings)}
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def apply(source: Mapping[str, Any], where: Callable[[str, str], str], *, warn_unknown: str = "") -> None:
        for key, value in source.items():
            name = ENV_VARS.get(key, key)
            if name not in names:
                if warn_unknown:
                    logging.getLogger(__name__).warning("%s: unknown setting %r ignored", warn_unknown, key)
                continue
            if value not in (None, ""):
                raw[name], sources[name] = value, where(key, name)

    if prefs:
        apply(prefs, lambda _key, _name: PREFS_SOURCE)
    path = config_file or env.get("SLACK_AI_CONFIG")
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        section = data.get("slack_ai", data)
        if not isinstance(section, dict):
            raise ConfigError(f"config file {path}: [slack_ai] must be a table of settings")
        apply(section, lambda _key, _name: file_source(path), warn_unknown=file_source(path))
    apply({k: v for k, v in env.items() if k in ENV_VARS}, lambda key, _name: env_source(key))
    if flags:
        apply(flags, lambda _key, name: flag_source(name))
    settings = validate_settings(dataclasses.replace(Settings(), **raw), sources)
    if env.get("SLACK_AI_LOCAL_ONLY", "").lower() in ("1", "true", "yes"):
        # Set by the Blender command when online access is off (`blender -b` without
        # --online-mode): services off this machine are not used.
        settings, dropped = local_only(settings)
        if dropped:
            logging.getLogger(__name__).warning("online access is off: not using %s", ", ".join(dropped))
    return settings
