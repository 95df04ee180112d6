#!/usr/bin/env bash
# A headless Chromium for the tests that look at rendered report pages (make test calls this).
#
# Uses one that is already there (chromium-headless-shell, chromium, google-chrome: GitHub's
# Ubuntu runners ship Chrome); otherwise installs Debian's chromium-headless-shell with apt,
# pinned to the version tested, falling back to the archive's current one when the mirror has
# dropped it (Debian replaces browser builds with each security update). Prints the binary.
set -euo pipefail

PINNED="156.0.8078.114-1~deb12u1"

find_browser() {
    local name
    for name in "${CHROMIUM_BIN:-}" chromium-headless-shell chromium chromium-browser \
                google-chrome google-chrome-stable; do
        if [ -n "$name" ] && command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

if find_browser; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: no Chromium found and no apt-get here; install Chromium or" \
         "Chrome and set CHROMIUM_BIN to its path" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install_browser: installing chromium-headless-shell needs root (or sudo);" \
             "or set CHROMIUM_BIN to an installed Chromium" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
if ! $SUDO apt-get install -y -qq "chromium-headless-shell=$PINNED" >/dev/null 2>&1; then
    echo "install_browser: chromium-headless-shell $PINNED is no longer served;" \
         "installing the archive's current version" >&2
    $SUDO apt-get install -y -qq chromium-headless-shell >/dev/null
fi
find_browser
