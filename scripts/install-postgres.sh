#!/usr/bin/env bash
# Install Debian's PostgreSQL server binaries (initdb, pg_ctl, postgres) when missing: the
# metadata-store tests start a real server of their own (tests/support/postgres.py). Only the
# binaries are wanted: the package's own cluster is not used, so it is not started here.
# Idempotent; needs root for apt.
set -euo pipefail
if command -v pg_ctl >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq >/dev/null
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
else
    echo "install-postgres: PostgreSQL is missing and cannot be installed here (need root + apt);" \
         "the PostgreSQL metadata-store tests will fail" >&2
    exit 1
fi
