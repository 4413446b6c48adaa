#!/bin/sh
# Install Vallum from this offline bundle: no network, nothing from outside the bundle.
#   sh install.sh --public-key FILE [--prefix DIR]
# FILE: the bundle signing key's public half (PEM), pinned OUTSIDE the bundle. The
# signature over SHA256SUMS is checked first, then every file's SHA-256; only then are the
# wheels installed into a new virtual environment with pip --no-index --require-hashes.
# Environment: PYTHON (default python3, 3.11 or later).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
pub="" prefix="/opt/vallum"
while [ $# -gt 0 ]; do
    case "$1" in
        --public-key) pub=$2; shift 2 ;;
        --prefix) prefix=$2; shift 2 ;;
        *) echo "install.sh: unknown argument $1 (usage: install.sh --public-key FILE [--prefix DIR])" >&2; exit 2 ;;
    esac
done
[ -n "$pub" ] || { echo "install.sh: --public-key FILE is required (the pinned bundle signing key)" >&2; exit 2; }
cd "$here"
if ! openssl pkeyutl -verify -pubin -inkey "$pub" -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig >/dev/null 2>&1; then
    echo "install.sh: the bundle's signature does not verify under $pub: refusing to install" >&2
    exit 1
fi
if ! sha256sum --strict --quiet -c SHA256SUMS >/dev/null 2>&1; then
    echo "install.sh: a file of the bundle does not match its signed SHA-256: refusing to install" >&2
    exit 1
fi
if [ -e "$prefix" ]; then
    echo "install.sh: $prefix exists; choose a new --prefix" >&2
    exit 1
fi
"${PYTHON:-python3}" -m venv "$prefix"
PIP_CONFIG_FILE=/dev/null "$prefix/bin/python" -m pip --isolated --disable-pip-version-check install \
    --no-index --find-links "$here/wheels" --require-hashes --only-binary=:all: -r "$here/requirements.txt"
echo "installed into $prefix"
