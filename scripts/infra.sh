#!/usr/bin/env bash
# Private RabbitMQ + PostgreSQL for the test suite.
#
#   scripts/infra.sh install          install the Debian packages if missing
#   scripts/infra.sh start RUN_DIR    start a private RabbitMQ node and PostgreSQL
#                                     cluster, state under RUN_DIR; writes and
#                                     prints RUN_DIR/env.sh
#   scripts/infra.sh stop RUN_DIR     stop what `start` started (safe after a
#                                     failed/partial start, safe to repeat)
#
# Nothing here uses the system services (systemctl/service) or the default
# ports: every instance picks its own free ports, so several test runs can share
# one machine, next to a system RabbitMQ/PostgreSQL if one happens to run.
set -euo pipefail

PG_BIN=/usr/lib/postgresql/15/bin
RMQ_BIN=/usr/lib/rabbitmq/bin
SERVICES=(customers followups alerts reports)
RABBIT_TIMEOUT=${CRM_INFRA_RABBIT_TIMEOUT:-60}
PG_TIMEOUT=${CRM_INFRA_PG_TIMEOUT:-60}

log() { echo "[infra] $*" >&2; }
die() { echo "[infra] ERROR: $*" >&2; exit 1; }

usage() {
    echo "usage: $0 install | start RUN_DIR | stop RUN_DIR" >&2
    exit 2
}

# ---------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------
cmd_install() {
    local pkgs=()
    [ -x "$RMQ_BIN/rabbitmq-server" ] || pkgs+=(rabbitmq-server)
    [ -x "$PG_BIN/initdb" ] || pkgs+=(postgresql-15 postgresql-contrib)
    command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
    command -v runuser >/dev/null 2>&1 || pkgs+=(util-linux)
    if [ ${#pkgs[@]} -eq 0 ]; then
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "need root to apt-get install ${pkgs[*]}"
    log "installing ${pkgs[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The packages' postinst may start system services on the default ports;
    # we never use them (and leave them alone).
    apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${pkgs[@]}" >/dev/null
    [ -x "$RMQ_BIN/rabbitmq-server" ] || die "rabbitmq-server still missing after install"
    [ -x "$PG_BIN/initdb" ] || die "PostgreSQL 15 still missing after install"
    log "packages installed"
}

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

# Print N distinct free TCP ports.
# Picked at random *below* the kernel's ephemeral range so that outgoing
# connections can never grab them between now and the moment the servers bind.
pick_ports() {
    python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
try:
    lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
except Exception:
    lo, hi = 32768, 60999
# candidate range: [20000, ephemeral_low) if it is big enough, else above it
cands = range(20000, lo) if lo - 20000 >= 2000 else range(hi + 1, 65536)
if len(cands) < 2000:
    cands = range(10000, 65536)
rnd = random.SystemRandom()
ports, held = [], []
for _ in range(2000):
    if len(ports) == n:
        break
    p = rnd.choice(cands)
    if p in ports:
        continue
    # a wildcard bind (no SO_REUSEADDR) fails if anything, on any local
    # address, is bound to the port
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("0.0.0.0", p))
    except OSError:
        continue
    finally:
        s.close()
    ports.append(p)
if len(ports) != n:
    sys.exit("could not find %d free ports" % n)
print(" ".join(map(str, ports)))
EOF
}

# Is PID alive and is its command line matching the regex? (Guards against a
# stale state file pointing at a recycled pid.)
pid_matches() {
    local pid=$1 pattern=$2 cmdline
    [ -n "$pid" ] || return 1
    cmdline=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) || return 1
    [[ $cmdline =~ $pattern ]]
}

# Liveness of a child we just spawned (its cmdline may still be ours until it
# exec()s, so no pattern check; zombies count as dead).
alive() {
    local st
    st=$({ sed 's/.*) //' <"/proc/$1/stat"; } 2>/dev/null) || return 1
    st=${st%% *}
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# kill_wait PID PATTERN SECONDS: SIGTERM, wait, then SIGKILL.
kill_wait() {
    local pid=$1 pattern=$2 secs=$3 i
    pid_matches "$pid" "$pattern" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        pid_matches "$pid" "$pattern" || return 0
        sleep 0.1
    done
    log "pid $pid did not exit after SIGTERM, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pid_matches "$pid" "$pattern" || return 0
        sleep 0.1
    done
    log "WARNING: pid $pid still alive"
}

# append KEY=VALUE to the state file (sourced by `stop`)
state_set() {
    printf '%s=%q\n' "$1" "$2" >>"$STATE"
}

tcp_open() { # host port
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# ---------------------------------------------------------------------------
# start
# ---------------------------------------------------------------------------
cmd_start() {
    [ $# -eq 1 ] || usage
    [ "$(id -u)" -eq 0 ] || die "start must run as root (PostgreSQL runs via runuser -u postgres)"
    if [ ! -x "$RMQ_BIN/rabbitmq-server" ] || [ ! -x "$PG_BIN/initdb" ]; then
        die "RabbitMQ/PostgreSQL 15 not installed: run '$0 install' first"
    fi

    mkdir -p "$1"
    RUN_DIR=$(cd "$1" && pwd -P)
    STATE=$RUN_DIR/infra.state

    if [ -f "$STATE" ]; then
        # shellcheck disable=SC1090
        (. "$STATE"; pid_matches "${RABBIT_PID:-}" 'rabbitmq-server' ||
            pid_matches "${BEAM_PID:-}" 'beam' ||
            pid_matches "$({ head -n 1 "${PG_DATA:-/nonexistent}/postmaster.pid"; } 2>/dev/null)" 'postgres') &&
            die "$RUN_DIR already has a running instance; run '$0 stop $RUN_DIR' first"
        # leftovers of a crashed run (e.g. its epmd): clean them up first
        cmd_stop "$RUN_DIR" >/dev/null 2>&1 || true
        mv -f "$STATE" "$STATE.old"
    fi
    : >"$STATE"

    # A fresh instance every time: drop data left by an earlier (stopped) run.
    if [ -L "$RUN_DIR/postgres" ]; then
        local old_target
        old_target=$(readlink "$RUN_DIR/postgres")
        case $old_target in /tmp/crm-pg.*) rm -rf "$old_target" ;; esac
        rm -f "$RUN_DIR/postgres"
    fi
    rm -rf "$RUN_DIR/postgres" "$RUN_DIR/rabbitmq/mnesia" "$RUN_DIR/env.sh"

    local t0=$SECONDS
    # Anything failing from here on: tear down what was started.
    # shellcheck disable=SC2154  # start_rc is assigned inside the trap
    trap 'start_rc=$?; if [ $start_rc -ne 0 ]; then log "start failed, cleaning up"; cmd_stop "$RUN_DIR" || true; fi' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    local ports
    ports=$(pick_ports 4) || die "could not pick free ports"
    read -r AMQP_PORT DIST_PORT EPMD_PORT PG_PORT <<<"$ports"
    NODENAME="crmtest-$AMQP_PORT@localhost"
    state_set AMQP_PORT "$AMQP_PORT"
    state_set DIST_PORT "$DIST_PORT"
    state_set EPMD_PORT "$EPMD_PORT"
    state_set PG_PORT "$PG_PORT"
    state_set NODENAME "$NODENAME"

    start_rabbit_begin   # in the background; PostgreSQL boots meanwhile
    start_postgres
    start_rabbit_wait

    write_env_sh
    trap - EXIT INT TERM
    log "RabbitMQ amqp://127.0.0.1:$AMQP_PORT (node $NODENAME), PostgreSQL 127.0.0.1:$PG_PORT; up in $((SECONDS - t0))s"
    echo "$RUN_DIR/env.sh"
}

start_rabbit_begin() {
    RMQ_DIR=$RUN_DIR/rabbitmq
    mkdir -p "$RMQ_DIR/home" "$RMQ_DIR/mnesia" "$RMQ_DIR/log" "$RMQ_DIR/bin"
    chmod 700 "$RMQ_DIR/home"

    # Erlang cookie: the server and the CLI both read $HOME/.erlang.cookie;
    # written up front so nothing races to generate it.
    local cookie=$RMQ_DIR/home/.erlang.cookie
    if [ ! -s "$cookie" ]; then
        (umask 077; python3 -c 'import secrets,string; print("".join(secrets.choice(string.ascii_uppercase) for _ in range(32)), end="")' >"$cookie")
    fi
    chmod 400 "$cookie"

    cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
loopback_users.guest = true
log.file.level = info
log.console = false
# test broker: never block publishers because the disk is "low"
disk_free_limit.absolute = 1MB
EOF
    # partitioned consumers route through x-consistent-hash exchanges (crm_common/consumer.py)
    echo '[rabbitmq_consistent_hash_exchange].' >"$RMQ_DIR/enabled_plugins"
    : >"$RMQ_DIR/rabbitmq-env.conf"

    # Environment shared by the server, the CLI wrapper and `stop`.
    cat >"$RMQ_DIR/env" <<EOF
export HOME=$(printf %q "$RMQ_DIR/home")
export LC_ALL=C.UTF-8
export RABBITMQ_NODENAME=$(printf %q "$NODENAME")
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$AMQP_PORT
export RABBITMQ_DIST_PORT=$DIST_PORT
export ERL_EPMD_PORT=$EPMD_PORT
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_CONF_ENV_FILE=$(printf %q "$RMQ_DIR/rabbitmq-env.conf")
export RABBITMQ_CONFIG_FILE=$(printf %q "$RMQ_DIR/rabbitmq.conf")
export RABBITMQ_ADVANCED_CONFIG_FILE=$(printf %q "$RMQ_DIR/advanced.config")
export RABBITMQ_ENABLED_PLUGINS_FILE=$(printf %q "$RMQ_DIR/enabled_plugins")
export RABBITMQ_MNESIA_BASE=$(printf %q "$RMQ_DIR/mnesia")
export RABBITMQ_LOG_BASE=$(printf %q "$RMQ_DIR/log")
export RABBITMQ_LOGS=$(printf %q "$RMQ_DIR/log/rabbit.log")
export RABBITMQ_PID_FILE=$(printf %q "$RMQ_DIR/rabbit.pid")
# the CLI tools' own distribution port: any free one (the default is a fixed
# 11-port range shared by every rabbitmqctl on the machine)
export RABBITMQ_CTL_DIST_PORT_MIN=0
export RABBITMQ_CTL_DIST_PORT_MAX=0
EOF
    # CLI wrappers so `rabbitmqctl list_queues` etc. reach this node
    local tool
    for tool in rabbitmqctl rabbitmq-diagnostics rabbitmq-plugins rabbitmq-queues; do
        cat >"$RMQ_DIR/bin/$tool" <<EOF
#!/bin/sh
. $(printf %q "$RMQ_DIR/env")
exec $RMQ_BIN/$tool "\$@"
EOF
        chmod +x "$RMQ_DIR/bin/$tool"
    done
    state_set RMQ_DIR "$RMQ_DIR"

    # Our own epmd on the private port (so that `stop` knows exactly which
    # process to kill; the VM would otherwise spawn an anonymous daemon).
    (
        # shellcheck disable=SC1091
        . "$RMQ_DIR/env"
        cd "$RMQ_DIR"
        exec setsid epmd -port "$EPMD_PORT" -address 127.0.0.1
    ) </dev/null >>"$RMQ_DIR/log/epmd.log" 2>&1 &
    EPMD_PID=$!
    state_set EPMD_PID "$EPMD_PID"
    local i
    for ((i = 0; i < 100; i++)); do
        tcp_open 127.0.0.1 "$EPMD_PORT" && break
        alive "$EPMD_PID" || die "epmd exited: $(tail -n 20 "$RMQ_DIR/log/epmd.log")"
        sleep 0.05
    done
    tcp_open 127.0.0.1 "$EPMD_PORT" || die "epmd is not listening on 127.0.0.1:$EPMD_PORT"

    # The real server script, not /usr/sbin/rabbitmq-server (which su's to
    # the rabbitmq user). Own session: terminal ^C does not hit it; stop does.
    (
        # shellcheck disable=SC1091
        . "$RMQ_DIR/env"
        export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
        cd "$RMQ_DIR"
        exec setsid "$RMQ_BIN/rabbitmq-server"
    ) </dev/null >>"$RMQ_DIR/log/stdout.log" 2>&1 &
    RABBIT_PID=$!
    state_set RABBIT_PID "$RABBIT_PID"
}

rabbit_log_tail() {
    local f
    for f in "$RMQ_DIR/log/stdout.log" "$RMQ_DIR/log/rabbit.log"; do
        [ -s "$f" ] || continue
        echo "----- tail of $f -----" >&2
        tail -n 40 "$f" >&2
    done
}

start_rabbit_wait() {
    local deadline=$((SECONDS + RABBIT_TIMEOUT)) err=""
    while :; do
        if ! alive "$RABBIT_PID"; then
            rabbit_log_tail
            die "RabbitMQ exited during startup (logs: $RMQ_DIR/log)"
        fi
        if err=$(amqp_ready "$AMQP_PORT" 2>&1); then
            break
        fi
        if [ $SECONDS -ge $deadline ]; then
            rabbit_log_tail
            die "RabbitMQ did not accept AMQP connections on 127.0.0.1:$AMQP_PORT within ${RABBIT_TIMEOUT}s (last error: $(tail -n 1 <<<"${err:-?}"); logs: $RMQ_DIR/log)"
        fi
        sleep 0.25
    done
    if [ -s "$RMQ_DIR/rabbit.pid" ]; then
        state_set BEAM_PID "$(cat "$RMQ_DIR/rabbit.pid")"
    fi
}

# Full AMQP handshake + guest login with the `amqp` library if importable,
# else a raw protocol-header exchange (server must answer Connection.Start).
amqp_ready() {
    local py=python3
    if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
        py=$VIRTUAL_ENV/bin/python
    fi
    "$py" - "$1" <<'EOF'
import socket, sys
port = int(sys.argv[1])
try:
    import amqp
except ImportError:
    amqp = None
if amqp is not None:
    c = amqp.Connection("127.0.0.1:%d" % port, userid="guest", password="guest",
                        connect_timeout=2)
    c.connect()
    c.close()
else:
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.sendall(b"AMQP\x00\x00\x09\x01")
    data = s.recv(7)
    s.close()
    # frame type 1 (method), channel 0
    if len(data) < 7 or data[0] != 1:
        sys.exit("no Connection.Start from broker")
EOF
}

start_postgres() {
    id postgres >/dev/null 2>&1 ||
        useradd --system --user-group --home-dir /var/lib/postgresql \
            --no-create-home --shell /bin/bash postgres

    # The cluster lives in RUN_DIR/postgres unless the postgres user cannot
    # reach it (e.g. the checkout is under /root, mode 700) or the unix socket
    # path would exceed the 107-byte limit; then in a /tmp dir, symlinked.
    PG_DIR=$RUN_DIR/postgres
    local sock_path="$PG_DIR/run/.s.PGSQL.$PG_PORT"
    mkdir -p "$PG_DIR"
    chown postgres: "$PG_DIR"
    if [ ${#sock_path} -gt 100 ] || ! (cd / && runuser -u postgres -- test -w "$PG_DIR"); then
        rmdir "$PG_DIR"
        local alt
        alt=$(mktemp -d /tmp/crm-pg.XXXXXX)
        chmod 755 "$alt"
        chown postgres: "$alt"
        ln -s "$alt" "$PG_DIR"
        state_set PG_EXTERNAL_DIR "$alt"
        PG_DIR=$alt
    fi
    PG_DATA=$PG_DIR/data
    state_set PG_DATA "$PG_DATA"
    runuser -u postgres -- mkdir -p "$PG_DIR/run"

    if ! (cd / && runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DATA" -U postgres \
        -A trust -E UTF8 --locale=C -N) >"$PG_DIR/initdb.log" 2>&1; then
        tail -n 30 "$PG_DIR/initdb.log" >&2
        die "initdb failed (log: $PG_DIR/initdb.log)"
    fi
    cat >>"$PG_DATA/postgresql.conf" <<EOF

# --- private test cluster (scripts/infra.sh) ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR/run'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
log_timezone = 'UTC'
EOF

    if ! (cd / && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" \
        -l "$PG_DIR/postgresql.log" -w -t "$PG_TIMEOUT" start) >"$PG_DIR/pg_ctl.log" 2>&1; then
        cat "$PG_DIR/pg_ctl.log" >&2
        tail -n 30 "$PG_DIR/postgresql.log" >&2 || true
        die "PostgreSQL did not start (log: $PG_DIR/postgresql.log)"
    fi

    local name sql=""
    for name in "${SERVICES[@]}"; do
        sql+="CREATE ROLE crm_$name LOGIN CREATEDB PASSWORD 'crm_$name';
CREATE DATABASE crm_$name OWNER crm_$name;
"
    done
    if ! "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 <<<"$sql" >"$PG_DIR/setup.log" 2>&1; then
        cat "$PG_DIR/setup.log" >&2
        die "creating roles/databases failed"
    fi
}

write_env_sh() {
    local f=$RUN_DIR/env.sh name upper
    {
        echo "# generated by scripts/infra.sh start $(date -u +%FT%TZ); source me"
        echo "export CRM_INFRA_RUN_DIR=$(printf %q "$RUN_DIR")"
        echo "export CRM_AMQP_URI=amqp://guest:guest@127.0.0.1:$AMQP_PORT/"
        echo "export CRM_PG_ADMIN_URL=postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
        for name in "${SERVICES[@]}"; do
            upper=$(tr '[:lower:]' '[:upper:]' <<<"$name")
            echo "export ${upper}_DATABASE_URL=postgresql+psycopg2://crm_$name:crm_$name@127.0.0.1:$PG_PORT/crm_$name"
        done
        echo "export CRM_PG_HOST=127.0.0.1"
        echo "export CRM_PG_PORT=$PG_PORT"
        echo "export CRM_RABBIT_NODENAME=$(printf %q "$NODENAME")"
        echo "export CRM_RABBIT_HOME=$(printf %q "$RMQ_DIR/home")"
        echo "export CRM_RABBITMQCTL=$(printf %q "$RMQ_DIR/bin/rabbitmqctl")"
        echo "# rabbitmqctl & co: the wrappers in \$CRM_INFRA_RUN_DIR/rabbitmq/bin set HOME"
        echo "# (Erlang cookie) themselves, so HOME is NOT changed for the test process."
        echo "export RABBITMQ_NODENAME=$(printf %q "$NODENAME")"
        echo "export ERL_EPMD_PORT=$EPMD_PORT"
        echo "export RABBITMQ_CTL_DIST_PORT_MIN=0"
        echo "export RABBITMQ_CTL_DIST_PORT_MAX=0"
        echo "export PATH=$(printf %q "$RMQ_DIR/bin"):\$PATH"
    } >"$f.tmp"
    mv -f "$f.tmp" "$f"
}

# ---------------------------------------------------------------------------
# stop
# ---------------------------------------------------------------------------
cmd_stop() {
    [ $# -eq 1 ] || usage
    local dir=$1
    if [ ! -f "$dir/infra.state" ]; then
        log "nothing to stop in $dir (no infra.state)"
        return 0
    fi
    local AMQP_PORT="" EPMD_PORT="" PG_PORT="" NODENAME="" RMQ_DIR="" EPMD_PID=""
    # shellcheck disable=SC2034  # all assigned by the state file
    local RABBIT_PID="" BEAM_PID="" PG_DATA="" PG_EXTERNAL_DIR="" DIST_PORT=""
    # shellcheck disable=SC1091
    . "$dir/infra.state"
    local failed=0

    # PostgreSQL
    if [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
        local pm_pid
        pm_pid=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)
        if ! (cd / && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop) >/dev/null 2>&1; then
            if pid_matches "$pm_pid" 'postgres'; then
                log "pg_ctl stop failed; killing postmaster $pm_pid"
                kill -QUIT "$pm_pid" 2>/dev/null || true
                sleep 1
                kill_wait "$pm_pid" 'postgres' 5
            fi
        fi
        if pid_matches "$pm_pid" 'postgres'; then
            log "WARNING: postmaster $pm_pid still running"
            failed=1
        fi
    fi

    # RabbitMQ: SIGTERM = graceful shutdown (the wrapper forwards it to the VM,
    # OTP handles SIGTERM as init:stop()); no CLI round-trip needed.
    if [ -z "$BEAM_PID" ] && [ -n "$RMQ_DIR" ] && [ -s "$RMQ_DIR/rabbit.pid" ]; then
        BEAM_PID=$(cat "$RMQ_DIR/rabbit.pid")
    fi
    # the VM is the wrapper's child even if rabbit.pid was never written
    if [ -z "$BEAM_PID" ] && [ -n "$RABBIT_PID" ]; then
        BEAM_PID=$(pgrep -P "$RABBIT_PID" 2>/dev/null | head -n 1 || true)
    fi
    if pid_matches "$RABBIT_PID" 'rabbitmq-server'; then
        kill -TERM "$RABBIT_PID" 2>/dev/null || true
    fi
    [ -n "$BEAM_PID" ] && kill_wait "$BEAM_PID" 'beam' 30
    [ -n "$RABBIT_PID" ] && kill_wait "$RABBIT_PID" 'rabbitmq-server' 5
    if { [ -n "$BEAM_PID" ] && pid_matches "$BEAM_PID" beam; } ||
        { [ -n "$RABBIT_PID" ] && pid_matches "$RABBIT_PID" rabbitmq-server; }; then
        failed=1
    fi
    # epmd last (the VM unregisters from it on the way down)
    [ -n "$EPMD_PID" ] && kill_wait "$EPMD_PID" 'epmd' 5
    if [ -n "$EPMD_PID" ] && pid_matches "$EPMD_PID" epmd; then failed=1; fi

    if [ $failed -ne 0 ]; then
        log "stop: some processes of $dir are still alive"
        return 1
    fi
    log "stopped infra in $dir"
}

# ---------------------------------------------------------------------------
case "${1:-}" in
install) shift; [ $# -eq 0 ] || usage; cmd_install ;;
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
*) usage ;;
esac
