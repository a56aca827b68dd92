"""Real-bpy tests: each test starts from an empty factory file; skipped when bpy is missing."""

from __future__ import annotations

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
