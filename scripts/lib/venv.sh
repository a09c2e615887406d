# Shared by scripts/demo and scripts/test: a Python 3.11 .venv with the project installed.
# Usage: ensure_venv EXTRA   (EXTRA "" for the app alone, "test" for the test suite too)
# shellcheck shell=bash

say() { echo "==> $*"; }
die() { echo "==> ERROR: $*" >&2; exit 1; }

export PIP_DISABLE_PIP_VERSION_CHECK=1

# --- Python venv ----------------------------------------------------------
venv_ok() {
    [ -x .venv/bin/python ] &&
        .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null
}

apt_install() {
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "missing $*; install it (apt-get install $*) and re-run"
    fi
    say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_venv() {
    if ! venv_ok; then
        PY=""
        for cand in python3.11 python3; do
            if command -v "$cand" >/dev/null 2>&1 &&
                "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
                PY=$(command -v "$cand")
                break
            fi
        done
        if [ -z "$PY" ]; then
            apt_install python3 python3-venv
            PY=$(command -v python3)
            "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
                die "need Python 3.11, found $("$PY" -V 2>&1)"
        fi
        # Debian's python3 has no ensurepip until python3-venv is installed
        if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
            apt_install python3-venv
        fi
        say "creating .venv with $PY ($("$PY" -V 2>&1))"
        "$PY" -m venv --clear .venv
    fi
    # shellcheck disable=SC1091
    . .venv/bin/activate
    install_project "${1:-}"
}

# --- project deps (skipped when pyproject.toml is unchanged) ----------------
install_project() {
    local extra=$1 spec=. stamp want
    [ -n "$extra" ] && spec=".[$extra]"
    [ -f pyproject.toml ] || die "no pyproject.toml in $(pwd)"
    stamp=.venv/.crm-install-${extra:-app}
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
        say "installing the project (pip install -e '$spec')"
        rm -f "$stamp"
        python -m pip install -q -e "$spec"
        echo "$want" >"$stamp"
    else
        say "dependencies up to date (pyproject.toml unchanged since last install)"
    fi
}

