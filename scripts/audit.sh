#!/usr/bin/env bash
# `make audit`: bandit on src/ (medium and high findings fail it), then pip-audit on the
# locked environment against the package index's vulnerability data. A known
# vulnerability fails it; an index that does not answer is said so, and fails it only
# with --strict. The tools live in their own environment under the state folder
# (tools/audit/requirements.txt, hash-pinned).
set -euo pipefail
cd "$(dirname "$0")/.."
strict=0
[[ "${1:-}" == "--strict" ]] && strict=1
state="${LOOPLINE_HOME:-$PWD/.loopline}"
tools="$state/tools/audit"
uv="${UV:-uv}"
if ! cmp -s tools/audit/requirements.txt "$tools/requirements.txt"; then
    echo "audit: installing bandit and pip-audit into $tools"
    "$uv" venv -q --allow-existing --python 3.11 "$tools"
    "$uv" pip install -q --python "$tools/bin/python" --require-hashes -r tools/audit/requirements.txt
    cp tools/audit/requirements.txt "$tools/requirements.txt"
fi
out="$state/audit"
mkdir -p "$out"

echo "audit: bandit on src/ (medium and high severity)"
bandit_rc=0
# Its notes on each reviewed `# nosec` (every one carries its reason above it) are noise here.
"$tools/bin/bandit" -q -r src --severity-level medium 2> >(grep -v "nosec encountered" >&2) \
    || bandit_rc=$?

"$uv" export -q --frozen --all-groups --no-emit-project --format requirements-txt \
    > "$out/locked.txt"
packages=$(grep -cE '^[A-Za-z0-9._-]+==' "$out/locked.txt")
echo "audit: pip-audit on uv.lock ($packages packages)"
audit_rc=0
"$tools/bin/pip-audit" --disable-pip --require-hashes --progress-spinner off \
    --cache-dir "$state/cache/pip-audit" -r "$out/locked.txt" > "$out/pip-audit.txt" 2>&1 \
    || audit_rc=$?
unchecked=$(grep -c "could not be audited" "$out/pip-audit.txt" || true)
if grep -q "Found [0-9]* known vulnerabilit" "$out/pip-audit.txt"; then
    grep -v "could not be audited" "$out/pip-audit.txt" || true
else
    echo "audit: no known vulnerabilities in the $(( packages - unchecked )) packages checked"
fi
if [[ $audit_rc -ne 0 ]] && ! grep -q "Found [0-9]* known vulnerabilit" "$out/pip-audit.txt"; then
    tail -5 "$out/pip-audit.txt"
    echo "audit: pip-audit failed before it could check the packages (above)"
    audit_rc=$(( strict ? audit_rc : 0 ))
elif [[ $unchecked -gt 0 ]]; then
    # pip-audit says "No known vulnerabilities found" even when it could check none.
    echo "audit: the package index gave no vulnerability data for $unchecked of $packages" \
        "packages: they were NOT checked (the index's JSON API may not be reachable here)"
    [[ $strict -eq 1 ]] && audit_rc=1
fi
if [[ $bandit_rc -ne 0 || $audit_rc -ne 0 ]]; then
    echo "audit: FAILED (bandit exit $bandit_rc, pip-audit exit $audit_rc)"
    exit 1
fi
echo "audit: passed"
