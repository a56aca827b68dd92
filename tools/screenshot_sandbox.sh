#!/usr/bin/env bash
# A picture of the local Slack sandbox after one /render, for the README (docs/img/sandbox.png).
# Needs Debian's chromium. Usage: tools/screenshot_sandbox.sh [PORT]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${1:-8799}"
OUT_DIR="$(mktemp -d)"
cd "$ROOT"
SLACK_AI_OUTPUT_DIR="$OUT_DIR" XDG_DATA_HOME="$OUT_DIR/xdg" .venv/bin/python -m headless_runner sandbox --port "$PORT" \
    >"$OUT_DIR/sandbox.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.5; done
sleep 2
curl -sf -X POST "http://127.0.0.1:$PORT/sandbox/command" -H 'content-type: application/json' \
    -d '{"text": "/render a red cube and a blue sphere on a checkered floor, 480x270", "channel_id": "C0GENERAL"}' >/dev/null
for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$PORT/sandbox/state" | grep -q 'Done in' && break; sleep 1
done
sleep 2
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$OUT_DIR/chrome" --hide-scrollbars \
    --window-size=1200,900 --virtual-time-budget=4000 --screenshot="$ROOT/docs/img/sandbox.png" \
    "http://127.0.0.1:$PORT/" 2>/dev/null
echo "wrote docs/img/sandbox.png"
