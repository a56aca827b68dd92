"""Add-on preferences: every setting of the README's Configuration table, grouped, with tooltips.

Secrets are properties with get/set callbacks backed by the 0600 secrets file (secrets.py),
so Blender keeps nothing of them in userpref.blend. Threads never see this class: they get
the plain `Settings` built by `settings_from_prefs()` (precedence: env > config file >
these preferences > defaults, as core.config.load_settings applies it).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty

from ..core.config import ENV_VARS, ConfigError, Settings, load_settings
from . import state
from .secrets import secret_store
from .service_checks import SERVICES

log = logging.getLogger(__name__)

# The add-on's root module: `slack_ai_addon` (legacy) or `bl_ext.<repo>.slack_ai_addon`.
ADDON_PACKAGE = __package__.rpartition(".")[0]

FIELD_ENV = {field: env for env, field in ENV_VARS.items()}
DEFAULTS = Settings()


@dataclass(frozen=True)
class PrefField:
    name: str  # Settings field
    label: str
    tooltip: str
    secret: bool = False


# group id -> (title, services tested from this box, fields)
GROUPS: dict[str, tuple[str, tuple[str, ...], tuple[PrefField, ...]]] = {
    "slack": ("Slack", ("slack",), (
        PrefField("slack_bot_token", "Bot Token", "xoxb- bot token: posts replies and uploads renders", True),
        PrefField("slack_app_token", "App Token", "xapp- app-level token with connections:write, for Socket Mode",
                  True),
        PrefField("slack_signing_secret", "Signing Secret", "Only for the HTTP events mode; Socket Mode needs none",
                  True),
        PrefField("slack_api_url", "API URL", "Slack Web API base URL (a local sandbox URL for testing)"),
    )),
    "llm": ("LLM Providers", ("routellm", "openai", "lmstudio"), (
        PrefField("provider_order", "Provider Order",
                  "Comma-separated order to try: routellm, openai, lmstudio, offline (offline never fails)"),
        PrefField("abacus_api_key", "RouteLLM Key", "Abacus.AI API key for RouteLLM", True),
        PrefField("routellm_base_url", "RouteLLM URL", "RouteLLM OpenAI-compatible base URL"),
        PrefField("routellm_model", "RouteLLM Model", "Model name sent to RouteLLM"),
        PrefField("openai_api_key", "OpenAI Key", "OpenAI API key", True),
        PrefField("openai_base_url", "OpenAI URL", "Leave empty for the SDK default"),
        PrefField("openai_model", "OpenAI Model", "Model for scene interpretation and analysis"),
        PrefField("lm_studio_base_url", "LM Studio URL", "Empty: http://localhost:1234/v1, used only if reachable"),
        PrefField("lm_studio_model", "LM Studio Model", "Empty: whatever model LM Studio has loaded"),
    )),
    "storage": ("Storage", ("s3",), (
        PrefField("output_dir", "Output Folder", "Where renders are written; empty: the user data folder"),
        PrefField("asset_libraries", "Asset Libraries",
                  "Folders of .blend asset files for requests, separated by the system's path separator"),
        PrefField("s3_endpoint_url", "S3 Endpoint", "S3 or MinIO endpoint URL; empty: AWS"),
        PrefField("s3_access_key", "S3 Access Key", "Access key id", True),
        PrefField("s3_secret_key", "S3 Secret Key", "Secret access key", True),
        PrefField("s3_bucket_name", "S3 Bucket", "Bucket for outputs; empty: outputs stay in the local folder"),
        PrefField("s3_region", "S3 Region", "Region of the bucket"),
    )),
    "database": ("Database", ("database",), (
        # The URL can hold a password (mssql+pymssql://user:pass@host), so it is kept as a secret.
        PrefField("database_url", "Database URL",
                  "mssql+pymssql://user:pass@host:1433/slack_ai or sqlite:///path.db; empty: SQLite in the "
                  "user data folder", True),
    )),
    "limits": ("Limits and Access Control", (), (
        PrefField("admin_user_ids", "Admins", "Comma-separated Slack user ids allowed to cancel any job"),
        PrefField("node_id", "Node Id", "This node's name in the job table; empty: hostname-pid"),
        PrefField("default_engine", "Default Engine", "cycles, eevee or workbench"),
        PrefField("lease_s", "Lease (s)", "How long a claimed job stays ours without a heartbeat"),
        PrefField("heartbeat_s", "Heartbeat (s)", "How often leases are renewed"),
        PrefField("stop_grace_s", "Stop Grace (s)",
                  "On stop, how long a running render may go on before it is handed back"),
        PrefField("render_threads", "Render Threads",
                  "Render threads; 0: automatic (one core left to the Slack agent while it is attached)"),
    )),
    "access": ("Access, Quotas and Cost Tiers", (), (
        PrefField("allowed_team_ids", "Allowed Workspaces", "Comma-separated Slack team ids; empty: any"),
        PrefField("allowed_channel_ids", "Allowed Channels", "Comma-separated channel ids; empty: any channel"),
        PrefField("allowed_user_ids", "Allowed Users", "Comma-separated user ids; empty: everyone in the workspace"),
        PrefField("quota_user_requests_per_minute", "Requests/min per User", "0: no limit"),
        PrefField("quota_channel_requests_per_minute", "Requests/min per Channel", "0: no limit"),
        PrefField("quota_user_render_s_per_day", "Render s/day per User", "Render seconds per UTC day; 0: no limit"),
        PrefField("quota_channel_render_s_per_day", "Render s/day per Channel",
                  "Render seconds per UTC day; 0: no limit"),
        PrefField("quota_user_queued", "Queued Jobs per User", "Unfinished jobs one user may have; 0: no limit"),
        PrefField("quota_channel_queued", "Queued Jobs per Channel",
                  "Unfinished jobs one channel may have; 0: no limit"),
        PrefField("queue_cap", "Queue Cap", "Queued jobs across the farm; 0: no limit"),
        PrefField("user_max_cost_s", "User Cost Limit (s)",
                  "Estimated CPU render seconds one job of a non-admin may cost; bigger jobs are reduced"),
        PrefField("admin_max_cost_s", "Admin Cost Limit (s)", "Estimated CPU render seconds one admin job may cost"),
    )),
    "farm": ("Farm", (), (
        PrefField("node_gpu", "Node GPU", "empty: detect; none: no GPU; else the GPU's name"),
        PrefField("node_tags", "Node Tags", "Comma-separated capability tags this node offers, e.g. assets:props"),
        PrefField("require_gpu", "Require GPU", "Every job needs a GPU node"),
        PrefField("require_engine", "Require Engine", "Every job needs this engine; empty: the request's own"),
        PrefField("require_blender", "Require Blender", "Every job needs at least this Blender version, e.g. 4.2"),
        PrefField("slack_updates_per_minute", "Slack Updates/min",
                  "chat.update calls per minute across the whole farm (Slack Tier 3: about 50)"),
        PrefField("slack_posts_per_second", "Slack Posts/s per Channel",
                  "chat.postMessage calls per second per channel across the farm (Slack: about 1)"),
        PrefField("events_http", "Events over HTTP",
                  "HOST:PORT for Slack's Events API over HTTP instead of Socket Mode; empty: off"),
    )),
    "logging": ("Logging", (), (
        PrefField("log_level", "Log Level", "DEBUG, INFO, WARNING or ERROR"),
        PrefField("log_format", "Log Format", "json or text; empty: JSON for services, text for commands"),
        PrefField("http", "Health and Metrics", "HOST:PORT for /health and /metrics on serve and farm nodes; "
                  "empty: off"),
    )),
}
# Float settings whose allowed range starts below 1 (0 = no limit, or a rate below one a second).
FLOAT_MIN = {"stop_grace_s": 0.0, "quota_user_render_s_per_day": 0.0, "quota_channel_render_s_per_day": 0.0,
             "slack_posts_per_second": 0.01, "slack_updates_per_minute": 0.01}
ALL_FIELDS = [f for _title, _services, fields in GROUPS.values() for f in fields]
SECRET_NAMES = frozenset(f.name for f in ALL_FIELDS if f.secret)


def _secret_property(f: PrefField) -> Any:
    def get(_self: Any) -> str:
        return secret_store().get(f.name)

    def set_(_self: Any, value: str) -> None:
        secret_store().set(f.name, value)

    return StringProperty(name=f.label, description=f.tooltip + " (kept in a user-only file, not in userpref)",
                          subtype="PASSWORD", get=get, set=set_)


def _property(f: PrefField) -> Any:
    if f.secret:
        return _secret_property(f)
    default = getattr(DEFAULTS, f.name)
    if isinstance(default, bool):
        return BoolProperty(name=f.label, description=f.tooltip, default=default)
    if isinstance(default, int):
        return IntProperty(name=f.label, description=f.tooltip, default=default, min=0, max=100_000)
    if isinstance(default, float):
        low = FLOAT_MIN.get(f.name, 1.0)
        return FloatProperty(name=f.label, description=f.tooltip, default=default, min=low,
                             max=max(3600.0, default * 10))
    subtype = "DIR_PATH" if f.name == "output_dir" else "NONE"
    return StringProperty(name=f.label, description=f.tooltip, default=str(default), subtype=subtype)


def _annotations() -> dict[str, Any]:
    ann: dict[str, Any] = {f.name: _property(f) for f in ALL_FIELDS}
    ann["config_file"] = StringProperty(
        name="Config File", subtype="FILE_PATH",
        description="Optional TOML file with the same settings (SLACK_AI_CONFIG wins when set)")
    ann["auto_connect"] = BoolProperty(
        name="Connect on Start", default=False,
        description="Connect to Slack shortly after Blender starts (needs online access and tokens)")
    ann["show_secrets_help"] = BoolProperty(name="Where secrets live", default=False)
    return ann


def prefs_mapping(prefs: Any) -> dict[str, Any]:
    """The preferences as a plain dict of Settings fields (secrets from the secrets file)."""
    data: dict[str, Any] = {}
    for f in ALL_FIELDS:
        data[f.name] = secret_store().get(f.name) if f.secret else getattr(prefs, f.name)
    return data


def get_prefs(context: Any = None) -> Any:
    """This add-on's preferences, or None when it is not enabled under ADDON_PACKAGE."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None


def settings_from_prefs(context: Any = None) -> Settings:
    """The plain Settings the threads get, checked (core.config.validate_settings). Raises
    ConfigError (one line: the setting, where its value came from, what is allowed) for a bad
    value or an unreadable config file."""
    prefs = get_prefs(context)
    if prefs is None:
        return load_settings()
    return load_settings(prefs=prefs_mapping(prefs), config_file=prefs.config_file or None)


def online_access() -> bool:
    # Blender < 4.2 has no such switch; there the user's own setup decides.
    return bool(getattr(bpy.app, "online_access", True))


class SLACKAI_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE
    __annotations__ = _annotations()

    def draw(self, context: Any) -> None:
        layout = self.layout
        row = layout.row()
        row.prop(self, "auto_connect")
        row.prop(self, "config_file", text="Config File")
        if os.environ.get("SLACK_AI_CONFIG"):
            layout.label(text="SLACK_AI_CONFIG is set: that file is used", icon="INFO")
        if not online_access():
            layout.label(text="Online access is off: Slack and cloud services stay disconnected", icon="ERROR")
        for group, (title, services, fields) in GROUPS.items():
            box = layout.box()
            header = box.row()
            header.label(text=title)
            for service in services:
                op = header.operator("slack_ai.test_service", text=f"Test {service}", icon="PLUGIN")
                op.service = service
            for f in fields:
                env = FIELD_ENV.get(f.name, "")
                row = box.row()
                if env and os.environ.get(env):
                    row.enabled = False
                    row.prop(self, f.name)
                    box.label(text=f"    overridden by ${env}", icon="LOCKED")
                else:
                    row.prop(self, f.name)
            for service in services:
                draw_check_result(box, service)
            if group == "slack":
                box.operator("slack_ai.test_all", text="Test all services", icon="CHECKMARK")
        box = layout.box()
        box.prop(self, "show_secrets_help", icon="TRIA_DOWN" if self.show_secrets_help else "TRIA_RIGHT",
                 emboss=False)
        if self.show_secrets_help:
            box.label(text=f"Secrets file (mode 0600): {secret_store().path}")
            box.label(text="Tokens and keys are never saved in userpref.blend or .blend files.")


def draw_check_result(layout: Any, service: str) -> None:
    if service in state.session.checks_pending:
        layout.label(text=f"{SERVICES[service]}: testing…", icon="TIME")
        return
    result = state.session.checks.get(service)
    if result is None:
        return
    icon = "CHECKMARK" if result.ok else "ERROR"
    layout.label(text=f"{service}: {result.detail} ({result.elapsed_s:.2f}s)", icon=icon)


def load_settings_or_report(operator: Any, context: Any) -> Settings | None:
    """Operators' helper: Settings, or None after reporting why."""
    try:
        return settings_from_prefs(context)
    except ConfigError as exc:
        operator.report({"ERROR"}, str(exc))
        if state.session.agent is None:
            # The sidebar's connection line says why nothing connects (cleared by the next connect).
            state.session.refused = str(exc)
            state.session.changed = True
        return None


classes = (SLACKAI_AddonPreferences,)
register, unregister = bpy.utils.register_classes_factory(classes)
