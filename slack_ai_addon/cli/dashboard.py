"""The farm dashboard: a read-only page of the nodes, the queue and the recent jobs.

Served under `--http` by every service (`GET /dashboard`, next to /health and /metrics) and
on its own by `headless_runner dashboard [--http HOST:PORT]` (loopback by default). The page
is plain HTML, CSS and JS shipped in `dashboard_static/` (no CDN); it polls `GET /api/farm`
every 2 s and builds its rows with `textContent`, so nothing a Slack user typed is ever
parsed as HTML. Thumbnails come from `GET /api/jobs/<id>/thumbnail`, which serves only an
image output that the job's own row lists (the request names a job id, never a path), or
redirects to the output's stored object-storage URL when the file is not on this machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import mimetypes
import re
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..core.jobs import Job, JobKind, JobStatus
from ..httpserve import QuietHandler, bind

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("dashboard_static")
STATIC_FILES = {"/dashboard": "index.html", "/dashboard/": "index.html", "/dashboard.js": "dashboard.js",
                "/dashboard.css": "dashboard.css"}
RECENT_JOBS = 25
THUMBNAIL_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
THUMBNAIL_MAX_BYTES = 32 * 1024 * 1024
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_THUMB_PATH = re.compile(r"^/api/jobs/([^/]+)/thumbnail$")
# The page's own files only; thumbnails may come from object storage (https) by redirect.
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' https: data:; object-src 'none'; "
                                      "base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
           "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store"}

Response = tuple[int, str, bytes, dict[str, str]]


def _thumbnail_output(job: Job) -> Any:
    """The output the page shows for a job: its poster, else its still, when it is an image."""
    for role in ("poster", "image"):
        for out in job.outputs:
            if out.role == role and (out.content_type in THUMBNAIL_TYPES
                                     or mimetypes.guess_type(out.path)[0] in THUMBNAIL_TYPES):
                return out
    return None


def _job_row(job: Job, now: float) -> dict[str, Any]:
    final = job.status.is_final
    req = job.requester
    thumb = _thumbnail_output(job)
    return {
        "id": job.id, "kind": job.kind.value, "status": job.status.value,
        "requester": req.user_name or req.user_id or req.source,
        "prompt": job.request_text[:300],
        "node": job.lease_owner,
        "created_at": job.created_at,
        # Wall time from the request to the end (or until now while it is live).
        "duration_s": round((job.updated_at if final else now) - job.created_at, 1),
        "work_s": round(sum(v for v in job.timings.values() if isinstance(v, (int, float))), 1),
        "progress": job.progress.get("fraction") if isinstance(job.progress, dict) else None,
        "error": job.error[:300],
        "thumbnail": f"/api/jobs/{job.id}/thumbnail" if thumb is not None else "",
    }


def farm_snapshot(store: Any, *, now: float | None = None, recent: int = RECENT_JOBS) -> dict[str, Any]:
    """What the page shows, from the store's own read methods (list_nodes, count, list_jobs)."""
    now = time.time() if now is None else now
    nodes = []
    for node in store.list_nodes():
        row = dataclasses.asdict(node)
        row["shown_state"] = node.shown_state(now)
        row["heartbeat_age_s"] = round(now - node.last_heartbeat, 1) if node.last_heartbeat else None
        nodes.append(row)
    return {
        "now": now,
        "queue_depth": store.count((JobStatus.QUEUED,)),
        "running": store.count((JobStatus.CLAIMED, JobStatus.RUNNING, JobStatus.UPLOADING)),
        "nodes": nodes,
        "jobs": [_job_row(j, now) for j in store.list_jobs(limit=recent)],
    }


def thumbnail(store: Any, job_id: str) -> Response:
    """The job's image output (by job id only), or a redirect to its stored URL."""
    job = store.get(job_id) if _JOB_ID.match(job_id) else None
    out = _thumbnail_output(job) if job is not None and job.kind is JobKind.RENDER else None
    if out is None:
        return 404, "application/json", b'{"error": "no thumbnail for this job"}', {}
    path = Path(out.path) if out.path else None
    if path is not None and path.is_file() and path.stat().st_size <= THUMBNAIL_MAX_BYTES:
        ctype = out.content_type if out.content_type in THUMBNAIL_TYPES else mimetypes.guess_type(out.path)[0]
        return 200, str(ctype), path.read_bytes(), {}
    if out.url.startswith(("https://", "http://")):
        return 302, "text/plain", b"", {"Location": out.url}
    return 404, "application/json", b'{"error": "the thumbnail is not on this machine"}', {}


def route(path: str, store_of: Callable[[], Any]) -> Response | None:
    """The dashboard's answer to GET `path`, or None when the path is not the dashboard's.
    `store_of()` gives the job store (None while the node waits for its database)."""
    path = path.split("?", 1)[0]
    if path in STATIC_FILES:
        name = STATIC_FILES[path]
        ctype = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
                 "css": "text/css; charset=utf-8"}[name.rsplit(".", 1)[1]]
        return 200, ctype, (STATIC_DIR / name).read_bytes(), {}
    if path == "/api/farm" or _THUMB_PATH.match(path):
        store = store_of()
        if store is None:
            return 503, "application/json", b'{"error": "the database is not reachable yet"}', {}
        try:
            if path == "/api/farm":
                return 200, "application/json", json.dumps(farm_snapshot(store)).encode(), {}
            match = _THUMB_PATH.match(path)
            assert match is not None
            return thumbnail(store, match.group(1))
        except Exception as exc:  # a database hiccup: the page says so and polls again
            log.warning("dashboard: reading the store failed: %s", type(exc).__name__)
            return 503, "application/json", json.dumps({"error": f"database: {type(exc).__name__}"}).encode(), {}
    return None


def send(handler: QuietHandler, response: Response) -> None:
    code, ctype, body, extra = response
    handler.reply(code, body, ctype, {**HEADERS, **extra})


# ---------------------------------------------------------------------- `headless_runner dashboard`
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--http", default="127.0.0.1:8766",
                   help="HOST:PORT to serve the page on (default: 127.0.0.1:8766; loopback unless told otherwise)")


def serve_dashboard(address: str, store: Any) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(QuietHandler):
        log_name = "dashboard http"

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            response = route(self.path, lambda: store)
            if response is None and self.path.split("?", 1)[0] == "/":
                response = 302, "text/plain", b"", {"Location": "/dashboard"}
            send(self, response or (404, "application/json", b'{"error": "not found: try /dashboard"}', {}))

    host, _, port = address.rpartition(":")
    server, thread, _bound = bind(host, int(port), Handler, "slackai-dashboard")
    thread.start()
    return server, thread


def run(args: argparse.Namespace) -> int:
    from ..core.config import ConfigError, load_settings
    from ..storage import open_job_store
    from . import UsageError
    from .serve import install_stop_signals

    try:
        settings = load_settings(flags={"log_level": getattr(args, "log_level", None)})
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    store = open_job_store(settings)
    stop = threading.Event()
    install_stop_signals(stop)
    try:
        server, _ = serve_dashboard(args.http, store)
    except OSError as exc:
        store.close()
        raise UsageError(f"cannot listen on {args.http}: {exc}") from None
    host, port = server.server_address[:2]
    print(f"farm dashboard on http://{host!s}:{port}/dashboard (Ctrl-C to stop)", flush=True)
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        store.close()
    return 0
