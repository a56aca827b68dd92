"""The draft mode's words ("final only", "quick look", "no draft") choose the mode and are
not read as scene words: "final only" once turned the README's turntable into a high-quality
render 13 times slower."""

from __future__ import annotations

import pytest

from slack_ai_addon.core.draft import DraftMode, mode_from_text, without_mode_words
from slack_ai_addon.core.jobs import Job, JobKind
from slack_ai_addon.core.pipeline import JobPipeline, PipelineDeps
from slack_ai_addon.providers.offline import OfflineInterpreter
from slack_ai_addon.storage.db import open_sql_store

BASE = "a red cube on a checkered floor, rotating"


@pytest.mark.parametrize(("text", "mode"), [
    (f"{BASE}, final only", DraftMode.OFF),
    (f"{BASE}, no draft", DraftMode.OFF),
    (f"quick look: {BASE}", DraftMode.ONLY),
    (f"{BASE}, draft only", DraftMode.ONLY),
])
def test_mode_words_choose_the_mode_and_leave_the_scene_alone(text: str, mode: DraftMode, tmp_path) -> None:
    assert mode_from_text(text) is mode
    assert without_mode_words(text) == BASE
    store = open_sql_store(f"sqlite:///{tmp_path / 'jobs.db'}", outbox_path=tmp_path / "outbox.jsonl")
    pipeline = JobPipeline(PipelineDeps(store=store, interpreter=OfflineInterpreter(), output_dir=tmp_path,
                                        node_id="n"))
    plain = pipeline.prepare(Job(kind=JobKind.RENDER, request_text=BASE))
    worded = pipeline.prepare(Job(kind=JobKind.RENDER, request_text=text))
    assert worded.spec == plain.spec  # same size, samples and frames as without the words
    store.close()


def test_final_quality_words_still_mean_quality() -> None:
    spec = OfflineInterpreter().interpret("a red cube, final quality").spec
    assert spec.output.samples > OfflineInterpreter().interpret("a red cube").spec.output.samples
