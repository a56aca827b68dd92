"""Draft, then final, with real Blender through the real agent and the local Slack: the thread
shows a draft image early (well before the final), with the same composition (dominant
colours and object positions by pixels), then the final at the requested size. "quick look"
gives the draft alone; "no draft" the final alone."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from test_agent_harness import close_harness, make_harness  # noqa: E402

from slack_ai_addon.blender.renderer import BlenderSceneRenderer  # noqa: E402
from slack_ai_addon.providers.offline import OfflineInterpreter  # noqa: E402

pytestmark = pytest.mark.blender
C = "C0RENDERS"
# Big enough that the final takes several seconds here (Cycles, 640x480): the draft must be
# in the thread before 30% of the final's time.
SLOW = "a red cube and a blue sphere on a white floor, 640x480, cycles, 32 samples"


def _drain_until(h: Any, condition: Any, timeout: float, what: str) -> Any:
    dispatcher = h.runtime.dispatcher()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dispatcher.drain(0.05)  # bpy only on this thread
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _thread_images(h: Any, ts: str) -> list[tuple[float, str, Image.Image]]:
    """(time shared, title, image) of every image uploaded into the thread, in order."""
    shared = {c.response["files"][0]["id"]: c.at for c in h.srv.calls("files.completeUploadExternal")
              if c.response and c.response.get("ok")}
    found = []
    for f in h.srv.files.values():
        if f.thread_ts == ts and f.completed and f.filename.endswith(".png"):
            found.append((shared.get(f.id, 0.0), f.title, Image.open(io.BytesIO(f.data)).convert("RGB")))
    return sorted(found, key=lambda x: x[0])


def _centroid(img: Image.Image, want: str) -> tuple[float, float, int]:
    """Centre of the strongly red (or blue) pixels, as fractions of the image size."""
    xs = ys = n = 0
    for y in range(img.height):
        for x in range(img.width):
            r, g, b = img.getpixel((x, y))  # type: ignore[misc]
            hit = (r > 2 * g + 20 and r > 2 * b + 20) if want == "red" else (b > 2 * r + 20 and b > g + 20)
            if hit:
                xs, ys, n = xs + x, ys + y, n + 1
    assert n, f"no {want} pixels"
    return xs / n / img.width, ys / n / img.height, n


def _start(h: Any, text: str) -> tuple[float, str]:
    def placeholders() -> list[str]:
        return [m["ts"] for m in h.bot_messages(C) if m.get("thread_ts") in (None, m["ts"])]

    before = set(placeholders())
    t0 = time.time()
    env = h.srv.send_slash_command("/render", text, user_id="U1", channel_id=C)
    assert h.srv.wait_for_ack(env, timeout=3)
    new = _drain_until(h, lambda: [ts for ts in placeholders() if ts not in before], 15, "placeholder")
    return t0, new[0]


@pytest.fixture
def h(tmp_path: Path) -> Any:
    harness = make_harness(tmp_path)
    harness.runtime.pipeline.deps.renderer = BlenderSceneRenderer(save_blend=False)
    harness.runtime.pipeline.deps.interpreter = OfflineInterpreter()
    harness.agent.start()
    assert harness.agent.wait_until_connected(10)
    try:
        yield harness
    finally:
        close_harness(harness)


def test_draft_then_final_same_composition(h: Any) -> None:
    t0, ts = _start(h, SLOW)
    _drain_until(h, lambda: h.final_update(ts), 240, "final update")
    images = _thread_images(h, ts)
    assert [title.split(" ")[0] for _, title, _ in images] == ["Draft", "Render"], images
    (draft_at, _, draft), (final_at, _, final) = images
    job = h.store.list_jobs()[0]
    assert final.size == (640, 480)
    assert draft.size == (160, 120)
    # The draft is in the thread before 30% of the time the final took to arrive.
    to_draft, to_final = draft_at - t0, final_at - t0
    print(f"draft in thread after {to_draft:.2f} s, final after {to_final:.2f} s, timings {job.timings}")
    assert to_draft < 0.3 * to_final, (to_draft, to_final)
    # Same composition: each object's pixels sit at the same place, the picture's colours match.
    for colour in ("red", "blue"):
        dx, dy, dn = _centroid(draft, colour)
        fx, fy, fn = _centroid(final, colour)
        assert abs(dx - fx) < 0.03 and abs(dy - fy) < 0.03, (colour, (dx, dy), (fx, fy))
        assert 0.7 < (dn / (160 * 120)) / (fn / (640 * 480)) < 1.4, (colour, dn, fn)
    small = final.resize(draft.size, Image.Resampling.BOX)
    diff = sum(abs(a - b) for a, b in zip(small.tobytes(), draft.tobytes(), strict=True)) / len(draft.tobytes())
    assert diff < 20, diff


def test_quick_look_is_the_draft_alone_and_no_draft_skips_it(h: Any) -> None:
    _, ts = _start(h, "quick look: a red cube on a white floor, 640x480, cycles, 64 samples")
    _drain_until(h, lambda: h.final_update(ts), 120, "quick look")
    images = _thread_images(h, ts)
    assert [img.size for _, _, img in images] == [(160, 120)], images

    _, ts = _start(h, "a red cube on a white floor, 320x240, cycles, 16 samples, no draft")
    _drain_until(h, lambda: h.final_update(ts), 120, "final only")
    images = _thread_images(h, ts)
    assert [img.size for _, _, img in images] == [(320, 240)], images


def _mean_distance(a: Image.Image, b: Image.Image) -> float:
    b = b.resize(a.size, Image.Resampling.BOX)
    return sum(abs(x - y) for x, y in zip(a.tobytes(), b.tobytes(), strict=True)) / len(a.tobytes())


def test_variations_with_real_blender(h: Any) -> None:
    """4 variants whose drafts differ pairwise; Final on card 3 renders card 3's scene in full."""
    _, ts = _start(h, "4 variations of a red cube on a checkered floor, 320x240, cycles, 16 samples")
    message = _drain_until(h, lambda: next((m for m in h.srv.thread_messages(C, ts)
                                            if any(b["type"] == "carousel" for b in m.get("blocks") or [])), None),
                           120, "carousel")
    cards = next(b for b in message["blocks"] if b["type"] == "carousel")["elements"]
    files = {f.id: f for f in h.srv.files.values()}
    drafts = [Image.open(io.BytesIO(files[c["hero_image"]["slack_file"]["id"]].data)).convert("RGB") for c in cards]
    assert len(drafts) == 4 and all(d.size == (160, 120) for d in drafts)
    for i in range(4):
        for j in range(i + 1, 4):
            assert _mean_distance(drafts[i], drafts[j]) > 8, (i, j, _mean_distance(drafts[i], drafts[j]))
    h.srv.click_button(C, message["ts"], "variant_final_3", user_id="U1")
    final = _drain_until(h, lambda: [j for j in h.store.list_jobs() if j.options.get("variant") == 3
                                     and j.status.is_final], 120, "final of variant 3")[0]
    assert final.status.value == "done", final.error
    upload = _drain_until(h, lambda: next((f for f in h.srv.files.values() if f.completed and final.id in f.title
                                           and f.title.startswith("Render")), None), 60, "final image")
    full = Image.open(io.BytesIO(upload.data)).convert("RGB")
    assert full.size == (320, 240)
    near = _mean_distance(drafts[2], full)
    assert near < 12 and all(near < _mean_distance(drafts[k], full) for k in (0, 1, 3)), \
        [_mean_distance(d, full) for d in drafts]
