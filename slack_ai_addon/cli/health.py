"""`--http HOST:PORT` on services: `GET /health` (JSON), `GET /metrics` (Prometheus text) and
the farm dashboard (`GET /dashboard`, `/api/farm`: cli/dashboard.py).

A plain `http.server` on a daemon thread: nothing here touches bpy or waits on the main
thread. `/health` answers 200 when the node can do its job and 503 with the reason when it
cannot (the database is unreachable, a listener's Slack connection is down). It answers
from the first second on, also while the node is still waiting for its database.
`/metrics` uses prometheus-client with a registry of the node's own (so several nodes in
one test process do not share counters).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..core.jobs import JobKind, JobStatus
from ..core.pipeline import EventKind, JobEvent
from ..httpserve import QuietHandler, bind
from . import dashboard

log = logging.getLogger(__name__)

RENDER_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
# Slack wants the ack within 3 s; ours go out from the socket thread in about a millisecond.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5)


class NodeMetrics:
    """The node's Prometheus metrics. `on_job_event` makes it a pipeline listener."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs = Counter("slackai_jobs_total", "Jobs this node finished, by final status and kind",
                            ["status", "kind"], registry=r)
        self.render_seconds = Histogram("slackai_render_seconds", "Render time of finished render jobs",
                                        buckets=RENDER_BUCKETS, registry=r)
        self.queue_depth = Gauge("slackai_queue_depth", "Queued jobs in the shared table (-1: unknown)",
                                 registry=r)
        self.in_flight = Gauge("slackai_jobs_in_flight", "Jobs this node holds a lease on", registry=r)
        self.outbox = Gauge("slackai_outbox_records", "Database writes buffered while the database was down",
                            registry=r)
        self.reconnects = Counter("slackai_slack_reconnects", "Socket Mode reconnects", registry=r)
        self._reconnects_counted = 0
        self.ack_seconds = Histogram("slackai_slack_ack_seconds",
                                     "Socket Mode envelope received to ack sent, by envelope type",
                                     ["type"], buckets=ACK_BUCKETS, registry=r)
        self.llm_calls = Counter("slackai_llm_calls", "LLM attempts, by provider", ["provider"], registry=r)
        self.llm_failures = Counter("slackai_llm_failures", "Failed LLM attempts, by provider and error class",
                                    ["provider", "error_class"], registry=r)
        self.llm_cost = Counter("slackai_llm_cost_usd", "Estimated LLM cost in USD, by provider", ["provider"],
                                registry=r)
        self.envelopes = Gauge("slackai_slack_envelopes", "Socket Mode envelopes received since start", registry=r)
        self.up = Gauge("slackai_up", "1 when /health would answer 200", registry=r)
        self.slack_calls = Counter("slackai_slack_api_calls", "Slack Web API attempts (retries included), by method",
                                   ["method"], registry=r)
        self.slack_429s = Counter("slackai_slack_api_ratelimited", "Slack Web API answers 429, by method",
                                  ["method"], registry=r)
        from ..agent.pacing import add_call_listener

        add_call_listener(self.observe_slack_call)  # every Slack client of this process; held weakly

    def observe_ack(self, envelope_type: str, seconds: float) -> None:
        """AgentService.ack_observers hook."""
        self.ack_seconds.labels(type=envelope_type or "unknown").observe(seconds)

    def observe_llm_call(self, provider: str, cost_usd: float, error_class: str) -> None:
        """providers.accounting.observe_calls hook: one LLM attempt."""
        self.llm_calls.labels(provider=provider).inc()
        if error_class:
            self.llm_failures.labels(provider=provider, error_class=error_class).inc()
        if cost_usd > 0:
            self.llm_cost.labels(provider=provider).inc(cost_usd)

    def observe_slack_call(self, method: str, status: int) -> None:
        """agent.pacing.add_call_listener hook: one Web API attempt and its HTTP status."""
        self.slack_calls.labels(method=method).inc()
        if status == 429:
            self.slack_429s.labels(method=method).inc()

    def count_reconnects(self, total: int) -> None:
        """The agent counts reconnects since its start; the counter follows it."""
        if total > self._reconnects_counted:
            self.reconnects.inc(total - self._reconnects_counted)
            self._reconnects_counted = total

    def on_job_event(self, event: JobEvent) -> None:
        if not EventKind(event.kind).is_final:
            return
        job = event.job
        self.jobs.labels(status=event.kind.value if isinstance(event.kind, EventKind) else str(event.kind),
                         kind=job.kind.value).inc()
        render_s = job.timings.get("render_s", job.timings.get("render_total_s"))
        if job.kind is JobKind.RENDER and event.kind == EventKind.DONE and render_s is not None:
            self.render_seconds.observe(float(render_s))


class NodeHealth:
    """What /health reports. Parts are filled in as the node comes up (runtime, agent)."""

    def __init__(self, *, node: str, role: str, metrics: NodeMetrics) -> None:
        self.node = node
        self.role = role
        self.metrics = metrics
        self.started_at = time.time()
        self.runtime: Any = None
        self.agent: Any = None
        self.starting_problem = ""  # e.g. "database unreachable: ..." while the node waits for it
        self.stopping = False

    def report(self) -> tuple[int, dict[str, Any]]:
        problems: list[str] = []
        body: dict[str, Any] = {"node": self.node, "role": self.role, "uptime_s": round(time.time() - self.started_at),
                                "slack": "n/a", "database": "unknown", "queue_depth": None, "current_job": ""}
        if self.starting_problem:
            problems.append(self.starting_problem)
        rt = self.runtime
        if rt is not None:
            dispatcher = rt._dispatcher  # noqa: SLF001 (asking must not create one)
            try:
                depth = rt.store.count((JobStatus.QUEUED,))
                body["database"], body["queue_depth"] = "reachable", depth
                self.metrics.queue_depth.set(depth)
            except Exception as exc:
                body["database"] = "unreachable"
                problems.append(f"database unreachable: {type(exc).__name__}")
                self.metrics.queue_depth.set(-1)
            try:
                self.metrics.outbox.set(rt.store.outbox_length())
            except Exception:
                log.debug("outbox length unavailable", exc_info=True)
            if dispatcher is not None:
                body["current_job"] = dispatcher.current_job_id
                body["jobs_done"] = dispatcher.jobs_done
                self.metrics.in_flight.set(dispatcher.in_flight())
        elif not self.starting_problem:
            problems.append("starting")
        if self.agent is not None:
            st = self.agent.status()
            body["slack"] = str(getattr(st.state, "value", st.state))
            self.metrics.count_reconnects(st.reconnects)
            self.metrics.envelopes.set(st.envelopes_seen)
            if self.role in ("listener", "both") and body["slack"] != "connected":
                problems.append(f"Slack {body['slack']}: {st.detail}")
        if self.stopping:
            problems.append("stopping")
        body["status"] = "ok" if not problems else "unavailable"
        if problems:
            body["reason"] = "; ".join(problems)
        self.metrics.up.set(0 if problems else 1)
        return (200 if not problems else 503), body


class HealthServer:
    """Serves a NodeHealth on HOST:PORT until `stop()`."""

    def __init__(self, address: str, health: NodeHealth) -> None:
        host, _, port = address.rpartition(":")
        self.health = health
        handler = _handler_for(health)
        self.server, self.thread, self.address = bind(host, int(port), handler, "slackai-http")

    def start(self) -> HealthServer:
        self.thread.start()
        log.info("health and metrics on http://%s/health and /metrics", self.address)
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler_for(health: NodeHealth) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            try:
                if self.path.split("?")[0] == "/health":
                    code, body = health.report()
                    self._send(code, "application/json", json.dumps(body).encode())
                elif self.path.split("?")[0] == "/metrics":
                    health.report()  # refreshes the gauges read at scrape time
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(health.metrics.registry))
                elif (page := dashboard.route(self.path, lambda: getattr(health.runtime, "store", None))) is not None:
                    dashboard.send(self, page)  # the read-only farm page and its JSON (cli/dashboard.py)
                else:
                    self._send(404, "application/json",
                               b'{"error": "not found: try /health, /metrics or /dashboard"}')
            except Exception as exc:  # never let a scrape take the node down
                log.exception("health endpoint failed")
                self._send(500, "application/json", json.dumps({"error": type(exc).__name__}).encode())

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.reply(code, body, content_type)

    return Handler


def open_runtime_waiting_for_the_database(build: Callable[[], Any], health: NodeHealth, stop: threading.Event,
                                          retry_s: float = 5.0) -> Any:
    """Build the runtime; while the database is unreachable, stay up (health says why, 503)
    and try again every `retry_s` until it answers or `stop` is set (then None)."""
    from ..storage.db import DatabaseUnavailable

    while not stop.is_set():
        try:
            runtime = build()
        except DatabaseUnavailable as exc:
            health.starting_problem = f"database unreachable: {exc}"
            log.warning("database unreachable at start-up; retrying in %.0fs: %s", retry_s, exc)
            stop.wait(retry_s)
            continue
        health.starting_problem = ""
        health.runtime = runtime
        return runtime
    return None
