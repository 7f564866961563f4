#!/usr/bin/env bash
# Make sure `wrk`, the HTTP load generator the serving benchmarks use, is on PATH (Debian's
# `wrk` package: a compiled C program, so the load it generates does not compete with the
# server for Python's interpreter). Exits at once if `wrk` is already there; otherwise, as
# root on Debian/Ubuntu, installs it with apt-get.
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "wrk is not installed; run this script as root to install it" \
        "(apt-get install wrk), or install it yourself before \`make bench\`" >&2
    exit 1
fi

apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk

if ! command -v wrk >/dev/null 2>&1; then
    echo "apt-get installed wrk but it is not on PATH" >&2
    exit 1
fi
# `wrk -v` prints its version and exits non-zero.
echo "wrk is ready: $(wrk -v 2>&1 | head -n 1 || true)"
