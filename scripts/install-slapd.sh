#!/usr/bin/env bash
# Install Debian's OpenLDAP server (slapd) and client tools when missing: the LDAP identity
# tests start a real slapd of their own (tests/support/slapd.py) with a config directory in a
# temp dir. The package's own database and service are not used, so the service is stopped.
# Idempotent; needs root for apt.
set -euo pipefail
if [ -x /usr/sbin/slapd ] && command -v slapadd >/dev/null 2>&1; then
    exit 0
fi
run() {
    if [ "$(id -u)" = "0" ]; then "$@"; else sudo -n "$@"; fi
}
if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = "0" ] || sudo -n true 2>/dev/null; }; then
    run apt-get update -qq >/dev/null
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd ldap-utils >/dev/null
    # The package starts its own daemon where a service manager runs: the tests want none.
    if command -v service >/dev/null 2>&1; then run service slapd stop >/dev/null 2>&1 || true; fi
else
    echo "install-slapd: slapd is missing and cannot be installed here (need root + apt);" \
         "the LDAP identity tests will fail" >&2
    exit 1
fi
