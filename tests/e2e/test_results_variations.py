"""Variations (core/variations.py) through the real agent and the local Slack: one carousel
of 4 cards whose images differ pairwise; Final on card 3 renders exactly that variant; the
same variant rendered twice gives the same image; a refused carousel becomes a contact sheet
with numbered buttons."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat
from test_agent_harness import Harness, harness  # noqa: F401 - the fixture

from slack_ai_addon.agent import router as router_module
from slack_ai_addon.core.scene_spec import parse_scene_spec
from slack_ai_addon.core.variations import split_request, variants

C = "C0RENDERS"


def _image(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def _distance(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0-255."""
    return sum(ImageStat.Stat(ImageChops.difference(a, b.resize(a.size))).mean) / 3


def _start(h: Harness, text: str) -> str:
    h.srv.send_slash_command("/render", text, user_id="U1", channel_id=C)
    return str(h.wait(lambda: [m["ts"] for m in h.bot_messages(C) if m.get("thread_ts") in (None, m["ts"])],
                      what="placeholder")[0])


def _carousel(h: Harness, ts: str) -> dict[str, Any]:
    return h.wait(lambda: next((m for m in h.srv.thread_messages(C, ts)
                                if any(b["type"] == "carousel" for b in m.get("blocks") or [])), None),
                  timeout=20, what="carousel")


def _file_of(h: Harness, job_id: str) -> Image.Image:
    f = h.wait(lambda: next((f for f in h.srv.files.values() if f.completed and job_id in f.title), None),
               timeout=20, what=f"image of {job_id}")
    return _image(f.data)


def test_request_words_and_determinism() -> None:
    assert split_request("4 variations of a red car on a street") == (4, "a red car on a street")
    assert split_request("give me three variations of a cube") == (3, "a cube")
    assert split_request("20 variations of a cube") == (8, "a cube")
    assert split_request("a red cube")[0] == 0
    spec, _ = parse_scene_spec({"objects": [{"primitive": "cube", "material": {"base_color": "#ff0000"}}]})
    assert variants(spec, 4) == variants(spec, 4)  # same spec -> same seeds and variants


def test_four_variations_final_and_same_image_twice(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    h = harness
    ts = _start(h, "4 variations of a red cube on a checkered floor")
    message = _carousel(h, ts)
    carousel = next(b for b in message["blocks"] if b["type"] == "carousel")
    cards = carousel["elements"]
    assert len(cards) == 4
    files = {f.id: f for f in h.srv.files.values()}
    images = [_image(files[c["hero_image"]["slack_file"]["id"]].data) for c in cards]
    for i in range(4):
        for j in range(i + 1, 4):
            assert _distance(images[i], images[j]) > 20, (i, j)
    job = h.wait(lambda: next((j for j in h.store.list_jobs() if j.result.get("variants") and j.status.is_final), None),
                 what="variations job")
    stored = job.result["variants"]
    assert [v["number"] for v in stored] == [1, 2, 3, 4] and all(isinstance(v["seed"], int) for v in stored)
    assert job.result["variants"][0]["spec"]["objects"][0]["material"]["base_color"] == "#ff0000"  # as asked

    h.srv.click_button(C, message["ts"], "variant_final_3", user_id="U1")
    final = h.wait(lambda: [j for j in h.store.list_jobs() if j.options.get("variant") == 3 and j.status.is_final],
                   timeout=20, what="final of variant 3")[0]
    assert final.status.value == "done" and final.spec == stored[2]["spec"]
    assert final.options["seed"] == stored[2]["seed"]
    full = _file_of(h, final.id)
    assert full.size == (stored[2]["spec"]["output"]["width"], stored[2]["spec"]["output"]["height"])
    assert _distance(full, images[2]) < 5  # card 3's picture
    assert all(_distance(full, images[k]) > 20 for k in (0, 1, 3))

    monkeypatch.setattr(router_module, "REPEAT_CLICK_S", 0.0)  # the same button again, on purpose
    h.srv.click_button(C, message["ts"], "variant_final_3", user_id="U1")
    again = h.wait(lambda: [j for j in h.store.list_jobs() if j.options.get("variant") == 3 and j.status.is_final
                            and j.id != final.id], timeout=20, what="second final of variant 3")[0]
    assert ImageChops.difference(_file_of(h, again.id), full).getbbox() is None  # the same image

    h.srv.click_button(C, message["ts"], "variant_vary_2", user_id="U1")
    varied = h.wait(lambda: [j for j in h.store.list_jobs() if j.options.get("varied_from") == f"{job.id}:2"
                             and j.status.is_final], timeout=20, what="vary")[0]
    assert varied.status.value == "done" and len(varied.result["variants"]) == 4
    assert varied.result["variants"][0]["spec"] == stored[1]["spec"]  # variations of variant 2


def test_refused_carousel_becomes_a_contact_sheet(harness: Harness) -> None:  # noqa: F811
    h = harness
    h.renderer.frame_s = 0.5  # time to arm the fault between the placeholder and the carousel
    ts = _start(h, "3 variations of a blue cube")
    h.srv.inject_fault("chat.postMessage", status=None, error="invalid_blocks", times=1)
    h.wait(lambda: h.final_update(ts), timeout=30, what="final")
    sheet = h.wait(lambda: next((f for f in h.srv.files.values() if f.filename == "variants.png"), None),
                   what="contact sheet")
    assert _image(sheet.data).size == (3 * 64, 48)
    numbered = h.wait(lambda: next((m for m in h.srv.thread_messages(C, ts) if "Final 3" in str(m.get("blocks"))),
                                   None), what="numbered buttons")
    assert "Vary 1" in str(numbered["blocks"])


def test_vary_on_any_result(harness: Harness) -> None:  # noqa: F811
    h = harness
    ts = _start(h, "a green cube")
    h.wait(lambda: h.final_update(ts), timeout=20, what="final")
    parent = h.store.list_jobs()[0]
    h.srv.click_button(C, ts, "variant_vary_0", user_id="U1")
    varied = h.wait(lambda: [j for j in h.store.list_jobs() if j.options.get("varied_from") == f"{parent.id}:0"
                             and j.status.is_final], timeout=20, what="variations of a result")[0]
    assert [v["number"] for v in varied.result["variants"]] == [1, 2, 3, 4]
    assert varied.result["variants"][0]["spec"] == parent.spec
    _carousel(h, ts)
