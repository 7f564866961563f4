#!/usr/bin/env bash
# Make sure a PostgreSQL server accepts trusted connections on 127.0.0.1:5432, for the
# registry tests (user postgres, database "test"). Exits at once if one already does;
# otherwise, as root on Debian/Ubuntu, installs the distribution's postgresql package if
# needed, trusts loopback TCP connections, starts the cluster and waits until it is ready.
# Meant for development and CI machines only: it turns off password checks on 127.0.0.1.
set -euo pipefail

HOST=127.0.0.1
PORT="${LOOPLINE_PG_PORT:-5432}"
CLUSTER="${LOOPLINE_PG_CLUSTER:-main}"
DATABASE=test

ready() {
    command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$HOST" -p "$PORT"
}

if ready; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL is not accepting connections on $HOST:$PORT;" \
        "run this script as root to install and start it" >&2
    exit 1
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
fi

version="$(ls /etc/postgresql | sort -V | tail -n 1)"
config="/etc/postgresql/$version/$CLUSTER"
hba="$config/pg_hba.conf"

# pg_hba.conf is read top to bottom and the first match wins, so the trust rule goes first.
rule="host all all $HOST/32 trust"
if ! grep -Eq "^host[[:space:]]+all[[:space:]]+all[[:space:]]+$HOST/32[[:space:]]+trust" "$hba"; then
    sed -i "1i $rule" "$hba"
fi
if ! grep -Eq "^[[:space:]]*port[[:space:]]*=[[:space:]]*$PORT\b" "$config/postgresql.conf"; then
    echo "note: $config/postgresql.conf does not set port = $PORT" >&2
fi

if pg_ctlcluster --skip-systemctl-redirect "$version" "$CLUSTER" status >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$version" "$CLUSTER" restart
else
    pg_ctlcluster --skip-systemctl-redirect "$version" "$CLUSTER" start
fi

for _ in $(seq 1 60); do
    if ready; then
        break
    fi
    sleep 0.5
done
if ! ready; then
    echo "PostgreSQL $version did not become ready on $HOST:$PORT" >&2
    exit 1
fi

if ! psql -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'" | grep -q 1; then
    psql -h "$HOST" -p "$PORT" -U postgres -d postgres -c "CREATE DATABASE \"$DATABASE\""
fi
echo "PostgreSQL $version is ready on $HOST:$PORT"
