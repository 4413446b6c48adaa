#!/bin/sh
# Install Vallum from this offline bundle: no network, nothing from outside the bundle.
#   sh install.sh --public-key FILE [--prefix DIR] [--service [--user NAME] [--data-dir DIR]
#                 [--config-dir DIR] [--unit-dir DIR]]
# FILE: the bundle signing key's public half (PEM), pinned OUTSIDE the bundle. The
# signature over SHA256SUMS is checked first, then every file's SHA-256; only then are the
# wheels installed into a new virtual environment with pip --no-index --require-hashes.
# --service (as root) also makes the service: a system user that owns nothing but the data
# directory (0700), a config file (kept if present) and a systemd unit (not enabled).
# Environment: PYTHON (default python3, 3.11 or later).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
pub="" prefix="/opt/vallum" service=0 user="vallum" data="/var/lib/vallum"
confdir="/etc/vallum" unitdir="/etc/systemd/system"
usage="usage: install.sh --public-key FILE [--prefix DIR] [--service [--user NAME] [--data-dir DIR] [--config-dir DIR] [--unit-dir DIR]]"
while [ $# -gt 0 ]; do
    if [ "$1" != --service ] && [ $# -lt 2 ]; then
        echo "install.sh: $1 needs a value ($usage)" >&2; exit 2
    fi
    case "$1" in
        --public-key) pub=$2; shift 2 ;;
        --prefix) prefix=$2; shift 2 ;;
        --service) service=1; shift ;;
        --user) user=$2; shift 2 ;;
        --data-dir) data=$2; shift 2 ;;
        --config-dir) confdir=$2; shift 2 ;;
        --unit-dir) unitdir=$2; shift 2 ;;
        *) echo "install.sh: unknown argument $1 ($usage)" >&2; exit 2 ;;
    esac
done
[ -n "$pub" ] || { echo "install.sh: --public-key FILE is required (the pinned bundle signing key)" >&2; exit 2; }
for path in "$prefix" "$data" "$confdir" "$unitdir"; do
    case "$path" in
        /*) ;;
        *) echo "install.sh: $path must be an absolute path" >&2; exit 2 ;;
    esac
    case "$path" in
        *[!A-Za-z0-9/._-]*) echo "install.sh: $path: only letters, digits and / . _ - are allowed" >&2; exit 2 ;;
    esac
done
case "$user" in
    [a-z_]*) ;;
    *) echo "install.sh: --user $user: a system user name starts with a lower-case letter or _" >&2; exit 2 ;;
esac
case "$user" in
    *[!a-z0-9_-]*) echo "install.sh: --user $user: only a-z, 0-9, _ and - are allowed" >&2; exit 2 ;;
esac
if [ "$service" = 1 ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: --service creates a system user and a systemd unit: run it as root" >&2
    exit 2
fi
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
[ "$service" = 1 ] || exit 0

# The service: its user owns the data directory and nothing else (not the code, not the config).
if ! getent passwd "$user" >/dev/null; then
    useradd --system --user-group --home-dir "$data" --no-create-home --shell /usr/sbin/nologin "$user"
    echo "created system user $user"
fi
group=$(id -gn "$user")
install -d -o "$user" -g "$group" -m 0700 "$data"
owner=$(stat -c %U "$data")
[ "$owner" = "$user" ] || { echo "install.sh: $data is owned by $owner, not $user" >&2; exit 1; }
install -d -m 0755 "$confdir"
if [ ! -e "$confdir/vallum.toml" ]; then
    umask 022
    cat > "$confdir/vallum.toml" <<CONF
# Settings of \`vallum serve\` (docs/operations.md); flags and VALLUM_* variables override them.
data_dir = "$data"
address = "127.0.0.1:9000"
log_format = "json"
CONF
fi
install -d -m 0755 "$unitdir"
umask 022
cat > "$unitdir/vallum.service" <<UNIT
[Unit]
Description=Vallum S3-compatible gateway
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
User=$user
Group=$group
ExecStart=$prefix/bin/vallum serve --config $confdir/vallum.toml
Restart=on-failure
RestartSec=2
KillSignal=SIGTERM
TimeoutStopSec=45
UMask=0077
LimitNOFILE=65536
Delegate=yes
ProtectSystem=strict
ReadWritePaths=$data
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
UNIT
echo "service: user $user, data $data, config $confdir/vallum.toml, unit $unitdir/vallum.service"
echo "start it with: systemctl daemon-reload && systemctl enable --now vallum"
