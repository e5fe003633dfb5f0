#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis servers on loopback, for tests and benchmarks.
#
#   source scripts/servers.sh && start_servers      # or: scripts/servers.sh COMMAND ARGS...
#
# Installs Debian's postgresql and redis-server packages when missing, starts both on free
# ports in a temporary directory (PostgreSQL as the unprivileged `postgres` user), and exports:
#   DATABASE_URL, REDIS_URL                          the servers' URLs
#   PG_STOP_CMD, PG_START_CMD, REDIS_STOP_CMD, REDIS_START_CMD
#                                                    commands the restart tests use
# The servers are stopped, and the directory removed, when the shell exits.

servers_log() { printf 'servers: %s\n' "$*" >&2; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

install_server_packages() {
    local missing=()
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    if ((${#missing[@]})); then
        servers_log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        # Debian's packages start system-wide instances; the tests use their own.
        (service redis-server stop || true) >/dev/null 2>&1
    fi
}

write_script() {
    printf '#!/bin/sh\n%s\n' "$2" >"$1"
    chmod +x "$1"
}

start_servers() {
    install_server_packages
    SERVERS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/leanrt-servers.XXXXXX")
    chmod 755 "$SERVERS_DIR"
    trap stop_servers EXIT

    local pg_bin pg_port pg_data
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    pg_port=$(free_port)
    pg_data="$SERVERS_DIR/pg"
    mkdir -p "$pg_data"
    [ "$(id -u)" = 0 ] && chown postgres "$pg_data" "$SERVERS_DIR"
    local initdb="$pg_bin/initdb -D $pg_data -A trust -U postgres --no-sync"
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$initdb"; else $initdb; fi >"$SERVERS_DIR/initdb.log" 2>&1 \
        || { cat "$SERVERS_DIR/initdb.log" >&2; return 1; }
    local pg_ctl="$pg_bin/pg_ctl -D $pg_data -l $SERVERS_DIR/pg.log"
    local pg_opts="-p $pg_port -k $SERVERS_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
    local run_as=""
    [ "$(id -u)" = 0 ] && run_as="su postgres -s /bin/sh -c"
    # The start and stop commands are small scripts, so that tests can run them by path.
    write_script "$SERVERS_DIR/pg-start" "${run_as:+$run_as \"}$pg_ctl -o '$pg_opts' -w start${run_as:+\"}"
    write_script "$SERVERS_DIR/pg-stop" "${run_as:+$run_as \"}$pg_ctl -m immediate -w stop${run_as:+\"}"
    export PG_START_CMD="$SERVERS_DIR/pg-start" PG_STOP_CMD="$SERVERS_DIR/pg-stop"
    "$PG_START_CMD" >/dev/null || { cat "$SERVERS_DIR/pg.log" >&2; return 1; }
    export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"

    local redis_port
    redis_port=$(free_port)
    write_script "$SERVERS_DIR/redis-start" "redis-server --port $redis_port --bind 127.0.0.1 --save '' --appendonly no \
    --dir $SERVERS_DIR --daemonize yes --pidfile $SERVERS_DIR/redis.pid --logfile $SERVERS_DIR/redis.log
for i in \$(seq 50); do redis-cli -p $redis_port ping >/dev/null 2>&1 && exit 0; sleep 0.1; done
exit 1"
    write_script "$SERVERS_DIR/redis-stop" "redis-cli -p $redis_port shutdown nosave >/dev/null 2>&1
for i in \$(seq 50); do [ -e $SERVERS_DIR/redis.pid ] || exit 0; sleep 0.1; done"
    export REDIS_START_CMD="$SERVERS_DIR/redis-start" REDIS_STOP_CMD="$SERVERS_DIR/redis-stop"
    "$REDIS_START_CMD" || { cat "$SERVERS_DIR/redis.log" >&2; return 1; }
    export REDIS_URL="redis://127.0.0.1:$redis_port"
    servers_log "PostgreSQL at $DATABASE_URL, Redis at $REDIS_URL"
}

stop_servers() {
    [ -n "${SERVERS_DIR:-}" ] || return 0
    "${REDIS_STOP_CMD:-true}" || true
    "${PG_STOP_CMD:-true}" >/dev/null 2>&1 || true
    rm -rf "$SERVERS_DIR"
    SERVERS_DIR=
}

# Run directly: start the servers, run the command with their URLs, stop them.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    start_servers
    "$@"
fi
