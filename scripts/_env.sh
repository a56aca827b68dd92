# Sourced by scripts/*: find Python 3.11 and make sure .venv is set up.
# bpy 5.0.1 (the embedded Blender) exists only for CPython 3.11, so 3.11 is required.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

find_python311() {
    for cand in "${SLACK_AI_PYTHON:-}" python3.11 python3 /usr/bin/python3.11 /usr/local/bin/python3.11; do
        [ -n "$cand" ] || continue
        if command -v "$cand" >/dev/null 2>&1 && \
           "$cand" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
            command -v "$cand"; return 0
        fi
    done
    return 1
}

# ensure_venv EXTRAS: create .venv if missing and install the project with EXTRAS
# (e.g. "blender,sandbox" or "blender,sandbox,test,dev") when pyproject.toml changed since last time.
ensure_venv() {
    local extras="$1"
    if [ ! -x "$VENV/bin/python" ]; then
        local py
        if ! py="$(find_python311)"; then
            echo "error: Python 3.11 is needed (bpy 5.0.1, the embedded Blender, supports only 3.11)." >&2
            echo "       On Debian: apt-get install python3.11 python3.11-venv, or set SLACK_AI_PYTHON." >&2
            exit 3
        fi
        echo "Setting up $VENV with $py (first run only)..." >&2
        "$py" -m venv "$VENV" || { echo "error: '$py -m venv' failed; on Debian: apt-get install python3.11-venv" >&2; exit 3; }
    fi
    local stamp="$VENV/.installed-$(echo "$extras" | tr ',' '-')"
    local want
    want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "Installing dependencies ($extras) into .venv (log: .venv/install.log) ..." >&2
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >"$VENV/install.log" 2>&1 || true
        if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e "$ROOT[$extras]" >>"$VENV/install.log" 2>&1; then
            tail -n 30 "$VENV/install.log" >&2
            echo "error: installing the dependencies failed; full log in $VENV/install.log" >&2
            exit 3
        fi
        echo "$want" > "$stamp"
    fi
}
