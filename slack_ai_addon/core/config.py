"""Settings: one plain dataclass that crosses threads; built from flags, env, a TOML file,
Blender preferences and defaults, in that order of precedence (DESIGN.md).

Secrets live in the same object but never in its `repr`, logs or `public_dict()`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

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
}

SECRET_FIELDS = frozenset({
    "slack_bot_token", "slack_app_token", "slack_signing_secret",
    "abacus_api_key", "openai_api_key", "s3_secret_key", "s3_access_key",
})


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

    def public_dict(self) -> dict[str, Any]:
        """All settings with secrets masked: safe for logs, panels and Slack."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = mask_secret(value) if f.name in SECRET_FIELDS else value
        out["database_url"] = redact_url_password(self.database_url)
        return out

    def secrets(self) -> list[str]:
        """Every secret value that is set (the database password too): for redaction filters."""
        values = [v for name in SECRET_FIELDS if (v := getattr(self, name))]
        password = url_password(self.database_url)
        return values + ([password] if password else [])

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
    from urllib.parse import urlparse

    return (urlparse(url).hostname or "") if "://" in url else ""


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


def redact_url_password(url: str) -> str:
    """`scheme://user:secret@host/db` -> `scheme://user:***@host/db`."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", url)


def url_password(url: str) -> str:
    match = re.search(r"://[^:/@\s]*:([^@\s]*)@", url)
    return match.group(1) if match else ""


def mask_secret(value: Any) -> str:
    if not value:
        return ""
    text = str(value)
    return text[:5] + "…" if len(text) > 12 else "…"


def _coerce(name: str, value: Any) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if kind in ("float", float):
        return float(value)
    return str(value)


class ConfigError(ValueError):
    pass


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
    values: dict[str, Any] = {}

    def apply(source: Mapping[str, Any]) -> None:
        for key, value in source.items():
            name = ENV_VARS.get(key, key)
            if name in names and value not in (None, ""):
                values[name] = _coerce(name, value)

    if prefs:
        apply(prefs)
    path = config_file or env.get("SLACK_AI_CONFIG")
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        apply(data.get("slack_ai", data))
    apply({k: v for k, v in env.items() if k in ENV_VARS})
    if flags:
        apply(flags)
    settings = dataclasses.replace(Settings(), **values)
    if env.get("SLACK_AI_LOCAL_ONLY", "").lower() in ("1", "true", "yes"):
        # Set by the Blender command when online access is off (`blender -b` without
        # --online-mode): services off this machine are not used.
        settings, dropped = local_only(settings)
        if dropped:
            import logging

            logging.getLogger(__name__).warning("online access is off: not using %s", ", ".join(dropped))
    return settings
