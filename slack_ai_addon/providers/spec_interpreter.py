"""Scene requests through an LLM: text (or an edit of a previous spec) to a SceneSpec.

The model fills the SceneSpec JSON Schema (structured output); the answer is validated
with `parse_scene_spec` (numbers clamped with warnings), repaired once with the
validation errors, and when every provider fails the offline interpreter answers, with a
note that says so. The result is always a valid spec or a SpecError, never code.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from ..core.pipeline import Interpretation
from ..core.scene_spec import SceneSpec, SpecError, parse_scene_spec
from .chain import AllProvidersFailed, ProviderChain, StructuredTask, describe_failures
from .client import Completion
from .errors import InvalidOutput
from .structured import extract_json

log = logging.getLogger(__name__)

SPEC_DEADLINE_S = 60.0

SYSTEM_PROMPT = """You turn a request for a 3D scene into a JSON scene spec for Blender.
Answer with one JSON object that follows the given schema; no prose.
Conventions: metres, Z is up, the floor is at z=0, so an object of size 1 sits at z=0.5 or more.
Colours are sRGB hex strings like "#ff0000". Rotations are in degrees.
Animations: "turntable" orbits the camera, "spin" spins objects, "bounce" bounces them.
Keep renders cheap unless asked for quality: 640x480 and 32 samples by default.
Use only what the schema offers; if something cannot be represented, leave it out."""

EDIT_PROMPT = """Here is the current scene spec:
{previous}

Apply this change and answer with the complete updated spec, keeping everything the change
does not mention exactly as it is:
{text}"""


class OfflineInterpreterLike(Protocol):
    def interpret(self, text: str, *, previous: SceneSpec | None = None,
                  correlation_id: str = "") -> Interpretation:
        ...


ASSETS_PROMPT = """The studio's asset libraries have these assets that may fit the request (only these; the
list is a search result, not the whole library). To use one, give its exact name: an object or
collection as an object with primitive "asset" and asset.name (location is where its base stands;
asset.height_m sets its height), a material as material.asset on any object, a world as world.asset.
If the request names an asset that is not listed, leave it out.
{assets}"""
MAX_PROMPT_ASSETS = 12


def asset_candidates(text: str, *, limit: int = MAX_PROMPT_ASSETS) -> list[dict[str, Any]]:
    """The bounded candidate list for a request: the index's best matches for its words."""
    try:
        from ..assets.service import current_matcher

        return [e.public_dict() for e in current_matcher().candidates_for_prompt(text, limit=limit)]
    except Exception:  # the index is an extra; a prompt without it still works
        log.warning("asset candidates unavailable", exc_info=True)
        return []


def spec_messages(text: str, previous: SceneSpec | None,
                  assets: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The chat messages for a new scene or an edit (with the asset candidates, if any)."""
    if previous is None:
        user = text
    else:
        user = EDIT_PROMPT.format(previous=json.dumps(previous.to_json_dict(), separators=(",", ":")), text=text)
    system = SYSTEM_PROMPT
    if assets:
        lines = "\n".join(json.dumps(a, separators=(",", ":")) for a in assets[:MAX_PROMPT_ASSETS])
        system += "\n\n" + ASSETS_PROMPT.format(assets=lines)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_spec_completion(completion: Completion) -> tuple[SceneSpec, list[str]]:
    """JSON out of the answer, then the spec's own validation (clamping included)."""
    data = extract_json(completion.content, completion.reasoning)
    try:
        spec, warnings = parse_scene_spec(data)
    except SpecError as err:
        raise InvalidOutput(str(err), raw=json.dumps(data)[:500],
                            repair_hint=f"That spec is invalid: {err}. Answer again with the corrected "
                                        "complete JSON spec only.") from None
    unknown = unknown_assets(spec)
    if unknown:
        raise InvalidOutput(f"the spec names assets the libraries do not have: {'; '.join(unknown)}",
                            raw=json.dumps(data)[:500],
                            repair_hint=f"These assets do not exist: {'; '.join(unknown)}. Use only asset names "
                                        "from the list, or leave the asset out. Answer again with the complete "
                                        "JSON spec only.")
    return spec, warnings


def unknown_assets(spec: SceneSpec) -> list[str]:
    """Asset names in a model's spec that the index does not know, each with its closest names
    (a model may invent one; the build would fail on it)."""
    refs = spec.asset_refs()
    if not refs:
        return []
    from ..assets.service import current_index, current_matcher

    index = current_index()
    out = []
    for ref in refs:
        types = [ref.type.value] if ref.type is not None else None
        if index.find(ref.name, library=ref.library, types=types) is None:
            closest = current_matcher().closest_names(ref.name, types=types)
            out.append(f'"{ref.name}"' + (f" (closest: {', '.join(closest)})" if closest else ""))
    return out


class LLMSpecInterpreter:
    """SpecInterpreter over a provider chain, with the offline interpreter as the last link."""

    def __init__(self, chain: ProviderChain, offline: OfflineInterpreterLike, *,
                 deadline_s: float = SPEC_DEADLINE_S) -> None:
        self.chain = chain
        self.offline = offline
        self.deadline_s = deadline_s
        self._schema = SceneSpec.model_json_schema()

    def interpret(self, text: str, *, previous: SceneSpec | None = None,
                  correlation_id: str = "") -> Interpretation:
        """Text (or an edit of `previous`) to a spec. Raises SpecError for unusable input."""
        if not self.chain:
            return self.offline.interpret(text, previous=previous, correlation_id=correlation_id)
        task = StructuredTask(task="scene_edit" if previous is not None else "scene_spec",
                              messages=spec_messages(text, previous, asset_candidates(text)),
                              parse=parse_spec_completion,
                              schema=self._schema, schema_name="scene_spec", max_tokens=2000, temperature=0.2)
        try:
            result = self.chain.run(task, correlation_id=correlation_id, deadline_s=self.deadline_s)
        except AllProvidersFailed as failed:
            interp = self.offline.interpret(text, previous=previous, correlation_id=correlation_id)
            interp.notes.append(f"{failed}; used the offline interpreter")
            log.warning("all LLM providers failed; offline interpreter used",
                        extra={"correlation_id": correlation_id, "failures": str(failed)})
            return interp
        spec, warnings = result.value
        notes = []
        if result.failures:
            notes.append(f"{describe_failures(result.failures)}; used {result.label}")
        if result.repaired:
            notes.append(f"{result.label}'s first answer was invalid and was corrected")
        return Interpretation(spec=spec, provider=result.provider_tag, warnings=warnings, notes=notes)
