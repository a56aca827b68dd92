"""Asset libraries without Blender (issue 15): catalogs, the index's mtime refresh and its
safety rules, matching request words, the offline grammar's asset phrases, the Slack list."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from slack_ai_addon.assets import service
from slack_ai_addon.assets.catalog import parse_catalogs
from slack_ai_addon.assets.index import AssetIndex, library_roots
from slack_ai_addon.assets.match import AssetMatcher, singular
from slack_ai_addon.core.scene_spec import SpecError
from slack_ai_addon.providers.offline import OfflineInterpreter

LAMP = {"name": "Hero Lamp", "type": "object", "tags": ["light", "hero"], "description": "", "preview": "",
        "catalog_id": "1b0f5c1e-7a9d-4a53-9e4c-6f3d2b0a1c11", "bounds": [-0.25, -0.25, 0, 0.25, 0.25, 1.6]}
BARREL = {"name": "Oak Barrel", "type": "collection", "tags": ["barrel", "wood"], "description": "",
          "catalog_id": "", "bounds": [-0.35, -0.35, 0, 0.35, 0.35, 0.9], "preview": ""}
NEON = {"name": "Neon Green", "type": "material", "tags": ["emissive"], "description": "", "catalog_id": "",
        "bounds": None, "preview": ""}
DUSK = {"name": "Dusk", "type": "world", "tags": ["sky", "evening"], "description": "", "catalog_id": "",
        "bounds": None, "preview": ""}
CONTENT = {"props.blend": [LAMP, BARREL], "looks.blend": [NEON, DUSK]}


class FakeReader:
    """Stands in for bpy's reader: the assets by file name, and a log of what was read."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def __call__(self, path: Path, _previews: Path) -> list[dict[str, Any]]:
        self.read.append(path.name)
        return [dict(a) for a in CONTENT.get(path.name, [])]


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "studio"
    (root / "sub").mkdir(parents=True)
    (root / "props.blend").write_bytes(b"BLENDER")
    (root / "sub" / "looks.blend").write_bytes(b"BLENDER")
    (root / "props.blend1").write_bytes(b"backup")  # Blender's backups are not indexed
    (root / "blender_assets.cats.txt").write_text(
        "# comment\nVERSION 1\n1b0f5c1e-7a9d-4a53-9e4c-6f3d2b0a1c11:Props/Lighting:Props-Lighting\nbad line\n")
    return root


@pytest.fixture
def index(library: Path, tmp_path: Path) -> Iterator[AssetIndex]:
    idx = service.configure(folders=str(library), cache_path=tmp_path / "cache" / "index.json")
    idx.refresh(FakeReader())
    yield idx
    service.reset()


def test_catalog_file_lines() -> None:
    cats = parse_catalogs("VERSION 1\n# x\nAAAAAAAA-7a9d-4a53-9e4c-6f3d2b0a1c11:/A/B/:A-B\nnot-a-uuid:C:C\n")
    assert cats == {"aaaaaaaa-7a9d-4a53-9e4c-6f3d2b0a1c11": "A/B"}


@pytest.mark.parametrize(("plural", "one"), [("barrels", "barrel"), ("boxes", "box"), ("skies", "sky"),
                                             ("glass", "glass"), ("lamps", "lamp"), ("knives", "knife")])
def test_singular(plural: str, one: str) -> None:
    assert singular(plural) == one


def test_refresh_reads_changed_files_only_and_keeps_to_the_roots(library: Path, tmp_path: Path) -> None:
    reader = FakeReader()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.blend").write_bytes(b"BLENDER")
    (library / "link.blend").symlink_to(outside / "secret.blend")
    idx = AssetIndex(library_roots(str(library)), tmp_path / "c.json")
    report = idx.refresh(reader)
    assert sorted(reader.read) == ["looks.blend", "props.blend"] and report.read == 2  # no link, no .blend1
    assert idx.find("hero lamp").catalog == "Props/Lighting"  # type: ignore[union-attr]
    assert idx.refresh(reader).read == 0
    st = (library / "props.blend").stat()
    os.utime(library / "props.blend", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    reader.read.clear()
    assert idx.refresh(reader).read == 1 and reader.read == ["props.blend"]
    (library / "sub" / "looks.blend").unlink()
    assert idx.refresh(reader).removed == 1 and idx.find("neon green") is None
    # A new index on the cache knows everything without reading.
    assert AssetIndex(library_roots(str(library)), tmp_path / "c.json").find("oak barrel") is not None
    assert library_roots(f"{library}{os.pathsep}{tmp_path / 'missing'}{os.pathsep}{library}") == \
        library_roots(str(library))


def test_matching_names_tags_catalogs_and_plurals(index: AssetIndex) -> None:
    m = AssetMatcher(index.entries())
    words = "three oak barrels and the hero lamp under the dusk sky".split()
    hits: dict[str, tuple[int, int, bool]] = {}
    for k in range(len(words)):
        if (h := m.match_at(words, k)) is not None:
            hits.setdefault(h.entry.name, (h.start, h.end, h.plural))
    assert hits["Oak Barrel"] == (1, 3, True) and hits["Hero Lamp"][:2] == (5, 7)
    assert hits["Dusk"][:2] == (9, 11)
    assert m.match_at("the hero chair".split(), 1) is None  # "hero" alone is part of another name
    assert m.closest_names("hero chair") == ["Hero Lamp"]
    assert [e.name for e in m.search("lighting")] == ["Hero Lamp"]  # a catalog word
    assert len(m.candidates_for_prompt("anything at all", limit=2)) <= 2


def test_offline_grammar_uses_assets(index: AssetIndex) -> None:
    oi = OfflineInterpreter()
    lamp = oi.interpret("a 2 m tall hero lamp on a checkered floor").spec
    assert lamp.objects[0].asset and lamp.objects[0].asset.height_m == 2.0 and lamp.objects[0].location.z == 0.0
    assert lamp.floor.kind.value == "checkered"
    row = oi.interpret("three oak barrels in a row").spec.objects
    xs = sorted(o.location.x for o in row)
    assert len(row) == 3 and all(b - a >= 0.7 for a, b in zip(xs, xs[1:], strict=False))  # no overlap
    cube = oi.interpret("a cube with the neon green material").spec.objects[0]
    assert cube.primitive.value == "cube" and cube.material.asset and cube.material.asset.name == "Neon Green"
    assert oi.interpret("a red sphere under the dusk sky").spec.world.asset.name == "Dusk"  # type: ignore[union-attr]
    assert oi.interpret("a red cube").spec.objects[0].asset is None
    with pytest.raises(SpecError, match='"Hero Lamp"'):
        oi.interpret("the hero chair")


def test_slack_asset_list_escapes_and_posts_a_sheet(index: AssetIndex) -> None:
    from slack_ai_addon.agent.asset_list import asset_list_reply

    sent: list[tuple[int, int]] = []

    def upload(path: str, _title: str) -> None:
        with Image.open(path) as img:
            sent.append(img.size)

    text = asset_list_reply("lamp <!channel>", upload)
    assert "Hero Lamp" in text and "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert len(sent) == 1 and sent[0][0] > 100


def test_llm_prompt_gets_a_bounded_candidate_list(index: AssetIndex) -> None:
    from slack_ai_addon.core.scene_spec import parse_scene_spec
    from slack_ai_addon.providers.spec_interpreter import asset_candidates, spec_messages

    found = asset_candidates("three oak barrels in a row", limit=1)
    assert [a["name"] for a in found] == ["Oak Barrel"] and "file" not in found[0]
    system = spec_messages("three oak barrels", None, found)[0]["content"]
    assert "Oak Barrel" in system and "Hero Lamp" not in system
    assert "asset" not in spec_messages("a red cube", None, asset_candidates("a red cube"))[0]["content"].lower()

    spec, _ = parse_scene_spec({"objects": [{"primitive": "asset", "asset": {"name": "Oak Barrel"}}],
                                "world": {"asset": {"name": "Dusk", "library": "Other"}}})
    assert service.asset_requirement_tags(spec) == ["assets:studio", "assets:other"]


def test_asset_tags_for_a_request_before_it_is_interpreted(index: AssetIndex) -> None:
    assert service.asset_tags_for_text("three Oak Barrels in a row") == ["assets:studio"]
    assert service.asset_tags_for_text("a red cube") == []


def test_a_model_that_invents_an_asset_is_asked_again(index: AssetIndex) -> None:
    import json

    from slack_ai_addon.providers.client import Completion
    from slack_ai_addon.providers.errors import InvalidOutput
    from slack_ai_addon.providers.spec_interpreter import parse_spec_completion

    good = {"objects": [{"primitive": "asset", "asset": {"name": "oak barrel"}}]}
    spec, _ = parse_spec_completion(Completion(content=json.dumps(good), model="m"))
    assert spec.objects[0].asset and spec.objects[0].asset.name == "oak barrel"
    bad = {"objects": [{"primitive": "asset", "asset": {"name": "Hero Chair"}}]}
    with pytest.raises(InvalidOutput) as err:
        parse_spec_completion(Completion(content=json.dumps(bad), model="m"))
    assert "Hero Chair" in err.value.repair_hint and "Hero Lamp" in err.value.repair_hint


@pytest.mark.parametrize(("text", "count"), [("five oak barrels in a circle", 5), ("four hero lamps in a grid", 4),
                                             ("two oak barrels and a red cube in a row", 3)])
def test_asset_copies_are_arranged_without_overlap(index: AssetIndex, text: str, count: int) -> None:
    objects = OfflineInterpreter().interpret(text).spec.objects
    assert len(objects) == count
    halves = {"Oak Barrel": 0.35, "Hero Lamp": 0.25}
    for a in objects:
        for b in objects:
            if a is b:
                continue
            ra = halves[a.asset.name] if a.asset else 0.5
            rb = halves[b.asset.name] if b.asset else 0.5
            gap = max(abs(a.location.x - b.location.x), abs(a.location.y - b.location.y))
            assert gap >= ra + rb - 1e-6, (a.name, b.name)
    assert all(o.location.z == 0.0 for o in objects if o.asset)  # assets stand on the floor


def test_a_job_naming_an_asset_goes_only_to_a_node_with_its_library(index: AssetIndex, tmp_path: Path) -> None:
    """The submitting node adds "assets:<library>" to the job's requirements (from the text,
    or from a finished spec); a node without that library leaves the job, one with it claims
    it, and with no such node alive the requester hears why instead of waiting."""
    import time

    from slack_ai_addon.core.jobs import Job, JobKind, JobStatus, NodeCapabilities, NodeInfo, Requester
    from slack_ai_addon.core.pipeline import JobPipeline, PipelineDeps
    from slack_ai_addon.runtime import asset_library_tags, asset_tags_of_job
    from slack_ai_addon.storage.db import open_sql_store
    from tests.unit.test_core_pipeline import FixedInterpreter

    assert asset_library_tags() == ["assets:studio"]  # this node has the "studio" library
    assert asset_tags_of_job(Job(kind=JobKind.RENDER, request_text="the hero lamp on a floor")) == ["assets:studio"]
    assert asset_tags_of_job(Job(kind=JobKind.RENDER, request_text="a red cube")) == []
    spec = {"objects": [{"primitive": "asset", "asset": {"name": "Oak Barrel"}}]}
    assert asset_tags_of_job(Job(kind=JobKind.RENDER, request_text="", spec=spec)) == ["assets:studio"]

    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    listener = open_sql_store(db, outbox_path=tmp_path / "l.jsonl")
    plain = NodeCapabilities(engines=("cycles", "eevee", "workbench"), gpu="", blender=50200)
    with_library = NodeCapabilities(engines=plain.engines, gpu="", blender=50200, tags=("assets:studio",))

    def submit(text: str):  # a listener that does not render: only live registry nodes count
        deps = PipelineDeps(store=listener, interpreter=FixedInterpreter(), output_dir=tmp_path, node_id="listener",
                            requirement_tags=asset_tags_of_job)
        return JobPipeline(deps).submit(Job(kind=JobKind.RENDER, request_text=text, requester=Requester(
            user_id="U1")))

    listener.upsert_node(NodeInfo(id="plain", role="worker", engines="cycles,eevee,workbench",
                                  blender_version="5.2.0", last_heartbeat=time.time(), state="idle"))
    refused = submit("the hero lamp on a checkered floor")
    assert refused.status is JobStatus.FAILED and "assets:studio" in refused.error
    listener.upsert_node(NodeInfo(id="props-node", role="worker", engines="cycles,eevee,workbench",
                                  blender_version="5.2.0", tags=["assets:studio"], last_heartbeat=time.time(),
                                  state="idle"))
    job = submit("the hero lamp on a checkered floor")
    assert job.status is JobStatus.QUEUED and job.requirements.tags == ("assets:studio",)
    assert listener.claim_next("plain", 60, None, plain) is None  # no library here: left alone
    claimed = listener.claim_next("props-node", 60, None, with_library)
    assert claimed is not None and claimed.id == job.id
    listener.close()
