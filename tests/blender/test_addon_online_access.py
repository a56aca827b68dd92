"""With Blender's online access off, the panel's local render uses no service off this
machine: the runtime is built from settings without them, and the panel says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slack_ai_addon.core.config import Settings

pytestmark = pytest.mark.blender


def test_runtime_without_online_access_leaves_remote_services_out(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    from slack_ai_addon.ui import state

    built: list[Settings] = []

    class FakeRuntime:
        def add_listener(self, listener: Any) -> None:
            pass

    def factory(settings: Settings) -> Any:
        built.append(settings)
        return FakeRuntime()

    monkeypatch.setattr(state, "runtime_factory", factory)
    monkeypatch.setattr(state.session, "runtime", None)
    monkeypatch.setattr(state.session, "refused", "")
    settings = Settings(openai_api_key="sk-remote-key", s3_bucket_name="renders",
                        database_url="mssql+pymssql://sa:pw@sql.example:1433/db", output_dir=str(tmp_path))
    state.ensure_runtime(settings, online_access=False)
    assert built and built[0].openai_api_key == "" and built[0].s3_bucket_name == "" and built[0].database_url == ""
    assert "OpenAI" in state.session.refused and "SQL Server" in state.session.refused

    monkeypatch.setattr(state.session, "runtime", None)
    state.ensure_runtime(settings, online_access=True)
    assert built[1].openai_api_key == "sk-remote-key"
