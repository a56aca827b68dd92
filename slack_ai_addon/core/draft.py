"""Draft, then final: a fast draft of the same scene and camera, posted within seconds,
before the final render (docs/RESULTS.md).

The draft is the job's own spec with the same camera, objects and aspect ratio, at a
reduced size (`DRAFT_SCALE` of each side, at least `DRAFT_MIN_LONG_SIDE` pixels on the long
side) and a few samples (Cycles denoises them where the build can); an animation's draft is
its first frame as a still. It is skipped when the final is about as fast: Workbench, or a
final whose pixels times samples (times frames) stay under `DRAFT_WORTH_WORK`.

The request picks the mode (`job.options["draft"]`): "quick look" / "draft only" renders
the draft alone as the result; "final only" / "no draft" skips it; otherwise auto.
"""

from __future__ import annotations

import re
from enum import StrEnum

from .scene_spec import AnimationKind, Engine, SceneSpec

DRAFT_SCALE = 0.25
DRAFT_MIN_LONG_SIDE = 160
DRAFT_SAMPLES = 4  # with denoising where Cycles has OpenImageDenoise
# Work of the final (width * height * samples * frames) under which a draft buys nothing:
# 320x240 at 8 samples renders in well under a second here, about as fast as its draft
# would be posted.
DRAFT_WORTH_WORK = 320 * 240 * 8


class DraftMode(StrEnum):
    AUTO = "auto"
    ONLY = "only"  # the draft is the result (no final)
    OFF = "off"  # no draft


_ONLY = re.compile(r"\b(quick[ -]?look|draft[ -]only|just (?:a|the) draft|only (?:a|the) draft)\b", re.I)
_OFF = re.compile(r"\b(final[ -]only|only (?:the )?final|no[ -]draft|without (?:a |the )?draft|skip (?:the )?draft)\b",
                  re.I)


def mode_from_text(text: str) -> DraftMode:
    """The draft mode a request's words ask for ("quick look", "no draft"...)."""
    if _OFF.search(text):
        return DraftMode.OFF
    if _ONLY.search(text):
        return DraftMode.ONLY
    return DraftMode.AUTO


def without_mode_words(text: str) -> str:
    """The request without its draft-mode phrases, for the interpreter: "final only" asks for
    no draft, not for final (high) quality."""
    cleaned = _ONLY.sub(" ", _OFF.sub(" ", text))
    return re.sub(r"\s*,(\s*,)+", ",", re.sub(r"\s{2,}", " ", cleaned)).strip(" ,;:")


def mode_of(options: dict[str, object], text: str) -> DraftMode:
    """The job's mode: its explicit option, else its request's words."""
    try:
        return DraftMode(str(options.get("draft") or ""))
    except ValueError:
        return mode_from_text(text)


def draft_spec(spec: SceneSpec) -> SceneSpec:
    """The same scene and camera, smaller and with a few samples; an animation's first frame."""
    out = spec.output
    long_side = max(out.width, out.height)
    scale = min(1.0, max(DRAFT_SCALE, DRAFT_MIN_LONG_SIDE / long_side))
    width, height = max(16, round(out.width * scale)), max(16, round(out.height * scale))
    samples = min(out.samples, DRAFT_SAMPLES)
    data = spec.to_json_dict()
    data["output"] = dict(data["output"], width=width, height=height, samples=samples, format="png",
                          time_limit_s=min(out.time_limit_s, 60.0))
    data["animation"] = dict(data["animation"], kind=AnimationKind.NONE.value)
    return SceneSpec.model_validate(data)


def work(spec: SceneSpec) -> int:
    frames = spec.animation.frames if spec.is_animation else 1
    return spec.output.width * spec.output.height * spec.output.samples * frames


def draft_worth_it(spec: SceneSpec) -> bool:
    """False when the final is about as fast as a draft would be."""
    if spec.output.engine is Engine.WORKBENCH:
        return False
    return work(spec) >= DRAFT_WORTH_WORK and work(draft_spec(spec)) * 4 <= work(spec)


def plan(spec: SceneSpec, mode: DraftMode) -> tuple[SceneSpec | None, SceneSpec]:
    """(draft spec or None, the spec to render as the result) for a render."""
    if mode is DraftMode.ONLY:
        return None, draft_spec(spec)  # the draft is rendered as the job's result
    if mode is DraftMode.OFF or not draft_worth_it(spec):
        return None, spec
    return draft_spec(spec), spec
