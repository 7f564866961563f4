#!/usr/bin/env bash
# Make sure `kubectl`, which renders deploy/k8s offline (`kubectl kustomize`, no cluster
# needed), is on PATH with a kustomize new enough for the overlays (v5: `labels`,
# `patches`). Exits at once if it is there; otherwise, as root on Debian/Ubuntu, installs
# the `kubectl` package, or Debian's own `kubernetes-client` where no source carries it.
set -euo pipefail

kustomize_major() {
    # "Kustomize Version: v5.5.0" -> 5
    kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p'
}

ready() {
    command -v kubectl >/dev/null 2>&1 && [ "$(kustomize_major)" -ge 5 ] 2>/dev/null
}

if ready; then
    exit 0
fi

if command -v kubectl >/dev/null 2>&1; then
    echo "kubectl is installed but its kustomize is older than v5" \
        "($(kubectl version --client 2>/dev/null | tr '\n' ' ')); deploy/k8s needs v5" >&2
    exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "kubectl is not installed; run this script as root to install it" \
        "(apt-get install kubectl), or install kubectl 1.27 or newer yourself" >&2
    exit 1
fi

apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kubectl \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kubernetes-client

if ! ready; then
    echo "the installed kubectl cannot render deploy/k8s (its kustomize is older than v5):" \
        "install kubectl 1.27 or newer" >&2
    exit 1
fi
echo "kubectl is ready: $(kubectl version --client 2>/dev/null | head -n 1)"
