"""`/blender assets [words]` through the fake Slack server (issue 15): the text answer by
response_url (names escaped), one contact-sheet PNG uploaded to the channel."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from test_agent_harness import Harness
from test_agent_harness import harness as harness  # noqa: F401  (the fixture)

from slack_ai_addon.assets import service

C = "C0GENERAL"


def _asset(name: str, kind: str, tags: list[str], preview: str = "") -> dict[str, Any]:
    return {"name": name, "type": kind, "tags": tags, "description": "", "catalog_id": "", "bounds": None,
            "preview": preview}


@pytest.fixture
def assets(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "studio"
    root.mkdir()
    (root / "props.blend").write_bytes(b"BLENDER")
    index = service.configure(folders=str(root), cache_path=tmp_path / "cache" / "index.json")

    def reader(_path: Path, previews: Path) -> list[dict[str, Any]]:
        # A stored preview for the lamp (pure red), none for the other two.
        Image.new("RGB", (64, 64), (255, 0, 0)).save(previews / "lamp.png")
        return [_asset("Hero Lamp", "object", ["light"], "lamp.png"), _asset("Oak Barrel", "collection", ["wood"]),
                _asset("<!here> Lamp", "object", ["light"])]

    index.refresh(reader)
    yield root
    service.reset()


def test_blender_assets_answers_with_names_and_a_contact_sheet(harness: Harness, assets: Path) -> None:  # noqa: F811
    h = harness
    env = h.srv.send_slash_command("/blender", "assets lamp", user_id="U1", channel_id=C)
    ack = h.srv.wait_for_ack(env)
    assert not (ack.payload or {}).get("text")  # answered later, not with "I don't know"
    post = h.wait(lambda: [p for p in h.srv.response_url_posts if "Hero Lamp" in str(p)], what="asset list")[0]
    text = str(post)
    assert "Oak Barrel" not in text  # only what matches "lamp"
    assert "<!here>" not in text and "&lt;!here&gt; Lamp" in text
    sheet = h.wait(lambda: [f for f in h.srv.files.values() if f.completed and f.channel_id == C], what="upload")[0]
    img = Image.open(io.BytesIO(sheet.data)).convert("RGB")
    assert img.width >= 2 * 128
    # The lamp's stored preview (pure red) is one tile; the asset without a preview gets a plain one.
    centres = [img.getpixel((8 + c * 136 + 64, 8 + 28 + 64)) for c in range(2)]
    assert (255, 0, 0) in centres and len(set(centres)) == 2


def test_blender_assets_without_libraries_says_how_to_configure(harness: Harness, tmp_path: Path) -> None:  # noqa: F811
    service.configure(folders="", cache_path=tmp_path / "none.json")
    try:
        harness.srv.send_slash_command("/blender", "assets", user_id="U1", channel_id=C)
        post = harness.wait(lambda: [p for p in harness.srv.response_url_posts if "asset libraries" in str(p)],
                            what="no-library answer")[0]
        assert "SLACK_AI_ASSET_LIBRARIES" in str(post)
    finally:
        service.reset()
