#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis servers on loopback, for tests and benchmarks.
#
#   source scripts/servers.sh && start_servers      # or: scripts/servers.sh COMMAND ARGS...
#
# Installs Debian's postgresql and redis-server packages when missing, starts them on free
# ports in a temporary directory (PostgreSQL as the unprivileged `postgres` user), with TLS
# certificates generated on the spot, and exports:
#   DATABASE_URL, REDIS_URL                          the plain servers' URLs
#   PG_STOP_CMD, PG_START_CMD, REDIS_STOP_CMD, REDIS_START_CMD
#                                                    commands the restart tests use
#   TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE         a throwaway CA and a server certificate for
#                                                    localhost and 127.0.0.1
#   PG_TLS_URL                                       a second PostgreSQL that only accepts TLS
#                                                    (`hostssl` rules only)
#   REDIS_TLS_URL                                    a Redis that only speaks TLS (rediss://)
#   REDIS_CLUSTER_URLS                               a Redis Cluster, three masters and three
#                                                    replicas, comma-separated seed URLs
#   REDIS_CLUSTER_NODE_START                         restarts a cluster node: `$CMD <port>`
#   REDIS_SENTINEL_URLS, REDIS_SENTINEL_MASTER       three Sentinels watching a master with one
#                                                    replica
# The main PostgreSQL authenticates the role `rotated` by password (scram-sha-256), for the
# credential rotation tests; every other role is trusted on loopback.
# The servers are stopped, and the directory removed, when the shell exits.

servers_log() { printf 'servers: %s\n' "$*" >&2; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A free port whose cluster bus port (port + 10000) is free too.
free_cluster_port() {
    python3 -c '
import random, socket
while True:
    port = random.randint(20000, 55000)
    try:
        for p in (port, port + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", p)); s.close()
        print(port); break
    except OSError:
        pass'
}

install_server_packages() {
    local missing=()
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
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
    RUN_AS_PG=$run_as
    # The role `rotated` logs in with a password (the credential rotation tests); the rest is
    # trusted on loopback.
    { printf 'host all rotated 127.0.0.1/32 scram-sha-256\n'; cat "$pg_data/pg_hba.conf"; } >"$pg_data/pg_hba.new"
    mv "$pg_data/pg_hba.new" "$pg_data/pg_hba.conf"
    [ "$(id -u)" = 0 ] && chown postgres "$pg_data/pg_hba.conf"
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

    make_certs "$SERVERS_DIR"
    start_pg_tls "$pg_bin"
    start_redis_tls
    start_redis_cluster
    start_redis_sentinel
    servers_log "PostgreSQL at $DATABASE_URL (TLS only: $PG_TLS_URL), Redis at $REDIS_URL (TLS: $REDIS_TLS_URL)"
    servers_log "Redis Cluster at $REDIS_CLUSTER_URLS; Sentinels at $REDIS_SENTINEL_URLS"
}

make_certs() {
    local dir=$1
    local ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    openssl req -x509 $ec -days 2 -subj "/CN=leanrt throwaway CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req $ec -subj "/CN=localhost" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
        >"$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
        -out "$dir/server.crt" -extfile "$dir/server.ext" 2>/dev/null
    chmod 644 "$dir/ca.crt" "$dir/server.crt"
    chmod 600 "$dir/server.key"
    export TLS_CA_FILE="$dir/ca.crt" TLS_CERT_FILE="$dir/server.crt" TLS_KEY_FILE="$dir/server.key"
}

# A second PostgreSQL that accepts TLS connections only.
start_pg_tls() {
    local pg_bin=$1 port data="$SERVERS_DIR/pgtls"
    port=$(free_port)
    mkdir -p "$data"
    cp "$TLS_CERT_FILE" "$data/server.crt"
    cp "$TLS_KEY_FILE" "$data/server.key"
    [ "$(id -u)" = 0 ] && chown postgres "$data" "$data/server.crt" "$data/server.key"
    local init="$pg_bin/initdb -D $data/db -A trust -U postgres --no-sync"
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$init"; else $init; fi >"$SERVERS_DIR/initdb-tls.log" 2>&1 \
        || { cat "$SERVERS_DIR/initdb-tls.log" >&2; return 1; }
    printf 'hostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n' >"$data/db/pg_hba.conf"
    local opts="-p $port -k $SERVERS_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on"
    opts="$opts -c ssl_cert_file=$data/server.crt -c ssl_key_file=$data/server.key"
    local start="$pg_bin/pg_ctl -D $data/db -l $SERVERS_DIR/pgtls.log -o '$opts' -w start"
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$start"; else sh -c "$start"; fi >/dev/null \
        || { cat "$SERVERS_DIR/pgtls.log" >&2; return 1; }
    write_script "$SERVERS_DIR/pgtls-stop" "${RUN_AS_PG:+$RUN_AS_PG \"}$pg_bin/pg_ctl -D $data/db -m immediate -w stop${RUN_AS_PG:+\"}"
    export PG_TLS_URL="postgres://postgres@localhost:$port/postgres?sslmode=require"
}

start_redis_tls() {
    local port
    port=$(free_port)
    redis-server --port 0 --tls-port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --tls-cert-file "$TLS_CERT_FILE" --tls-key-file "$TLS_KEY_FILE" --tls-ca-cert-file "$TLS_CA_FILE" \
        --tls-auth-clients no --dir "$SERVERS_DIR" --daemonize yes --pidfile "$SERVERS_DIR/redis-tls.pid" \
        --logfile "$SERVERS_DIR/redis-tls.log"
    for _ in $(seq 50); do
        redis-cli --tls --cacert "$TLS_CA_FILE" -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    export REDIS_TLS_URL="rediss://localhost:$port"
    REDIS_TLS_PORT=$port
}

start_redis_cluster() {
    local dir="$SERVERS_DIR/cluster" ports=() port
    mkdir -p "$dir"
    for _ in 1 2 3 4 5 6; do ports+=("$(free_cluster_port)"); done
    write_script "$SERVERS_DIR/cluster-node-start" "redis-server --port \$1 --bind 127.0.0.1 --cluster-enabled yes \
    --cluster-config-file $dir/nodes-\$1.conf --cluster-node-timeout 1000 --save '' --appendonly no \
    --dir $dir --daemonize yes --pidfile $dir/redis-\$1.pid --logfile $dir/redis-\$1.log
for i in \$(seq 50); do redis-cli -p \$1 ping >/dev/null 2>&1 && exit 0; sleep 0.1; done
exit 1"
    export REDIS_CLUSTER_NODE_START="$SERVERS_DIR/cluster-node-start"
    for port in "${ports[@]}"; do "$REDIS_CLUSTER_NODE_START" "$port"; done
    local nodes=()
    for port in "${ports[@]}"; do nodes+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
        || { cat "$dir/create.log" >&2; return 1; }
    for _ in $(seq 100); do
        local ok=0
        for port in "${ports[@]}"; do
            redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && ok=$((ok + 1))
        done
        [ "$ok" = 6 ] && break
        sleep 0.1
    done
    local urls=()
    for port in "${ports[@]}"; do urls+=("redis://127.0.0.1:$port"); done
    export REDIS_CLUSTER_URLS
    REDIS_CLUSTER_URLS=$(IFS=,; echo "${urls[*]}")
    REDIS_CLUSTER_PORTS="${ports[*]}"
}

start_redis_sentinel() {
    local dir="$SERVERS_DIR/sentinel" master replica port
    mkdir -p "$dir"
    master=$(free_port)
    replica=$(free_port)
    redis-server --port "$master" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize yes \
        --pidfile "$dir/master.pid" --logfile "$dir/master.log"
    redis-server --port "$replica" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize yes \
        --pidfile "$dir/replica.pid" --logfile "$dir/replica.log" --replicaof 127.0.0.1 "$master"
    local urls=()
    SENTINEL_PORTS=""
    for i in 1 2 3; do
        port=$(free_port)
        printf 'port %s\nbind 127.0.0.1\ndir %s\nsentinel monitor mymaster 127.0.0.1 %s 2\nsentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n' \
            "$port" "$dir" "$master" >"$dir/sentinel-$i.conf"
        redis-server "$dir/sentinel-$i.conf" --sentinel --daemonize yes --pidfile "$dir/sentinel-$i.pid" \
            --logfile "$dir/sentinel-$i.log"
        urls+=("redis://127.0.0.1:$port")
        SENTINEL_PORTS="$SENTINEL_PORTS $port"
    done
    for _ in $(seq 100); do
        redis-cli -p "$port" sentinel replicas mymaster 2>/dev/null | grep -q "$replica" && break
        sleep 0.1
    done
    export REDIS_SENTINEL_URLS REDIS_SENTINEL_MASTER=mymaster
    REDIS_SENTINEL_URLS=$(IFS=,; echo "${urls[*]}")
    SENTINEL_REDIS_PORTS="$master $replica"
}

stop_servers() {
    [ -n "${SERVERS_DIR:-}" ] || return 0
    "${REDIS_STOP_CMD:-true}" || true
    "${PG_STOP_CMD:-true}" >/dev/null 2>&1 || true
    [ -x "$SERVERS_DIR/pgtls-stop" ] && "$SERVERS_DIR/pgtls-stop" >/dev/null 2>&1 || true
    [ -n "${REDIS_TLS_PORT:-}" ] && redis-cli --tls --cacert "$TLS_CA_FILE" -p "$REDIS_TLS_PORT" shutdown nosave >/dev/null 2>&1 || true
    local port
    for port in ${REDIS_CLUSTER_PORTS:-} ${SENTINEL_REDIS_PORTS:-} ${SENTINEL_PORTS:-}; do
        redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    done
    rm -rf "$SERVERS_DIR"
    SERVERS_DIR=
}

# Run directly: start the servers, run the command with their URLs, stop them.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    start_servers
    "$@"
fi
