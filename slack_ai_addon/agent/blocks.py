"""Block Kit messages the agent sends. Pure functions: job data in, (text, blocks) out.

Every message is sent as `text` (the notification and accessibility fallback) together
with `blocks`, because chat.update with text alone removes the blocks.
"""

from __future__ import annotations

import re
from typing import Any

from ..core.jobs import Job, JobStatus
from ..core.pipeline import RenderProgress
from ..textutil import clip as clip  # re-exported: callers write `bk.clip(...)` beside `bk.escape(...)`

Blocks = list[dict[str, Any]]

SECTION_LIMIT = 2900  # Block Kit section text is capped at 3000 characters (docs/SLACK_RULES.md)
TEXT_LIMIT = 3900  # chat.update answers msg_too_long above 4000 (docs/SLACK_RULES.md)

ACTION_CANCEL = "cancel_job"
ACTION_RERENDER_HQ = "rerender_hq"
ACTION_GET_BLEND = "get_blend"
ACTION_FEEDBACK = "result_feedback"  # 👍/👎 on a final (context_actions feedback_buttons); value "good:JOB"

HELP_TEXT = """*Blender render agent*: I build and render 3D scenes from a sentence.
• `/render a red cube on a checkered floor, rotating`: a still or a turntable animation
• `/render three glass spheres at sunset, 1280x720, eevee`
• Reply in the thread of a finished render to change it: _make it blue_, _add two more spheres_
• `/render 4 variations of a red cube on a checkered floor`: drafts to pick from, then *Final* on the one you like
• A quick draft comes first on slow renders; add _quick look_ for the draft only, _final only_ for no draft
• `/analyze I love this new AI system!`: sentiment of a text
• `/blender status`: this node: Blender version, queue, current job
• `/blender jobs`: your recent jobs
• `/blender cancel JOB_ID`: cancel one of your jobs (admins: any job)
• `/blender stats`: usage statistics
• `/blender assets [words]`: the studio's assets (previews, name, type, catalog)
You can also mention me (`@Blender render a teapot`) or send me a direct message."""


def escape(text: str) -> str:
    """User text shown back in mrkdwn: Slack's three control characters. The plain `text` of
    a message needs it as much as its blocks: Slack parses `<!channel>` there too (and the
    notification would ping the whole channel)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_USER_ID = re.compile(r"[UW][A-Z0-9]{1,20}")


def mention(user_id: str) -> str:
    """The one mention the bot writes itself: a Slack user id, else the id as plain text."""
    return f"<@{user_id}>" if _USER_ID.fullmatch(user_id) else escape(user_id)


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}}


def context(*parts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(p, 300)} for p in parts if p][:10]}


def button(text: str, action_id: str, value: str, style: str = "") -> dict[str, Any]:
    b: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id,
                         "value": value}
    if style:
        b["style"] = style
    return b


def _request_line(job: Job) -> str:
    verb = "Editing" if job.parent_job_id else "Render"
    return f"{verb}: _{escape(clip(job.request_text, 500))}_" if job.request_text else verb


def _engine(job: Job) -> str:
    spec = job.spec or {}
    out = spec.get("output") or {}
    if not out:
        return ""
    size = f"{out.get('width', '?')}x{out.get('height', '?')}"
    return escape(f"{out.get('engine', '?')} · {size} · {out.get('samples', '?')} samples")


def queued_message(job: Job, position: int = 0) -> tuple[str, Blocks]:
    where = f" (#{position} in the queue)" if position > 1 else ""
    text = f"⏳ Queued{where}: {escape(clip(job.request_text, 200))}"
    blocks: Blocks = [section(f"⏳ *Queued*{where}\n{_request_line(job)}"),
                      context(f"job `{job.id}`", f"requested by {mention(job.requester.user_id)}"
                              if job.requester.user_id else ""),
                      {"type": "actions", "elements": [button("Cancel", ACTION_CANCEL, job.id, "danger")]}]
    return text, blocks


def progress_message(job: Job, progress: RenderProgress | None, elapsed_s: float) -> tuple[str, Blocks]:
    if progress is None:
        state = "Interpreting the request" if job.status in (JobStatus.CLAIMED, JobStatus.QUEUED) else "Rendering"
        line = f"🎬 *{state}…*"
    else:
        stage = progress.stage.capitalize()
        frames = f", frame {progress.frame}/{progress.frames}" if progress.frames > 1 else ""
        eta = progress.eta_s
        eta_txt = f", about {fmt_seconds(eta)} left" if eta is not None else ""
        line = f"🎬 *{stage}*{frames}{eta_txt}"
    text = line.replace("*", "") + f" ({fmt_seconds(elapsed_s)} elapsed)"
    blocks: Blocks = [section(f"{line}\n{_request_line(job)}"),
                      context(f"elapsed {fmt_seconds(elapsed_s)}", _engine(job), f"job `{job.id}`"),
                      {"type": "actions", "elements": [button("Cancel", ACTION_CANCEL, job.id, "danger")]}]
    return text, blocks


def _notes(job: Job) -> list[str]:
    lines: list[str] = []
    provider = str(job.result.get("provider") or "")
    if provider:
        lines.append(f"interpreted by {escape(provider)}")  # a name an LLM server chose
    for note in job.result.get("notes") or []:
        lines.append(escape(str(note)))
    return lines


def done_message(job: Job, total_s: float, uploaded: bool) -> tuple[str, Blocks]:
    outputs = [o for o in job.outputs if o.role in ("image", "video", "poster")]
    where = "Result in the thread below." if uploaded else "The upload to Slack failed; see the thread."
    head = f"✅ *Done in {fmt_seconds(total_s)}*: {where}"
    text = f"✅ Done in {fmt_seconds(total_s)}: {escape(clip(job.request_text, 200))}"
    blocks: Blocks = [section(f"{head}\n{_request_line(job)}")]
    extra: list[str] = []
    if job.warnings:
        extra.append("⚠️ " + "; ".join(escape(w) for w in job.warnings[:8]))
    not_understood = [str(w) for w in job.result.get("not_understood") or []]
    if not_understood:
        extra.append("🤔 Not understood (ignored): " + ", ".join(f"_{escape(w)}_" for w in not_understood[:20]))
    if extra:
        blocks.append(section("\n".join(extra)))
    blocks.append(context(_engine(job), f"job `{job.id}`", " · ".join(_notes(job)),
                          f"{len(outputs)} file(s)" if outputs else ""))
    actions = [button("Re-render in high quality", ACTION_RERENDER_HQ, job.id, "primary"),
               button("Get .blend", ACTION_GET_BLEND, job.id)]
    if job.spec and not job.result.get("variants"):
        actions.append(button("Vary", f"{ACTION_VARIANT_VARY}_0", f"{job.id}:0"))  # 0: the result itself
    blocks.append({"type": "actions", "elements": actions})
    blocks.append(feedback_block(job.id))
    return text, blocks


ACTION_VARIANT_FINAL = "variant_final"  # + "_N"; value "JOB:N" (N 1-based)
ACTION_VARIANT_VARY = "variant_vary"


def variants_carousel(job: Job, file_ids: list[str]) -> tuple[str, Blocks]:
    """The variants of a job as one carousel of cards: image, what differs, Final and Vary."""
    cards = []
    for variant, file_id in zip(job.result.get("variants") or [], file_ids, strict=False):
        n = int(variant["number"])
        cards.append({"type": "card", "block_id": f"variant_{n}",
                      "hero_image": {"type": "image", "slack_file": {"id": file_id}, "alt_text": f"variant {n}"},
                      "title": {"type": "mrkdwn", "text": f"*Variant {n}*"},
                      "body": {"type": "mrkdwn", "text": clip(escape(str(variant.get("note") or "")), 190)},
                      "actions": [button("Final", f"{ACTION_VARIANT_FINAL}_{n}", f"{job.id}:{n}", "primary"),
                                  button("Vary", f"{ACTION_VARIANT_VARY}_{n}", f"{job.id}:{n}")]})
    text = f"{len(cards)} variations: {escape(clip(job.request_text, 200))}"
    return text, [section(f"🎨 *{len(cards)} variations* of _{escape(clip(job.request_text or 'the scene', 300))}_. "
                          "*Final* renders one in full; *Vary* makes new variations of it."),
                  {"type": "carousel", "elements": cards}]


def variants_sheet(job: Job) -> tuple[str, Blocks]:
    """Where a carousel is refused: numbered Final / Vary buttons under one contact sheet."""
    variants = job.result.get("variants") or []
    finals = [button(f"Final {v['number']}", f"{ACTION_VARIANT_FINAL}_{v['number']}", f"{job.id}:{v['number']}")
              for v in variants]
    varies = [button(f"Vary {v['number']}", f"{ACTION_VARIANT_VARY}_{v['number']}", f"{job.id}:{v['number']}")
              for v in variants]
    lines = [f"{v['number']}. {escape(str(v.get('note') or ''))}" for v in variants]
    text = f"{len(variants)} variations (numbered on the sheet above)"
    return text, [section("🎨 *Variations* (numbered on the sheet above):\n" + "\n".join(lines)),
                  {"type": "actions", "elements": finals}, {"type": "actions", "elements": varies}]


def feedback_block(job_id: str) -> dict[str, Any]:
    """Thumbs up and down under a result (recorded with the job; `/blender stats` counts them)."""
    return {"type": "context_actions", "elements": [{
        "type": "feedback_buttons", "action_id": ACTION_FEEDBACK,
        "positive_button": {"text": {"type": "plain_text", "text": "👍"}, "value": f"good:{job_id}",
                            "accessibility_label": "Good result"},
        "negative_button": {"text": {"type": "plain_text", "text": "👎"}, "value": f"bad:{job_id}",
                            "accessibility_label": "Bad result"}}]}


def failed_message(job: Job, error: str, total_s: float | None = None) -> tuple[str, Blocks]:
    took = f" after {fmt_seconds(total_s)}" if total_s is not None else ""
    text = f"❌ Render failed{took}: {escape(clip(error, 300))}"
    blocks: Blocks = [section(f"❌ *Failed{took}*: {escape(clip(error, 1500))}\n{_request_line(job)}")]
    saved = [o for o in job.outputs if o.role in ("image", "video", "poster")]
    if saved:
        blocks.append(section("Partial results were saved: " + ", ".join(f"`{escape(o.path)}`" for o in saved[:5])))
    blocks.append(context(f"job `{job.id}`", "Try `/blender help` for examples."))
    return text, blocks


def cancelled_message(job: Job, by: str = "", frames_done: str = "") -> tuple[str, Blocks]:
    who = f" by {mention(by)}" if by else ""
    text = f"🛑 Cancelled{who}: {escape(clip(job.request_text, 200))}"
    detail = f" ({frames_done})" if frames_done else ""
    blocks: Blocks = [section(f"🛑 *Cancelled{who}*{detail}\n{_request_line(job)}"), context(f"job `{job.id}`")]
    return text, blocks


def analysis_message(job: Job) -> tuple[str, Blocks]:
    r = job.result
    sentiment = escape(str(r.get("sentiment", "?")))  # everything in an LLM's answer is escaped
    try:
        score = f"{float(r.get('score', 0.0)):+.2f}"
    except (TypeError, ValueError):
        score = escape(clip(str(r.get("score")), 40))
    provider = escape(clip(str(r.get("provider", "?")), 100))
    model = escape(clip(str(r.get("model", "") or ""), 100))
    emoji = {"positive": "😀", "negative": "😞", "neutral": "😐", "mixed": "🤔"}.get(sentiment, "🔎")
    text = f"{emoji} Sentiment: {sentiment} (score {score})"
    lines = [f"{emoji} *Sentiment:* {sentiment}   *Score:* {score}"]

    def readable(value: object, sep: str = ", ") -> str:  # "joy, surprise", never "['joy', 'surprise']"
        if isinstance(value, (list, tuple)):
            return sep.join(str(v).strip() for v in value if str(v).strip())
        return str(value).strip()

    for key, title in (("summary", "Summary"), ("explanation", "Explanation"), ("emotions", "Emotions"),
                       ("key_phrases", "Key phrases")):
        shown = readable(r.get(key) or "")
        if shown:
            lines.append(f"*{title}:* {escape(clip(shown, 800))}")
    notes = readable(r.get("notes") or "", "; ")  # which providers failed, trimmed text
    if notes:
        lines.append(f"_Note: {escape(clip(notes, 800))}_")
    blocks: Blocks = [section("\n".join(lines)),
                      context(f"> {escape(clip(job.request_text, 200))}",
                              f"provider {provider}" + (f" · model {model}" if model else ""), f"job `{job.id}`")]
    return text, blocks


def plain(text: str) -> tuple[str, Blocks]:
    """A message the bot wrote itself (any user text in it already escaped)."""
    return clip(text, TEXT_LIMIT), [section(text)]
