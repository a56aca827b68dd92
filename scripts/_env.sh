# Sourced by scripts/*: pick the Python and the embedded Blender (`bpy` from PyPI), and make
# sure a virtual environment with them is set up. Each `bpy` wheel supports one CPython:
#   Python 3.13 -> bpy 5.2 LTS (bpy==5.2.*), the default wherever a 3.13 exists;
#   Python 3.11 -> bpy 5.0.1 (the last bpy for 3.11), the fallback, said in one line.
# SLACK_AI_PYTHON (a python executable) and SLACK_AI_BPY (a bpy version such as 5.3.0 or
# 5.2.*, or a specifier such as ">=5.3") override the choice. The default choice lives in
# .venv; any other in .venv-py<X.Y>[-bpy<version>], so switching never rebuilds .venv.
# SLACK_AI_VENV names the folder explicitly.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

_py_version() {  # X.Y of a python executable, or nothing when it does not run
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true
}

# find_python X.Y: a python X.Y that can create virtual environments (PATH, Debian, pyenv).
find_python() {
    local want="$1" cand pyenv_root
    pyenv_root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
    for cand in "python$want" "/usr/bin/python$want" "/usr/local/bin/python$want" \
                "$pyenv_root"/versions/"$want"*/bin/"python$want" python3; do
        command -v "$cand" >/dev/null 2>&1 || continue
        if [ "$(_py_version "$cand")" = "$want" ] && "$cand" -c 'import venv, ensurepip' 2>/dev/null; then
            command -v "$cand"; return 0
        fi
    done
    return 1
}

# choose_python: sets PY, PY_VERSION and BPY_REQ (empty: the `blender` extra's own pin).
choose_python() {
    if [ -n "${SLACK_AI_PYTHON:-}" ]; then
        PY="$(command -v "$SLACK_AI_PYTHON" || true)"
        PY_VERSION="$( [ -n "$PY" ] && _py_version "$PY" || true)"
        if [ -z "$PY_VERSION" ]; then
            echo "error: SLACK_AI_PYTHON=$SLACK_AI_PYTHON does not run" >&2; exit 3
        fi
    elif PY="$(find_python 3.13)"; then
        PY_VERSION=3.13
    elif PY="$(find_python 3.11)"; then
        PY_VERSION=3.11
        echo "note: no Python 3.13 found; using Python 3.11 with bpy 5.0.1 (Blender 5.0) instead of Blender 5.2 LTS" >&2
    else
        echo "error: Python 3.13 (for bpy 5.2 LTS) or 3.11 (for bpy 5.0.1) is needed." >&2
        echo "       On Debian: apt-get install python3.13-venv (Debian 13) or python3.11-venv (Debian 12)," >&2
        echo "       or set SLACK_AI_PYTHON to a python executable." >&2
        exit 3
    fi
    BPY_REQ=""
    if [ -n "${SLACK_AI_BPY:-}" ]; then
        case "$SLACK_AI_BPY" in
            [0-9]*) BPY_REQ="bpy==$SLACK_AI_BPY" ;;
            *) BPY_REQ="bpy$SLACK_AI_BPY" ;;
        esac
    fi
}

choose_python
if [ -n "${SLACK_AI_VENV:-}" ]; then
    VENV="$SLACK_AI_VENV"
elif [ -z "$BPY_REQ" ] && [ -z "${SLACK_AI_PYTHON:-}" ]; then
    VENV="$ROOT/.venv"
else
    VENV="$ROOT/.venv-py$PY_VERSION${BPY_REQ:+-bpy$(echo "${BPY_REQ#bpy}" | sed 's/^==//' | tr -c 'A-Za-z0-9.\n' '_')}"
fi

# ensure_venv EXTRAS: create $VENV for the chosen Python (rebuilding one made with another
# Python) and install the project with EXTRAS (e.g. "blender,sandbox" or
# "blender,sandbox,test,dev") when pyproject.toml or the bpy choice changed since last time.
ensure_venv() {
    local extras="$1"
    if [ -x "$VENV/bin/python" ] && [ "$(_py_version "$VENV/bin/python")" != "$PY_VERSION" ]; then
        local old="$VENV"
        local had
        had="$(_py_version "$VENV/bin/python")"
        # Keep the other Python's environment for SLACK_AI_PYTHON=python$had (moved, not deleted).
        if [ -n "$had" ] && [ "$VENV" = "$ROOT/.venv" ] && [ ! -e "$ROOT/.venv-py$had" ]; then
            echo "$VENV was made with Python $had; moving it to .venv-py$had and setting up Python $PY_VERSION" >&2
            mv "$old" "$ROOT/.venv-py$had"
        else
            echo "$VENV was made with Python ${had:-?}; rebuilding it with Python $PY_VERSION" >&2
            rm -rf "$old"
        fi
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        echo "Setting up $VENV with $PY (Python $PY_VERSION; first run only)..." >&2
        "$PY" -m venv "$VENV" || { echo "error: '$PY -m venv' failed; on Debian: apt-get install python$PY_VERSION-venv" >&2; exit 3; }
    fi
    local pip_extras="$extras" reqs=()
    if [ -n "$BPY_REQ" ]; then  # the override replaces the `blender` extra's pin
        pip_extras="$(echo ",$extras," | sed 's/,blender,/,/; s/^,//; s/,$//')"
        reqs=("$BPY_REQ")
    fi
    local stamp="$VENV/.installed-$(echo "$extras" | tr ',' '-')"
    local want
    want="$( (cat "$ROOT/pyproject.toml"; echo "$BPY_REQ") | sha256sum | cut -c1-16)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "Installing dependencies ($extras${BPY_REQ:+, $BPY_REQ}) into $VENV (log: $VENV/install.log) ..." >&2
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >"$VENV/install.log" 2>&1 || true
        if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e "$ROOT${pip_extras:+[$pip_extras]}" \
                "${reqs[@]}" >>"$VENV/install.log" 2>&1; then
            tail -n 30 "$VENV/install.log" >&2
            echo "error: installing the dependencies failed; full log in $VENV/install.log" >&2
            exit 3
        fi
        echo "$want" > "$stamp"
    fi
}
