"""The README's first command, run as a new user runs it: `./scripts/run "/render a red
cube on a checkered floor, rotating"` on the embedded defaults (the default 60 s lease, the
local Slack stand-in). Its 24-frame Cycles turntable takes close to a minute here, about the
length of the lease: the case that once failed with "job cannot go from queued to done"."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SCRUB = ("OPENAI_API_KEY", "ABACUS_API_KEY", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "DATABASE_URL", "S3_BUCKET_NAME",
         "SLACK_AI_CONFIG", "SLACK_API_URL", "SLACK_AI_OUTPUT_DIR")


def test_the_readme_first_command_answers_with_the_gif(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.update(XDG_DATA_HOME=str(tmp_path / "xdg"), SLACK_AI_OUTPUT_DIR=str(tmp_path / "out"))
    proc = subprocess.run([str(ROOT / "scripts" / "run"), "/render a red cube on a checkered floor, rotating"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=480)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    # What the user reads: the final message says done, and nothing says it failed.
    assert "✅ Done" in out and "failed" not in out.lower() and "error" not in proc.stderr.lower(), out + proc.stderr
    assert "lease expired" not in proc.stderr
    done = [line for line in out.splitlines() if line.startswith("job ") and line.endswith(": done")]
    assert len(done) == 1, out
    uploaded = [line for line in out.splitlines() if line.startswith("uploaded to Slack: animation.gif")]
    assert len(uploaded) == 1, out
    gif = next(tmp_path.joinpath("out").glob("*/animation.gif"))
    with Image.open(gif) as img:
        assert img.n_frames == 24
        img.seek(0)
        first = img.convert("RGB").resize((32, 24)).tobytes()
        img.seek(3)  # an eighth of a turn (a cube looks the same after a half turn)
        middle = img.convert("RGB").resize((32, 24)).tobytes()
    assert first != middle  # it rotates
