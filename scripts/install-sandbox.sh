#!/usr/bin/env bash
# Install bubblewrap (the compute sandbox) and libseccomp2 (its system-call filter, built
# through the pyseccomp binding) when bubblewrap is missing. Idempotent; needs root for apt.
# Without it the gateway refuses tenant compute (VALLUM_SANDBOX=unsafe-single-tenant overrides
# that on a single-tenant machine only).
set -euo pipefail
if command -v bwrap >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap libseccomp2 >/dev/null
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq >/dev/null
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap libseccomp2 >/dev/null
else
    echo "install-sandbox: bubblewrap is missing and cannot be installed here (need root + apt);" \
         "sandbox tests will be skipped and the gateway will refuse tenant compute" >&2
fi
