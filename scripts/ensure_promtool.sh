#!/usr/bin/env bash
# Make sure `promtool` (and `prometheus`) are on PATH: the tests check the Prometheus
# configuration and alerting rules under deploy/prometheus with promtool, and `make up`
# starts a local Prometheus when the binary is there. Debian's `prometheus` package ships
# both. Exits at once if promtool is already there; otherwise, as root on Debian/Ubuntu,
# installs the package with apt-get.
#
# On a host that runs systemd, Debian's package also enables and starts a system-wide
# Prometheus on port 9090 (all interfaces); Loopline does not need it (`make up` starts
# its own on 127.0.0.1): `systemctl disable --now prometheus` stops it.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "promtool is not installed; run this script as root to install it" \
        "(apt-get install prometheus), or install it yourself before \`make test\`" >&2
    exit 1
fi

apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus

if ! command -v promtool >/dev/null 2>&1; then
    echo "apt-get installed prometheus but promtool is not on PATH" >&2
    exit 1
fi
echo "promtool is ready: $(promtool --version 2>&1 | head -n 1)"
