#!/usr/bin/env bash
# Headless Chromium (and its WebDriver) for tests/test_inspect_browser.py, from Debian's archive.
# Idempotent: installs only the packages that are missing, and nothing when all are there.
# Needs root (CI runs as root) or sudo; contacts only the Debian package mirrors.
set -euo pipefail

# fonts-liberation: the report test hovers characters, so pages need a font; it is only a
# recommendation of chromium's, and --no-install-recommends keeps a dozen desktop packages out
packages=(chromium chromium-driver fonts-liberation)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-browser: ${packages[*]} already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-browser: need root (or sudo) to install ${missing[*]}" >&2
        exit 1
    fi
fi

echo "install-browser: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
chromium --version
