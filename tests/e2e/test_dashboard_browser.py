"""The farm dashboard in a real browser: Debian's chromium, headless, driven by Playwright.

Two real `serve` processes share one SQLite job table: node A renders (a tiny Cycles still,
real bpy) and serves the page under `--http`; node B takes analyses only. The page must show
both nodes, the finished render with its thumbnail actually decoded (naturalWidth > 0), a
prompt full of HTML as plain text, and a job added after the page loaded (it updates live).

The screenshot goes to the test's tmp folder; with SLACK_AI_SCREENSHOTS=1 (or when the file
is missing) it also replaces docs/img/dashboard.png, the README's picture. Skips only when
/usr/bin/chromium or the playwright package is missing (`.ci/run` installs both).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from slack_ai_addon.core.jobs import Job, JobKind, JobStatus, Requester
from slack_ai_addon.storage.db import open_sql_store
from tests.waiting import free_port, http_get, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "img" / "dashboard.png"
HOSTILE = '<img src=x onerror="document.title=\'pwned\'"> <b>I love</b> this farm & its "nodes"'

pytestmark = [pytest.mark.slow, pytest.mark.blender]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (test extra)")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (/usr/bin/chromium; `apt-get install chromium`)",
                allow_module_level=True)


def _free_port() -> int:
    return free_port()


def _serve(tmp: Path, db: str, node: str, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "S3_"))}
    config = tmp / "settings.toml"
    config.write_text("heartbeat_s = 1\n")  # the registry row follows each job within a second
    env.update(DATABASE_URL=db, SLACK_AI_OUTPUT_DIR=str(tmp / node), SLACK_AI_NODE_ID=node,
               SLACK_AI_PROVIDER_ORDER="offline", SLACK_AI_CONFIG=str(config), NO_PROXY="127.0.0.1")
    log = (tmp / f"{node}.log").open("w")
    return subprocess.Popen([sys.executable, "-m", "headless_runner", "serve", "--role", "worker", *extra],
                            cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def _get(url: str) -> tuple[int, bytes]:
    return http_get(url)


def _wait(condition: Any, timeout: float, what: str) -> Any:
    return wait_until(condition, timeout, what, every=0.2, ignoring=(OSError,))


def test_the_dashboard_shows_nodes_jobs_and_thumbnails_live(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    store = open_sql_store(db, outbox_path=tmp_path / "test-outbox.jsonl")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    nodes = [_serve(tmp_path, db, "render-node-a", "--http", f"127.0.0.1:{port}"),
             _serve(tmp_path, db, "analysis-node-b", "--no-render")]
    try:
        render = store.add(Job(kind=JobKind.RENDER, request_text="a red cube on a grey floor, cycles, 160x120, "
                               "8 samples", requester=Requester(user_id="U0ANA", user_name="ana", source="slack")))
        analysis = store.add(Job(kind=JobKind.ANALYZE, request_text=HOSTILE,
                                 requester=Requester(user_id="U0BOB", user_name="bob", source="slack")))
        _wait(lambda: all(store.get(j.id).status is JobStatus.DONE for j in (render, analysis)),  # type: ignore[union-attr]
              180, "both jobs done")
        _wait(lambda: len(json.loads(_get(base + "/api/farm")[1])["nodes"]) == 2,
              30, "two nodes in /api/farm")
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 760})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(base + "/dashboard")
                page.wait_for_selector("#nodes tbody tr[data-node]", timeout=15_000)
                page.wait_for_function("document.querySelectorAll('#nodes tbody tr[data-node]').length === 2",
                                       timeout=15_000)
                page.wait_for_function("[...document.querySelectorAll('tr[data-node]')].every("
                                       "r => r.lastChild.textContent === '1 / 0')", timeout=15_000)
                rows = {r.get_attribute("data-node"): r.inner_text() for r in page.query_selector_all("tr[data-node]")}
                assert set(rows) == {"render-node-a", "analysis-node-b"}
                assert "idle" in rows["render-node-a"] and "cycles,eevee,workbench" in rows["render-node-a"]
                assert "worker" in rows["analysis-node-b"] and "cycles" not in rows["analysis-node-b"]
                # The finished render: status, requester, and a thumbnail the browser decoded.
                card = f'article[data-job="{render.id}"]'
                page.wait_for_selector(f'{card}[data-status="done"] img.thumb', timeout=15_000)
                page.wait_for_function(f"document.querySelector('{card} img.thumb').complete && "
                                       f"document.querySelector('{card} img.thumb').naturalWidth > 0",
                                       timeout=15_000)
                assert page.eval_on_selector(f"{card} img.thumb", "i => i.naturalWidth") == 160
                assert page.inner_text(f"{card} .requester") == "ana"
                # Escaped: the hostile prompt is text, no element was made from it, nothing ran.
                hostile = f'article[data-job="{analysis.id}"]'
                assert page.inner_text(f"{hostile} .prompt") == HOSTILE
                assert page.eval_on_selector(hostile, "a => a.querySelectorAll('img, b').length") == 0
                assert page.title() == "Render farm" and not errors, errors
                # Live: a job queued after the page loaded shows up without a reload (poll: 2 s).
                later = store.add(Job(kind=JobKind.ANALYZE, request_text="what a lovely queue",
                                      requester=Requester(user_name="cy", source="slack")))
                page.wait_for_selector(f'article[data-job="{later.id}"]', timeout=10_000)
                page.wait_for_selector(f'article[data-job="{later.id}"][data-status="done"]', timeout=30_000)
                shot = tmp_path / "dashboard.png"
                page.screenshot(path=str(shot), full_page=True)
            finally:
                browser.close()
        assert shot.stat().st_size > 10_000
        if os.environ.get("SLACK_AI_SCREENSHOTS") == "1" or not SCREENSHOT.exists():
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, SCREENSHOT)
        # A thumbnail is served by job id only: no other job's id, no path, no traversal.
        assert _get(f"{base}/api/jobs/{render.id}/thumbnail")[1][:8] == b"\x89PNG\r\n\x1a\n"
        for bad in ("/api/jobs/../../etc/passwd/thumbnail", f"/api/jobs/{analysis.id}/thumbnail",
                    "/api/jobs/no-such-job/thumbnail", "/api/jobs/%2e%2e%2fjobs.db/thumbnail"):
            assert _get(base + bad)[0] == 404, bad
    finally:
        for node in nodes:
            node.send_signal(signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(60)
            except subprocess.TimeoutExpired:
                node.kill()
        store.close()
    assert [n.returncode for n in nodes] == [0, 0], [(tmp_path / f).read_text()[-2000:]
                                                     for f in ("render-node-a.log", "analysis-node-b.log")]
