#!/usr/bin/env bash
# Install Debian's headless Chromium (chromium-headless-shell) when missing: one end-to-end
# test posts a real HTML form from it (tests/e2e/test_post_form_browser.py). Idempotent;
# needs root for apt.
set -euo pipefail
if command -v chromium-headless-shell >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium-headless-shell >/dev/null
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq >/dev/null
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium-headless-shell >/dev/null
else
    echo "install-chromium: Chromium is missing and cannot be installed here (need root + apt);" \
         "the browser form-upload test will fail" >&2
    exit 1
fi
