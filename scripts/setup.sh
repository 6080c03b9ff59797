#!/usr/bin/env bash
# Installs everything the appliance needs on a Debian machine: system packages (SoftHSM,
# OpenSC's pkcs11-tool, OpenSSL), a virtual environment at .venv in the repository root, and
# the package (editable, with its test extras). Safe to run again; it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# systemd provides systemd-analyze (the unit's tests); minimal images lack it.
packages=(softhsm2 opensc openssl python3-venv ca-certificates systemd curl)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "setup: Python 3.11 or newer is required (found $("$python" --version))" >&2; exit 1; }
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
echo "setup: ready (.venv/bin/zatca-appliance)"
