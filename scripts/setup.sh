#!/usr/bin/env bash
# Set up a local virtual environment for forgetwatch: idempotent, safe to re-run.
#   scripts/setup.sh          # runtime only (the dashboard and the demo)
#   scripts/setup.sh --test   # plus test tools and Debian's chromium for browser tests
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1
PY=${PYTHON:-python3}
VENV=.venv

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "forgetwatch needs Python >= 3.11 ($PY is $("$PY" --version 2>&1))." >&2
    exit 1
fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "$want_test" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
    echo "==> installing Debian's chromium for browser tests"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$PY" -m venv "$VENV"
fi

extras=""
# The tests run eval jobs on a real local Ray head too (forgetwatch[ray]).
[ "$want_test" = 1 ] && extras="[test,ray]"
stamp="$VENV/.forgetwatch-installed$extras"
# collectors/, evals/ and dashboard/ install as forgetwatch.collectors (and so on) through
# package-dir mappings. A strict editable install builds a link tree that mypy and
# import-linter can read as one package; it is a snapshot of the file list, so re-install
# whenever a module is added or removed, not only when pyproject.toml changes.
digest=$( { cat pyproject.toml; find forgetwatch collectors evals dashboard -type f \
            \( -name '*.py' -o -name '*.yaml' -o -name '*.jsonl' -o -name '*.sql' -o -name py.typed \) \
            -not -path '*/__pycache__/*' | LC_ALL=C sort; } | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
    if [ ! -f "$VENV/.torch-installed" ]; then
        # The CPU wheel of torch first: an unpinned torch would pull a multi-GB CUDA build.
        echo "==> installing torch (CPU) (a few minutes the first time)"
        "$VENV/bin/pip" install -q --disable-pip-version-check "torch==2.13.0"
        touch "$VENV/.torch-installed"
    fi
    echo "==> installing forgetwatch$extras"
    rm -rf build/__editable__.*
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        --config-settings editable_mode=strict -e ".$extras"
    echo "$digest" > "$stamp"
fi
