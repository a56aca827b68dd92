"""Real-bpy tests: each test starts from an empty factory file; skipped when bpy is missing."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

from slack_ai_addon.core.pipeline import RenderProgress, RenderResult  # noqa: E402
from slack_ai_addon.core.scene_spec import SceneSpec  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.blender)


@pytest.fixture(autouse=True)
def fresh_blender_file() -> Iterator[None]:
    """Factory settings, no objects: what a user's new empty file looks like."""
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    from slack_ai_addon.blender import headless

    headless.prepare_module_mode()
    yield


@pytest.fixture
def render_spec(tmp_path: Path) -> Callable[..., tuple[RenderResult, list[RenderProgress]]]:
    """Render a spec with the real renderer into tmp_path/<job_id>; returns (result, progress events)."""
    from slack_ai_addon.blender.renderer import BlenderSceneRenderer

    renderer = BlenderSceneRenderer()

    def run(spec: SceneSpec, *, job_id: str = "test-job", should_stop: Callable[[], str] = lambda: "",
            on_progress: Callable[[RenderProgress], None] | None = None) -> tuple[RenderResult, list[RenderProgress]]:
        events: list[RenderProgress] = []

        def progress(p: RenderProgress) -> None:
            events.append(p)
            if on_progress:
                on_progress(p)

        result = renderer.render(spec, tmp_path / job_id, job_id=job_id, progress=progress,
                                 should_stop=should_stop)
        return result, events

    return run


REPO = Path(__file__).resolve().parents[2]
ADDON = "slack_ai_addon"


@pytest.fixture
def user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private Blender user folder with the add-on linked in, as a user would install it."""
    scripts = tmp_path / "scripts"
    (scripts / "addons").mkdir(parents=True)
    os.symlink(REPO / ADDON, scripts / "addons" / ADDON)
    monkeypatch.setenv("BLENDER_USER_SCRIPTS", str(scripts))
    monkeypatch.setenv("BLENDER_USER_CONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path
