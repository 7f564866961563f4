#!/usr/bin/env bash
# Make sure a Redis server answers on 127.0.0.1 (port LOOPLINE_REDIS_PORT, default 6379), for
# Feast's Redis profile and its tests. Exits at once if one already does; otherwise installs
# Debian's redis-server package if it is missing (as root), then starts a server of
# Loopline's own, as the current user: bound to 127.0.0.1 only, its data, log and pid file
# under $LOOPLINE_HOME/redis, and waits until it answers.
# Stop it with: kill "$(cat "$LOOPLINE_HOME/redis/redis-$PORT.pid")"
# Meant for development and CI machines: the server has no password and keeps no snapshot.
set -euo pipefail

HOST=127.0.0.1
PORT="${LOOPLINE_REDIS_PORT:-6379}"
STATE="${LOOPLINE_HOME:-$(pwd)/.loopline}/redis"

# PING over bash's /dev/tcp: needs no redis-cli (a separate package, redis-tools).
answers() {
    local reply=""
    { exec 3<>"/dev/tcp/$HOST/$PORT"; } 2>/dev/null || return 1
    printf 'PING\r\n' >&3
    read -r -t 2 reply <&3 || true
    exec 3<&- 3>&-
    [[ "$reply" == "+PONG"* || "$reply" == "-NOAUTH"* ]]
}

if answers; then
    exit 0
fi

if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "No Redis answers on $HOST:$PORT and redis-server is not installed;" \
            "run this script as root to install it (apt-get install redis-server)" >&2
        exit 1
    fi
    apt-get update
    # The package may start its own service (on 6379); the check below then finds it.
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server
    for _ in $(seq 1 10); do
        if answers; then
            echo "Redis (Debian's service) is ready on $HOST:$PORT"
            exit 0
        fi
        sleep 0.5
    done
fi

mkdir -p "$STATE"
# Snapshots off: this server holds what materialization rebuilds from the offline store.
redis-server --bind "$HOST" --port "$PORT" --protected-mode yes \
    --dir "$STATE" --save "" --appendonly no \
    --daemonize yes --pidfile "$STATE/redis-$PORT.pid" --logfile "$STATE/redis-$PORT.log"

for _ in $(seq 1 40); do
    if answers; then
        echo "Redis is ready on $HOST:$PORT (state in $STATE)"
        exit 0
    fi
    sleep 0.25
done
echo "Redis did not answer on $HOST:$PORT; see $STATE/redis-$PORT.log" >&2
exit 1
