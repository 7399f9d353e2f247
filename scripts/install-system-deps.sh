#!/usr/bin/env bash
# Install what the tests need from Debian, unless it is already here: the PostgreSQL server
# binaries (the tests start a throw-away server), Chromium (the UI tests drive it headless) and
# libfaketime (a test runs the platform overnight).
set -euo pipefail
missing=()
if ! command -v pg_ctl >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
    missing+=(postgresql)
fi
if ! command -v chromium >/dev/null 2>&1; then
    missing+=(chromium)
fi
if ! command -v faketime >/dev/null 2>&1; then
    missing+=(faketime)  # the morning-check test moves the platform's clock overnight
fi
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "Missing Debian packages: install them with 'sudo apt-get install ${missing[*]}'." >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
