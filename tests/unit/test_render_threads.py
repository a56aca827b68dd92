"""The render-thread policy (Settings.render_threads; blender/render_settings.py, no bpy needed)."""

from __future__ import annotations

from pathlib import Path

from slack_ai_addon.blender.render_settings import AUTO_MIN_CORES, RenderThreads
from slack_ai_addon.core.config import Settings
from slack_ai_addon.runtime import build_runtime


def test_an_explicit_setting_wins() -> None:
    assert RenderThreads(setting=3).threads(cores=2) == 3
    assert RenderThreads(setting=3, agent_attached=True).threads(cores=64) == 3


def test_automatic_leaves_a_core_only_with_an_agent_on_a_machine_where_it_costs_little() -> None:
    assert RenderThreads().threads(cores=AUTO_MIN_CORES) == 0  # no agent: all cores
    # 2 cores: leaving one costs about half the render speed (measured), so all cores render.
    assert RenderThreads(agent_attached=True).threads(cores=2) == 0
    assert RenderThreads(agent_attached=True).threads(cores=AUTO_MIN_CORES - 1) == 0
    assert RenderThreads(agent_attached=True).threads(cores=AUTO_MIN_CORES) == AUTO_MIN_CORES - 1
    assert RenderThreads(agent_attached=True).threads(cores=32) == 31


def test_the_runtime_marks_the_agent_attached_and_hands_the_setting_over(tmp_path: Path) -> None:
    settings = Settings(output_dir=str(tmp_path), database_url=f"sqlite:///{tmp_path / 'jobs.db'}",
                        render_threads=0)
    runtime = build_runtime(settings, cli=True, with_renderer=False)
    try:
        assert runtime.render_threads.agent_attached is False
        runtime.agent_deps()
        assert runtime.render_threads.agent_attached is True
    finally:
        runtime.close()
    runtime = build_runtime(Settings(output_dir=str(tmp_path), database_url=f"sqlite:///{tmp_path / 'j2.db'}",
                                     render_threads=5), cli=True, with_renderer=False)
    try:
        assert runtime.render_threads.threads() == 5
    finally:
        runtime.close()
