#!/usr/bin/env bash
# checkov, the policy scanner tests/deploy runs on the rendered Kubernetes manifests, the
# Dockerfile and the GitHub workflows, from its own environment under the state folder
# (tools/checkov/requirements.txt, hash-pinned: its pins clash with the project's).
#
#   bash scripts/checkov.sh --install     install it if missing or out of date, run nothing
#   bash scripts/checkov.sh ARGS...       install if needed, then `checkov ARGS...` offline
set -euo pipefail
cd "$(dirname "$0")/.."
state="${LOOPLINE_HOME:-$PWD/.loopline}"
tools="$state/tools/checkov"
uv="${UV:-uv}"
command -v "$uv" >/dev/null 2>&1 || uv="$PWD/.venv/bin/uv"
if ! cmp -s tools/checkov/requirements.txt "$tools/requirements.txt"; then
    echo "checkov: installing into $tools" >&2
    "$uv" venv -q --allow-existing --python 3.11 "$tools"
    "$uv" pip install -q --python "$tools/bin/python" --require-hashes \
        -r tools/checkov/requirements.txt
    cp tools/checkov/requirements.txt "$tools/requirements.txt"
fi
[[ "${1:-}" == "--install" ]] && exit 0

# Offline: no version check, no download of the guidelines mapping, nothing sent anywhere.
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true
export BC_SKIP_MAPPING=TRUE
export CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false
export LOG_LEVEL="${LOG_LEVEL:-WARNING}"
exec "$tools/bin/checkov" "$@"
