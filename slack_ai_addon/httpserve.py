"""The small HTTP servers a node runs (/health and /metrics, the dashboard, Slack's Events
API): one handler base that answers with one body and logs requests at debug level, and one
way to bind a threaded server whose threads never keep a stopping process alive."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)


class QuietHandler(BaseHTTPRequestHandler):
    log_name = "http"  # what the debug log lines start with

    def reply(self, code: int, body: bytes, content_type: str = "text/plain",
              headers: Mapping[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        log.debug(self.log_name + ": " + format, *args)


def bind(host: str, port: int, handler: type[BaseHTTPRequestHandler],
         thread_name: str) -> tuple[ThreadingHTTPServer, threading.Thread, str]:
    """A server bound to HOST:PORT (empty host: loopback), the daemon thread that will serve
    it (not started), and the address it really bound ("HOST:PORT"; port 0 picks one).
    Daemon threads: a node that exits must not wait for a client's open connection."""
    server = ThreadingHTTPServer((host or "127.0.0.1", port), handler)
    server.daemon_threads = True
    bound_host, bound_port = server.server_address[:2]
    thread = threading.Thread(target=server.serve_forever, name=thread_name, daemon=True)
    return server, thread, f"{bound_host!s}:{bound_port}"
