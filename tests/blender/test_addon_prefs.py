"""Preferences round-trip through a saved userpref.blend; secrets go to a 0600 file and never
into userpref; env vars win over preferences; only plain Settings reach threads."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")
import addon_utils  # noqa: E402

pytestmark = pytest.mark.blender

REPO = Path(__file__).resolve().parents[2]
ADDON = "slack_ai_addon"
TOKEN = "xoxb-1111-2222-NEVERINUSERPREF"
DB_URL = "mssql+pymssql://sa:Pa55-NEVERINUSERPREF@db.example:1433/slack_ai"


@pytest.fixture
def addon(user_dirs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in ("ROUTELLM_MODEL", "SLACK_AI_SECRETS_FILE"):
        monkeypatch.delenv(name, raising=False)
    addon_utils.enable(ADDON, default_set=True, handle_error=None)
    yield bpy.context.preferences.addons[ADDON].preferences
    addon_utils.disable(ADDON, default_set=True, handle_error=None)


def test_secrets_stay_out_of_userpref_and_settings_round_trip(addon, tmp_path: Path) -> None:
    from slack_ai_addon.ui import preferences

    addon.slack_bot_token = TOKEN
    addon.database_url = DB_URL
    addon.routellm_model = "my-routellm-model"
    addon.provider_order = "openai,offline"
    addon.lease_s = 42.0

    secrets_file = tmp_path / "config" / "slack_ai_addon_secrets.json"
    assert secrets_file.is_file()
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert TOKEN in secrets_file.read_text()

    assert bpy.ops.wm.save_userpref() == {"FINISHED"}
    userpref = tmp_path / "config" / "userpref.blend"
    data = userpref.read_bytes()
    assert b"my-routellm-model" in data  # the plain preferences are saved ...
    assert TOKEN.encode() not in data  # ... the secrets are not
    assert b"NEVERINUSERPREF" not in data

    # Round trip: lose the in-memory values, read the saved preferences back.
    addon.routellm_model = "changed-in-memory"
    assert bpy.ops.wm.read_userpref() == {"FINISHED"}
    prefs = bpy.context.preferences.addons[ADDON].preferences
    assert prefs.routellm_model == "my-routellm-model"
    assert prefs.lease_s == pytest.approx(42.0)
    assert prefs.slack_bot_token == TOKEN  # from the secrets file

    settings = preferences.settings_from_prefs(bpy.context)
    assert settings.slack_bot_token == TOKEN
    assert settings.database_url == DB_URL
    assert settings.routellm_model == "my-routellm-model"
    assert settings.providers == ["openai", "offline"]
    assert settings.lease_s == pytest.approx(42.0)
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings.public_dict())


def test_environment_overrides_preferences(addon, monkeypatch: pytest.MonkeyPatch) -> None:
    from slack_ai_addon.ui import preferences

    addon.routellm_model = "from-prefs"
    monkeypatch.setenv("ROUTELLM_MODEL", "from-env")
    assert preferences.settings_from_prefs(bpy.context).routellm_model == "from-env"
    monkeypatch.delenv("ROUTELLM_MODEL")
    assert preferences.settings_from_prefs(bpy.context).routellm_model == "from-prefs"


def test_every_environment_setting_has_a_preference_with_a_tooltip(addon) -> None:
    from slack_ai_addon.core.config import ENV_VARS
    from slack_ai_addon.ui import preferences

    rna = type(addon).bl_rna.properties
    for field_name in ENV_VARS.values():
        assert field_name in rna, f"no preference for {field_name}"
        assert rna[field_name].description, f"{field_name} has no tooltip"
    for name in preferences.SECRET_NAMES:
        assert rna[name].subtype == "PASSWORD"


def test_test_button_reports_through_the_timer_queue(addon, monkeypatch: pytest.MonkeyPatch) -> None:
    """A check runs on a thread; its typed result reaches the panel only via the timer."""
    import time

    from slack_ai_addon.blender import timer_driver
    from slack_ai_addon.ui import state

    assert bpy.ops.slack_ai.test_service(service="database") == {"FINISHED"}
    assert "database" in state.session.checks_pending
    deadline = time.monotonic() + 10
    while "database" not in state.session.checks and time.monotonic() < deadline:
        timer_driver.tick()
        time.sleep(0.02)
    result = state.session.checks["database"]
    assert result.ok, result.detail
    assert result.detail.startswith("sqlite: 0 queued")
    assert "database" not in state.session.checks_pending

    # Offline (bpy.app.online_access False, as --offline-mode gives): a remote service is
    # refused on the main thread, with the reason shown, and no thread starts.
    from slack_ai_addon.ui import operators

    monkeypatch.setattr(operators, "online_access", lambda: False)
    addon.slack_bot_token = TOKEN
    assert bpy.ops.slack_ai.test_service(service="slack") == {"CANCELLED"}
    assert "slack" not in state.session.checks_pending
    assert not state.session.checks["slack"].ok
    assert state.session.checks["slack"].detail.startswith("Online access is off")
    assert TOKEN not in state.session.checks["slack"].detail
