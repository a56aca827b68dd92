"""Job analytics for `python -m headless_runner stats` and `/blender stats` in Slack.

`build_stats` works on any JobStore: the SQL stores aggregate in the database
(`SqlJobStore.analytics`), others (the in-memory store) are summarised in Python.
Pillow is imported only by `render_stats_chart`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from ..core.jobs import JobStatus

log = logging.getLogger(__name__)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _analytics_in_python(store: Any, since: float, top: int = 5) -> dict[str, Any]:
    jobs = [j for j in store.list_jobs(limit=1_000_000) if j.created_at >= since]
    by_status = Counter(j.status.value for j in jobs)
    days: dict[str, list[int | float]] = defaultdict(lambda: [0, 0, 0.0])
    users: dict[str, list[Any]] = {}
    channels: Counter[str] = Counter()
    render: list[float] = []
    for j in jobs:
        day = time.strftime("%Y-%m-%d", time.gmtime(j.created_at))
        rs = float(j.timings.get("render_s", j.timings.get("render_total_s", 0.0)))
        days[day][0] += 1
        days[day][1] += j.status is JobStatus.FAILED
        days[day][2] += rs
        if j.requester.user_id:
            users.setdefault(j.requester.user_id, [j.requester.user_name, 0, 0.0])
            users[j.requester.user_id][1] += 1
            users[j.requester.user_id][2] += rs
        if j.requester.channel_id:
            channels[j.requester.channel_id] += 1
        if j.status is JobStatus.DONE and ("render_s" in j.timings or "render_total_s" in j.timings):
            render.append(rs)
    llm: dict[str, dict[str, Any]] = {}
    for call in getattr(store, "llm_calls", []):
        if call.get("at", since) < since:
            continue
        p = llm.setdefault(call.get("provider", ""), {"provider": call.get("provider", ""), "calls": 0,
                                                      "cost_usd": 0.0, "prompt_tokens": 0, "completion_tokens": 0,
                                                      "errors": 0})
        p["calls"] += 1
        p["cost_usd"] += float(call.get("cost_usd", 0.0))
        p["prompt_tokens"] += int(call.get("prompt_tokens", 0))
        p["completion_tokens"] += int(call.get("completion_tokens", 0))
        p["errors"] += bool(call.get("error_class"))
    top_users = sorted(users.items(), key=lambda kv: (-kv[1][1], kv[0]))[:top]
    return {
        "by_status": dict(by_status),
        "per_day": [{"day": d, "jobs": v[0], "failed": v[1], "render_s": v[2]} for d, v in sorted(days.items())],
        "top_users": [{"user_id": u, "user_name": v[0], "jobs": v[1], "render_s": v[2]} for u, v in top_users],
        "top_channels": [{"channel_id": c, "jobs": n, "render_s": 0.0} for c, n in channels.most_common(top)],
        "render_seconds": sorted(render),
        "llm_by_provider": sorted(llm.values(), key=lambda p: p["provider"]),
        "feedback": dict(Counter(str(m.get("kind", "")).split(":", 1)[1] for m in getattr(store, "messages", [])
                                 if str(m.get("kind", "")).startswith("feedback:")
                                 and float(m.get("created_at", m.get("at", since))) >= since)),
    }


def build_stats(store: Any, days: int = 7, *, now: float | None = None) -> dict[str, Any]:
    """Summary of the last `days` days: plain JSON-able data (see docs/DATABASE.md)."""
    now = time.time() if now is None else now
    since = now - max(1, int(days)) * 86400
    raw = store.analytics(since) if hasattr(store, "analytics") else _analytics_in_python(store, since)
    by_status = raw["by_status"]
    done = by_status.get(JobStatus.DONE.value, 0)
    failed = by_status.get(JobStatus.FAILED.value, 0)
    finished = done + failed
    render = sorted(raw["render_seconds"])
    llm = raw["llm_by_provider"]
    return {
        "days": int(days),
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since)),
        "jobs": sum(by_status.values()),
        "by_status": by_status,
        "success_rate": round(done / finished, 4) if finished else None,
        "failure_rate": round(failed / finished, 4) if finished else None,
        "render_s": {"count": len(render), "p50": percentile(render, 0.5), "p95": percentile(render, 0.95),
                     "total": round(sum(render), 3)},
        "per_day": raw["per_day"],
        "top_users": raw["top_users"],
        "top_channels": raw["top_channels"],
        "llm": {"calls": sum(p["calls"] for p in llm), "cost_usd": round(sum(p["cost_usd"] for p in llm), 6),
                "prompt_tokens": sum(p["prompt_tokens"] for p in llm),
                "completion_tokens": sum(p["completion_tokens"] for p in llm),
                "errors": sum(p["errors"] for p in llm), "by_provider": llm},
        "feedback": {"good": int(raw.get("feedback", {}).get("good", 0)),
                     "bad": int(raw.get("feedback", {}).get("bad", 0))},
    }


def format_stats(stats: dict[str, Any]) -> str:
    """Human-readable text (CLI, and a Slack message body)."""
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v * 100:.1f}%"

    def secs(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f}s"

    r = stats["render_s"]
    lines = [
        f"Jobs in the last {stats['days']} day(s): {stats['jobs']}  "
        + "  ".join(f"{k}={v}" for k, v in sorted(stats["by_status"].items())),
        f"Success rate: {pct(stats['success_rate'])}  (failure rate {pct(stats['failure_rate'])})",
        f"Render time: p50 {secs(r['p50'])}, p95 {secs(r['p95'])} over {r['count']} render(s)",
        f"LLM: {stats['llm']['calls']} call(s), ${stats['llm']['cost_usd']:.4f}, "
        f"{stats['llm']['prompt_tokens'] + stats['llm']['completion_tokens']} tokens",
    ]
    feedback = stats.get("feedback") or {}
    if feedback.get("good") or feedback.get("bad"):
        lines.append(f"Feedback on results: {feedback.get('good', 0)} good, {feedback.get('bad', 0)} bad")
    if stats["top_users"]:
        lines.append("Top users: " + ", ".join(f"{u['user_name'] or u['user_id']} ({u['jobs']})"
                                               for u in stats["top_users"]))
    if stats["top_channels"]:
        lines.append("Top channels: " + ", ".join(f"{c['channel_id']} ({c['jobs']})" for c in stats["top_channels"]))
    return "\n".join(lines)


def render_stats_chart(stats: dict[str, Any], path: Path) -> Path:
    """A small PNG bar chart of jobs per day (failed part in red), for Slack."""
    from PIL import Image, ImageDraw, ImageFont

    width, height, margin, top_pad = 640, 320, 40, 50
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    rate, p95 = stats["success_rate"], stats["render_s"]["p95"]
    rate_text = "n/a" if rate is None else f"{rate * 100:.0f}%"
    p95_text = "n/a" if p95 is None else f"{p95:.1f}s"
    title = f"Jobs, last {stats['days']} day(s): {stats['jobs']}   success {rate_text}   p95 render {p95_text}"
    draw.text((margin, 12), title, fill="black", font=font)
    days = stats["per_day"]
    plot_h = height - top_pad - margin
    base_y = height - margin
    draw.line((margin, base_y, width - margin, base_y), fill="black")
    if days:
        peak = max(d["jobs"] for d in days) or 1
        slot = (width - 2 * margin) / len(days)
        bar = max(2.0, slot * 0.7)
        for i, d in enumerate(days):
            x0 = margin + i * slot + (slot - bar) / 2
            h_all = plot_h * d["jobs"] / peak
            h_fail = plot_h * d["failed"] / peak
            draw.rectangle((x0, base_y - h_all, x0 + bar, base_y), fill=(60, 120, 216))
            if h_fail:
                draw.rectangle((x0, base_y - h_fail, x0 + bar, base_y), fill=(214, 69, 65))
            if len(days) <= 14 or i % max(1, len(days) // 7) == 0:
                draw.text((x0, base_y + 4), d["day"][5:], fill="black", font=font)
    else:
        draw.text((margin, height // 2), "no jobs in this period", fill="gray", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "PNG")
    return path
