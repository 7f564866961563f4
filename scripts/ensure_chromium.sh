#!/usr/bin/env bash
# Make sure a Chromium the browser tests can drive is on PATH (Debian's `chromium`
# package, driven by the `playwright` Python package; never `playwright install`, which
# downloads browsers from the internet). Exits at once if `chromium` is already there;
# otherwise, as root on Debian/Ubuntu, installs it with apt-get.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "chromium is not installed; run this script as root to install it" \
        "(apt-get install chromium), or skip the browser tests" >&2
    exit 1
fi

apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium

if ! command -v chromium >/dev/null 2>&1; then
    echo "apt-get installed chromium but it is not on PATH" >&2
    exit 1
fi
echo "chromium is ready: $(chromium --version 2>/dev/null || echo "$(command -v chromium)")"
