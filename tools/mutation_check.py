"""Hand-written mutation check (issue 17): how many deliberate bugs do the tests kill?

Copies the repository's tracked files into a temporary folder per module, applies one
mutation at a time there (never in the working tree), runs that module's targeted,
in-process test files with `pytest -x`, and records whether the tests failed (killed) or
passed (survived). Modules run in parallel, each in its own copy.

    .venv/bin/python tools/mutation_check.py             # every module
    .venv/bin/python tools/mutation_check.py store router  # some modules
    .venv/bin/python tools/mutation_check.py store -k requeue  # mutations whose description says "requeue"

A run that times out counts as killed (noted "timeout"). Known flaky tests: when the only
failure is one of them, the run is repeated, and the mutant counts as killed only if it
fails again.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python")
TIMEOUT_S = 240
FLAKY = {
    # Races in _wait_idle: idle() can be true between jobs, leaving a render unfinished.
    "tests/unit/test_core_pipeline.py::test_dispatcher_renders_on_the_draining_thread_and_prepares_elsewhere",
}

STORE_TESTS = ["tests/unit/test_db_contract.py", "tests/unit/test_db_sqlite.py",
               "tests/unit/test_job_lifecycle_model.py"]
DISPATCHER_TESTS = ["tests/unit/test_core_pipeline.py", "tests/unit/test_job_lifecycle_model.py"]
ROUTER_TESTS = ["tests/e2e/test_slack_negative.py", "tests/e2e/test_agent_flow.py",
                "tests/e2e/test_router_thread_lookup.py"]
INTERPRETER_TESTS = ["tests/unit/test_interpreter.py"]
ROUTING_TESTS = ["tests/unit/test_capabilities.py", "tests/unit/test_fair_claims.py"]

SQL = "slack_ai_addon/storage/db/sql.py"
STORE = "slack_ai_addon/storage/db/store.py"
DISP = "slack_ai_addon/core/dispatcher.py"
ROUTER = "slack_ai_addon/agent/router.py"
PIPE = "slack_ai_addon/core/pipeline.py"
JOBS = "slack_ai_addon/core/jobs.py"
# The offline interpreter's edit code moved from core/interpreter.py to providers/offline/
# (edit.py, parse.py): a mutation names candidate files and applies to the first one that
# holds its snippet exactly once (also when the code sits one to three levels shallower there).
INTERP = ("slack_ai_addon/core/interpreter.py", "slack_ai_addon/providers/offline/edit.py",
          "slack_ai_addon/providers/offline/parse.py")


@dataclass(frozen=True)
class Mutation:
    module: str
    file: str | tuple[str, ...]
    original: str
    replacement: str
    description: str


M = Mutation
MUTATIONS: list[Mutation] = [
    # ---------------------------------------------------------------- job store
    M("store", SQL, "f\"AND attempts = :attempt AND status IN ({in_list('old', allowed_old)})\")",
      "f\"AND status IN ({in_list('old', allowed_old)})\")",
      "fenced update without the attempts = :attempt fence"),
    M("store", SQL, "updated_at = :now WHERE id = :id AND lease_owner = :owner \"",
      "updated_at = :now WHERE id = :id \"",
      "fenced update without lease_owner = :owner"),
    M("store", STORE, 'return Renewal.CANCEL if rows[0]["cancel_requested"] else Renewal.KEPT',
      "return Renewal.KEPT", "renew_lease ignores cancel_requested"),
    M("store", SQL, "f\"id = :id AND lease_owner = :owner AND attempts = :attempt AND status IN "
      "({in_list('live', 3)})\"",
      "f\"id = :id AND lease_owner = :owner AND status IN ({in_list('live', 3)})\"",
      "renew_lease without the attempts fence"),
    M("store", STORE, "if owner and owner not in failed:\n                    failed.append(owner)",
      "if owner and owner not in failed:\n                    pass",
      "requeue without adding the owner to failed_nodes"),
    M("store", SQL, "where = f\"j.status = :queued{kind_filter} AND {self._not_failed_here('j')}\"",
      "where = f\"j.status = :queued{kind_filter}\"", "claim_next without the failed-node filter"),
    M("store", STORE, "if len(failed) >= MAX_NODE_FAILURES:", "if len(failed) > MAX_NODE_FAILURES:",
      "> instead of >= on MAX_NODE_FAILURES"),
    M("store", SQL, "\"AND lease_expires_at < :now\")", "\"\")",
      "requeue_one without the lease-expired guard"),
    M("store", SQL, "AND status = :old_status AND lease_owner = :old_owner \"",
      "AND status = :old_status \"", "requeue_one without the old-owner guard"),
    M("store", SQL, "\"WHERE id = :id AND status = :queued\")", "\"WHERE id = :id\")",
      "cancel_queued cancels a job in any status"),
    M("store", SQL, "OR thread_ts = :ts) ORDER BY created_at DESC, id DESC\"",
      "OR thread_ts = :ts) ORDER BY created_at, id\"", "find_thread_job returns the oldest job"),
    M("store", SQL, "kind_filter = f\" AND j.kind IN ({in_list('kind', kinds)})\" if kinds else \"\"",
      "kind_filter = \"\"", "claim_next ignores the kinds filter"),
    # ---------------------------------------------------------------- capability routing, fair claims
    M("routing", SQL, "            where += f\" AND {self._can_run_here('j')}\"", "            pass",
      "claim_next ignores the node's capabilities"),
    M("routing", SQL, "f\"AND (COALESCE({alias}.req_gpu, 0) = 0 OR :node_gpu = 1) \"",
      "f\"AND (COALESCE({alias}.req_gpu, 0) >= 0 OR :node_gpu = 1) \"", "a GPU job claimed by a CPU node"),
    M("routing", SQL, "f\"AND COALESCE({alias}.req_blender, 0) <= :node_blender \"",
      "f\"AND COALESCE({alias}.req_blender, 0) >= :node_blender \"", "minimum Blender version compared the wrong way"),
    M("routing", SQL, "f\"WHERE rt.value NOT IN (SELECT nt.value FROM {tags}))\")",
      "f\"WHERE rt.value IN (SELECT nt.value FROM {tags}))\")", "tag requirement inverted"),
    M("routing", SQL, "order = \"COALESCE(u.n, 0), j.created_at, j.id\"", "order = \"j.created_at, j.id\"",
      "claims oldest first, not fairly"),
    M("routing", SQL, "                                               \"id = :id AND status = :queued\", \"*\"))",
      "                                               \"id = :id\", \"*\"))", "fail_queued fails a job in any status"),
    M("routing", DISP, "extra={\"job_id\": job_id})\n                self.pipeline.announce_final(job)",
      "extra={\"job_id\": job_id})", "the sweep fails an unrunnable job without telling the requester"),
    M("routing", PIPE, "        if own is not None:\n            nodes.append(own)\n", "",
      "a single node does not count itself as live"),
    M("routing", JOBS, "if n.shown_state(now) in (\"idle\", \"rendering\")", "if True",
      "offline, blocked and draining nodes count as live"),
    M("routing", DISP, "            if self.stopping or self._engine_missing_here(job):",
      "            if self.stopping:", "an engine this node lacks is rendered here anyway"),
    # ---------------------------------------------------------------- dispatcher
    M("dispatcher", DISP, "            if self._flag(job.id, \"lost\"):\n"
      "                self._drop(job, \"lease lost during the render; its result is dropped\")\n"
      "                return\n", "", "_finish skips the lost-lease check"),
    M("dispatcher", DISP, "if row is not None and row.status is job.status and row.attempts == job.attempts \\\n"
      "                    and row.lease_owner == job.lease_owner:", "if row is not None:",
      "parked job announced without checking the row"),
    M("dispatcher", DISP, "restricted = self.can_render and rendering\n",
      "rendering = restricted = False\n", "claims more than one render at a time"),
    M("dispatcher", DISP, "if held.cancel:\n            job.status = JobStatus.RUNNING",
      "if False:\n            job.status = JobStatus.RUNNING", "_may_render ignores a cancel"),
    M("dispatcher", DISP, "            h.lost = True\n            return", "            return",
      "heartbeat does not mark a lost lease"),
    M("dispatcher", DISP, "if renewal is Renewal.CANCEL:\n            h.cancel = True",
      "if renewal is Renewal.CANCEL:\n            pass", "heartbeat ignores a cancel"),
    M("dispatcher", DISP,
      "renewal = self.store.renew_lease(job.lease, self.lease_s)\n            if renewal is Renewal.LOST:",
      "renewal = self.store.renew_lease(job.lease, self.lease_s)\n            if False:",
      "_prepare ignores a lost lease"),
    M("dispatcher", DISP, "if written is Fenced.APPLIED:\n            self.jobs_done += 1",
      "if written in (Fenced.APPLIED, Fenced.LOST):\n            self.jobs_done += 1",
      "_settle treats a LOST final write as done"),
    M("dispatcher", DISP, "            self.pipeline.announce_final(job)\n        else:\n"
      "            log.warning(\"lease expired; job requeued\"",
      "            pass\n        else:\n            log.warning(\"lease expired; job requeued\"",
      "sweep does not announce a job failed on three nodes"),
    M("dispatcher", DISP, "while self.in_flight() < self.max_in_flight and not self.stopping:",
      "while self.in_flight() <= self.max_in_flight and not self.stopping:",
      "claims one job more than max_in_flight"),
    # ---------------------------------------------------------------- router
    M("router", ROUTER, "allowed = job.requester.user_id == user or user in self.settings.admins",
      "allowed = True", "cancel allowed for anyone"),
    M("router", ROUTER, "allowed = job.requester.user_id == user or user in self.settings.admins",
      "allowed = job.requester.user_id == user or user not in self.settings.admins",
      "admin check inverted"),
    M("router", ROUTER, "                return  # the ack already carried the usage hint\n", "",
      "empty /render or /analyze is submitted as a job"),
    M("router", ROUTER, "parent_id = self.dedupe.thread_job(channel, thread_ts) or "
      "self._thread_job_from_store(channel, thread_ts)",
      "parent_id = self.dedupe.thread_job(channel, thread_ts)",
      "thread lookup in the job table ignored (local memory only)"),
    M("router", ROUTER, "if subtype not in _USER_SUBTYPES or _s(event, \"bot_id\") or not user",
      "if subtype not in _USER_SUBTYPES or not user", "bot messages not ignored"),
    M("router", ROUTER, "if _JOB_ID.match(job_id) and not self._first_click(action_id, job_id):",
      "if False:", "double-click protection removed"),
    M("router", ROUTER, "        if job.status.is_final:\n", "        if False:\n",
      "cancel of a finished job not refused"),
    # ---------------------------------------------------------------- interpreter edits
    M("interpreter", INTERP, "if g.primitive is not None and o[\"primitive\"] == g.primitive.value",
      "if g.primitive is not None", "edit of one shape applied to every object"),
    M("interpreter", INTERP, "color_distance(o[\"material\"][\"base_color\"], g.selector_color) < 60)]",
      "color_distance(o[\"material\"][\"base_color\"], g.selector_color) < 600)]",
      "colour selector matches any colour (\"the red cube\")"),
    M("interpreter", INTERP, "if leftover.any():\n            for o in objects:",
      "if leftover.any():\n            for o in objects[:1]:",
      "\"make it blue\" changes only the first object"),
    M("interpreter", INTERP, "        extra = target - len(kept)\n", "        extra = target - len(kept) + 1\n",
      "count edit makes one object too many"),
    M("interpreter", INTERP, "(k < extra % len(originals))", "(k <= extra % len(originals))",
      "\"N of them\" off by one"),
    M("interpreter", INTERP, "doomed = matches[-g.count:] if g.explicit_count or not g.definite else matches",
      "doomed = matches", "\"remove one sphere\" removes every sphere"),
    M("interpreter", INTERP, "                            o[\"material\"] = dict(template[\"material\"])\n", "",
      "added objects do not copy the material of their kind"),
    M("interpreter", INTERP, "if relayout or rescale:\n", "if rescale:\n", "no new layout after adding/removing"),
    M("interpreter", INTERP,
      "keep = self.edit and self.previous is not None and self.previous.floor.kind.value == kind",
      "keep = False", "floor pattern edit resets the previous floor colours"),
    M("interpreter", INTERP, "                        o[\"primitive\"] = nxt.primitive.value\n", "",
      "\"turn the cube into a sphere\" keeps the cube"),
]

TESTS = {"store": STORE_TESTS, "dispatcher": DISPATCHER_TESTS, "router": ROUTER_TESTS,
         "interpreter": INTERPRETER_TESTS, "routing": ROUTING_TESTS}


@dataclass
class Result:
    mutation: Mutation
    outcome: str  # killed / survived / timeout / error
    detail: str
    seconds: float


def make_copy(dest: Path) -> None:
    git = shutil.which("git") or "git"
    # Tracked files plus new files not yet added (another engineer's work in progress).
    argv = [git, "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    files = subprocess.run(argv, check=True, capture_output=True).stdout.decode().split("\0")  # noqa: S603
    for name in files:
        if not name or name.startswith((".venv/", "out/", "build/")):
            continue
        src = REPO / name
        if not src.is_file():
            continue  # deleted in the working tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def env_for(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_imports_copy(copy: Path) -> None:
    code = "import slack_ai_addon; print(slack_ai_addon.__file__)"
    out = subprocess.run([PYTHON, "-c", code], cwd=copy,  # noqa: S603 (fixed argv)
                         env=env_for(copy), capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out).resolve().is_relative_to(copy.resolve()), f"imports {out}, not the copy in {copy}"


def _shallower(snippet: str, spaces: int) -> str:
    """The snippet with `spaces` fewer spaces of indentation on every line that has them."""
    pad = " " * spaces
    return "\n".join(line[spaces:] if line.startswith(pad) else line for line in snippet.split("\n"))


def locate(copy: Path, m: Mutation) -> tuple[Path, str, str] | str:
    """(file, original, replacement) as found in the copy, or why the mutation cannot apply."""
    for name in (m.file,) if isinstance(m.file, str) else m.file:
        path = copy / name
        if not path.is_file():
            continue
        text = path.read_text()
        for spaces in (0, 4, 8, 12):
            original = _shallower(m.original, spaces)
            if text.count(original) == 1:
                return path, original, _shallower(m.replacement, spaces)
    return f"snippet not found exactly once in {m.file}"


_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


def run_tests(copy: Path, tests: list[str]) -> tuple[str, str]:
    cmd = [PYTHON, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env_for(copy), capture_output=True, text=True,  # noqa: S603
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "timeout", f"no result in {TIMEOUT_S}s"
    if proc.returncode == 0:
        return "survived", ""
    failed = _FAILED.findall(proc.stdout)
    last = (proc.stdout.strip().splitlines() or ["?"])[-1]
    return "killed", (failed[0] if failed else f"exit {proc.returncode}: {last[:120]}")


def run_killing(copy: Path, tests: list[str]) -> tuple[str, str]:
    outcome, detail = run_tests(copy, tests)
    if outcome == "killed" and detail.split(" - ")[0] in FLAKY:
        again, detail2 = run_tests(copy, tests)
        if again == "survived":
            return "survived", f"only the flaky {detail} failed, once"
        return again, detail2
    return outcome, detail


def run_module(module: str, mutations: list[Mutation], results: list[Result], lock: threading.Lock,
               root: Path) -> None:
    copy = root / module
    make_copy(copy)
    check_imports_copy(copy)
    tests = TESTS[module]
    base, detail = run_killing(copy, tests)
    if base != "survived":
        with lock:
            print(f"[{module}] baseline does not pass ({base}: {detail}); module skipped", flush=True)
            results.append(Result(Mutation(module, "-", "", "", "BASELINE"), "error", detail, 0.0))
        return
    for m in mutations:
        found = locate(copy, m)
        if isinstance(found, str):
            outcome, detail, took = "error", found, 0.0
        else:
            path, original, replacement = found
            text = path.read_text()
            mutated = text.replace(original, replacement)
            try:
                compile(mutated, str(path), "exec")
            except SyntaxError as exc:  # a broken file is not a bug the tests caught
                with lock:
                    results.append(Result(m, "error", f"mutant does not compile: {exc}", 0.0))
                continue
            path.write_text(mutated)
            start = time.monotonic()
            try:
                outcome, detail = run_killing(copy, tests)
            finally:
                path.write_text(text)
            took = time.monotonic() - start
        with lock:
            results.append(Result(m, outcome, detail, took))
            print(f"[{module}] {outcome:8} {took:6.1f}s  {m.description}  {detail}", flush=True)


def main(argv: list[str]) -> int:
    only = ""
    if "-k" in argv:  # only the mutations whose description holds this text
        at = argv.index("-k")
        only, argv = argv[at + 1], argv[:at] + argv[at + 2:]
    modules = argv or list(TESTS)
    results: list[Result] = []
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="mutation-check-") as tmp:
        threads = [threading.Thread(target=run_module, args=(mod, [m for m in MUTATIONS if m.module == mod
                                                                         and only in m.description],
                                                             results, lock, Path(tmp)))
                   for mod in modules]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    print("\n| module | outcome | mutation | detail |\n|---|---|---|---|")
    for r in sorted(results, key=lambda r: (modules.index(r.mutation.module), r.outcome)):
        print(f"| {r.mutation.module} | {r.outcome} | {r.mutation.description} | {r.detail} |")
    print()
    for mod in modules:
        rs = [r for r in results if r.mutation.module == mod and r.outcome != "error"]
        killed = sum(r.outcome in ("killed", "timeout") for r in rs)
        errors = sum(r.mutation.module == mod and r.outcome == "error" for r in results)
        rate = f"{100 * killed / len(rs):.0f}%" if rs else "n/a"
        print(f"{mod}: {killed}/{len(rs)} killed ({rate})" + (f", {errors} not applied" if errors else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
