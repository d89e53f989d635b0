# Sourced by scripts/run and scripts/test: make .venv hold this project with the given extras.
#
# Usage: ensure_venv EXTRA...   (e.g. ensure_venv dev)
# Creates .venv when missing (or broken) and reinstalls the project when pyproject.toml changed
# or an extra is missing. torch comes first, as torch==2.14.1 / torchvision==0.29.1 where pip
# can take that pair from the local disk or index, else by pip's normal resolution.
# Set ZOO_PYTHON to choose the interpreter that creates .venv (default: python3).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.zoo-installed"
PINNED_TORCH=(torch==2.14.1 torchvision==0.29.1)

ensure_venv() {
    local wanted extra log
    wanted="$(_pyproject_hash)" || return 1
    if [ -x "$VENV/bin/python" ] && [ "$(head -n1 "$STAMP" 2>/dev/null)" = "$wanted" ]; then
        local have_all=1
        for extra in "$@"; do grep -qx "$extra" "$STAMP" || have_all=0; done
        [ "$have_all" = 1 ] && return 0
    fi
    log="$(mktemp)"
    echo "setting up $VENV (installing torch the first time takes a minute or more)" >&2
    if ! _install "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "error: installing into $VENV failed; full log: $log" >&2
        return 1
    fi
    rm -f "$log"
    { echo "$wanted"; printf '%s\n' "$@"; } >"$STAMP"
}

_pyproject_hash() {
    local hash
    hash="$("${ZOO_PYTHON:-python3}" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' \
        "$ROOT/pyproject.toml")" && [ -n "$hash" ] && echo "$hash"
}

# Each step must succeed: this runs under `if !`, where `set -e` does not apply.
_install() {
    local extras
    extras="$(IFS=,; echo "$*")"
    rm -f "$STAMP"
    if ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        rm -rf "$VENV"
        "${ZOO_PYTHON:-python3}" -m venv "$VENV" || return 1
    fi
    if ! "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null; then
        "$VENV/bin/python" -m pip install "${PINNED_TORCH[@]}" ||
            "$VENV/bin/python" -m pip install torch torchvision || return 1
    fi
    "$VENV/bin/python" -m pip install -e "$ROOT${extras:+[$extras]}" || return 1
}
