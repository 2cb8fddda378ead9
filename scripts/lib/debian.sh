# Sourced by scripts/test and scripts/bench: Debian packages whose programs they run.
# Each entry is "program package"; a missing program has its package installed
# (as root, with apt-get), so a fresh machine runs the same tests as any other.
# A program given as a path pattern (Debian keeps PostgreSQL's server programs
# in /usr/lib/postgresql/VERSION/bin, out of PATH) is looked for as a file.
set -euo pipefail

ensure_debian_programs() {
    local missing=() entry program package
    for entry in "$@"; do
        read -r program package <<<"$entry"
        if [[ $program == */* ]]; then
            compgen -G "$program" >/dev/null || missing+=("$package")
        else
            command -v "$program" >/dev/null || missing+=("$package")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "chatd: installing Debian packages: ${missing[*]} ..." >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    else
        echo "chatd: the tests need these Debian packages: ${missing[*]} (install them as root)." >&2
        exit 1
    fi
}

# Like ensure_debian_programs, for programs a run can do without: installs the
# missing ones when it can (as root), otherwise only says which are missing.
offer_debian_programs() {
    local missing=() entry program package
    for entry in "$@"; do
        read -r program package <<<"$entry"
        command -v "$program" >/dev/null || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "chatd: installing Debian packages: ${missing[*]} ..." >&2
        apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null || echo "chatd: could not install ${missing[*]}." >&2
    else
        echo "chatd: not installed: ${missing[*]} (install them as root); going on without." >&2
    fi
}
