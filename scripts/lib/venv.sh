# Sourced by scripts/serve and scripts/test: make sure .venv exists and holds
# the project with the extras named in $CHATD_EXTRAS. Re-installs only when
# setup.cfg changed since the last install, so repeated runs start at once.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-python3}

ensure_debian_venv_support() {
    # Debian splits venv/ensurepip out of python3; install it when we can.
    if "$PY" -c 'import ensurepip, venv' 2>/dev/null; then return 0; fi
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        ver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${ver}-venv" \
            || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    else
        echo "chatd: Python's venv module is missing; install python3-venv (as root)." >&2
        exit 1
    fi
}

ensure_venv() {
    local extras=$1 stamp="$VENV/.installed-$1"
    if [ ! -x "$VENV/bin/python" ]; then
        ensure_debian_venv_support
        "$PY" -m venv "$VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip
    fi
    if [ ! -f "$stamp" ] || [ "$ROOT/setup.cfg" -nt "$stamp" ]; then
        echo "chatd: installing into .venv (extras: $extras) ..." >&2
        # Keep the build's chatter in a log; show it only when the install fails.
        "$VENV/bin/python" -m pip install -q -e "$ROOT[$extras]" >"$VENV/install.log" 2>&1 \
            || { cat "$VENV/install.log" >&2; exit 1; }
        touch "$stamp"
    fi
}
