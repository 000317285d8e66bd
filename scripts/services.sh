#!/usr/bin/env bash
# FoodFast development services: PostgreSQL, Redis and Apache Cassandra 5 (the stand-in for
# ScyllaDB), all bound to 127.0.0.1, all data under <repo>/.local/.
#
#   scripts/services.sh start  [postgres|redis|cassandra ...]   (default: all three)
#   scripts/services.sh stop   [postgres|redis|cassandra ...]
#   scripts/services.sh status [postgres|redis|cassandra ...]   (exit 0 only if all are up)
#
# Environment (defaults in brackets):
#   FOODFAST_PG_PORT [5432]  FOODFAST_REDIS_PORT [6379]  FOODFAST_REDIS_TLS_PORT [6380]
#   FOODFAST_CASSANDRA_PORT [9042]  FOODFAST_CASSANDRA_STORAGE_PORT [7000]
#   FOODFAST_CASSANDRA_HEAP [3G]  FOODFAST_CASSANDRA_VERSION [5.0.9]
#   FOODFAST_CASSANDRA_TIMEOUT [180] (seconds)  FOODFAST_JAVA [a Java 17 found on the machine]
#   CI=true or FOODFAST_VERBOSE=1: print progress lines and show installer output.
#
# Everything here is for development and tests only: no passwords are checked on loopback.
set -euo pipefail
shopt -s extglob

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
LOCAL="$ROOT/.local"
HOST=127.0.0.1

PG_PORT=${FOODFAST_PG_PORT:-5432}
REDIS_PORT=${FOODFAST_REDIS_PORT:-6379}
REDIS_TLS_PORT=${FOODFAST_REDIS_TLS_PORT:-6380}
CASS_PORT=${FOODFAST_CASSANDRA_PORT:-9042}
CASS_STORAGE_PORT=${FOODFAST_CASSANDRA_STORAGE_PORT:-7000}
CASS_HEAP=${FOODFAST_CASSANDRA_HEAP:-3G}
CASS_VERSION=${FOODFAST_CASSANDRA_VERSION:-5.0.9}
CASS_TIMEOUT=${FOODFAST_CASSANDRA_TIMEOUT:-180}
PG_TIMEOUT=60
REDIS_TIMEOUT=30

CASS_HOME="$LOCAL/cassandra"
CASS_LIB="$CASS_HOME/lib"
CASS_CONF="$CASS_HOME/conf"
CASS_DATA="$CASS_HOME/data"
CASS_LOGS="$CASS_HOME/logs"
CASS_PIDFILE="$CASS_HOME/cassandra.pid"
REDIS_HOME="$LOCAL/redis"
REDIS_PIDFILE="$REDIS_HOME/redis.pid"
INSTALL_LOG="$LOCAL/install.log"

export DEBIAN_FRONTEND=noninteractive

# ---------------------------------------------------------------------------------------------
# helpers

verbose() { [[ ${CI:-} == true || ${CI:-} == 1 || -n ${FOODFAST_VERBOSE:-} ]]; }
progress() { if verbose; then printf '[services %(%H:%M:%S)T] %s\n' -1 "$*" >&2; fi; }
note() { printf '%s\n' "$*" >&2; }
die() { printf 'services.sh: error: %s\n' "$*" >&2; exit 1; }

# show_tail FILE[@BYTE]...: the end of a log (from byte BYTE on, if given), for error messages
show_tail() {
    local f from
    for f in "$@"; do
        from=1
        if [[ $f == *@+([0-9]) ]]; then from=$((${f##*@} + 1)) f=${f%@*}; fi
        [[ -s $f ]] || continue
        note "---- last lines of $f ----"
        tail -c "+$from" -- "$f" | tail -n 30 | cut -c1-400 | sed "s/^/    /" >&2
    done
}
file_size() { if [[ -f $1 ]]; then stat -c %s -- "$1"; else echo 0; fi; }

check_port() {
    if ! [[ $2 =~ ^[0-9]+$ ]] || (($2 < 1 || $2 > 65535)); then die "$1=$2 is not a TCP port"; fi
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT
# shellcheck disable=SC2016 # $0 and $1 belong to the inner bash
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null; }

port_owner() {
    if command -v ss >/dev/null; then
        ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:.*' | head -n1
    fi
}

# pid_alive PIDFILE PATTERN: the pid in PIDFILE runs and its command line contains PATTERN
pid_alive() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2"
}

# wait_gone PID SECONDS
wait_gone() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

# run_quiet CMD...: output goes to the install log, unless verbose (CI), where it is shown
run_quiet() {
    if verbose; then
        "$@"
    else
        mkdir -p "$LOCAL"
        printf '\n==== %s: %s\n' "$(date -Is)" "$*" >>"$INSTALL_LOG"
        "$@" >>"$INSTALL_LOG" 2>&1 || { local rc=$?; show_tail "$INSTALL_LOG"; return "$rc"; }
    fi
}

APT_UPDATED=0
POLICY_CREATED=0
cleanup() {
    if ((POLICY_CREATED)); then rm -f /usr/sbin/policy-rc.d; fi
}
trap cleanup EXIT

apt_install() {
    (($# > 0)) || return 0
    command -v apt-get >/dev/null || die "missing $*, and there is no apt-get here: install them yourself"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "installing $* needs root (or sudo)"
        sudo=(sudo -n)
    fi
    note "installing $* with apt-get (output in ${INSTALL_LOG#"$ROOT"/} unless CI=true)"
    # Do not let the packages start their own system-wide postgres/redis on our ports.
    if ((EUID == 0)) && [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# temporary, from FoodFast scripts/services.sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        POLICY_CREATED=1
    fi
    if ((APT_UPDATED == 0)); then
        progress "apt-get update"
        run_quiet "${sudo[@]}" apt-get update -q || die "apt-get update failed"
        APT_UPDATED=1
    fi
    progress "apt-get install -y $*"
    run_quiet "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" ||
        die "apt-get install $* failed"
    cleanup
    POLICY_CREATED=0
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

PG_BIN=""
find_pg_bin() {
    local candidates
    candidates=$(printf '%s\n' /usr/lib/postgresql/*/bin/postgres | grep -v '\*' | sort -V | tail -n1)
    [[ -n $candidates ]] && PG_BIN=${candidates%/postgres}
    [[ -n $PG_BIN && -x $PG_BIN/pg_ctl && -x $PG_BIN/initdb ]] && command -v psql >/dev/null &&
        command -v pg_isready >/dev/null
}

# as_pg CMD...: run as the postgres user, from a directory it can read
as_pg() { (close_lock && cd / && runuser -u postgres -- "$@"); }

PG_HOME="" PG_DATA="" PG_SOCK="" PG_LOG=""
pg_paths() {
    local link="$LOCAL/postgres"
    if [[ -L $link ]]; then
        PG_HOME=$(readlink -f -- "$link")
    else
        PG_HOME=$link
    fi
    PG_DATA="$PG_HOME/data"
    PG_SOCK="$PG_HOME/run"
    PG_LOG="$PG_HOME/postgres.log"
}

# The postgres user must reach its data directory. When the repo lives where it cannot
# (e.g. under /root), keep the data in /var/tmp and make .local/postgres a symlink to it.
pg_prepare_home() {
    local link="$LOCAL/postgres" hash
    mkdir -p "$LOCAL"
    if [[ ! -e $link && ! -L $link ]]; then
        if runuser -u postgres -- test -x "$LOCAL" 2>/dev/null; then
            mkdir "$link"
        else
            hash=$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)
            progress "postgres user cannot traverse $ROOT: data goes to /var/tmp/foodfast-postgres-$hash"
            mkdir -p "/var/tmp/foodfast-postgres-$hash"
            ln -s "/var/tmp/foodfast-postgres-$hash" "$link"
        fi
    fi
    pg_paths
    mkdir -p "$PG_HOME"
    chown postgres:postgres "$PG_HOME"
    chmod 700 "$PG_HOME"
    runuser -u postgres -- test -x "$PG_HOME" ||
        die "the postgres user cannot reach $PG_HOME; remove $link (and its data) so it is recreated under /var/tmp"
    as_pg mkdir -p "$PG_SOCK"
    touch "$PG_LOG"
    chown postgres:postgres "$PG_LOG"
}

pg_running() {
    [[ -n $PG_DATA && -s $PG_DATA/postmaster.pid ]] || return 1
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}
pg_answering() { pg_isready -q -h "$HOST" -p "$PG_PORT" -t 2; }

pg_initdb() {
    progress "initdb $PG_DATA"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=trust >>"$PG_LOG" 2>&1 ||
        { show_tail "$PG_LOG"; die "initdb failed"; }
    printf "\n# FoodFast development settings (written by scripts/services.sh)\ninclude_if_exists = 'foodfast.conf'\n" |
        as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

# A development CA, under .local/postgres-tls, that signs every development certificate:
# PostgreSQL's (for "localhost" only, so a test can tell verify-full from verify-ca by
# connecting to 127.0.0.1), a client certificate (CN foodfast), and Cassandra's.
PG_TLS="$LOCAL/postgres-tls"
EC_KEY=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
dev_ca() {
    [[ -s $PG_TLS/ca.key ]] && return 0
    progress "making a development CA in ${PG_TLS#"$ROOT"/}"
    mkdir -p "$PG_TLS"
    run_quiet openssl req -x509 "${EC_KEY[@]}" -keyout "$PG_TLS/ca.key" -out "$PG_TLS/ca.pem" -days 3650 \
        -subj "/CN=FoodFast development CA" || die "openssl could not make the development CA"
}

# dev_certificate DIR NAME CN EXTENSION: DIR/NAME.{key,pem}, signed by the development CA.
dev_certificate() {
    run_quiet openssl req "${EC_KEY[@]}" -keyout "$1/$2.key" -out "$1/$2.csr" -subj "/CN=$3" &&
        run_quiet openssl x509 -req -in "$1/$2.csr" -CA "$PG_TLS/ca.pem" -CAkey "$PG_TLS/ca.key" \
            -CAcreateserial -out "$1/$2.pem" -days 3650 -extfile <(printf '%s\n' "$4") ||
        die "openssl could not make the $2 certificate in $1"
}

# The server's copies go where the postgres user reads.
pg_tls() {
    dev_ca
    if [[ ! -s $PG_TLS/client.key || $PG_TLS/ca.pem -nt $PG_TLS/client.key ]]; then
        progress "postgres: making its certificates in ${PG_TLS#"$ROOT"/}"
        dev_certificate "$PG_TLS" server localhost "subjectAltName=DNS:localhost"
        dev_certificate "$PG_TLS" client foodfast "extendedKeyUsage=clientAuth"
    fi
    as_pg mkdir -p "$PG_HOME/tls"
    local file
    for file in ca.pem server.pem server.key; do
        install -o postgres -g postgres -m 600 "$PG_TLS/$file" "$PG_HOME/tls/$file"
    done
}

pg_write_config() {
    # DEVELOPMENT ONLY: every loopback connection is trusted, without a password. The server
    # listens on 127.0.0.1 only and its socket is in a directory only postgres/root can enter.
    as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null <<'EOF'
# FoodFast development cluster (scripts/services.sh). DEVELOPMENT ONLY: trust on loopback.
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  trust
host    all          all   127.0.0.1/32   trust
host    all          all   ::1/128        trust
local   replication  all                  trust
host    replication  all   127.0.0.1/32   trust
host    replication  all   ::1/128        trust
EOF
    # Durability settings stay at their defaults (fsync, synchronous_commit on).
    as_pg tee "$PG_DATA/foodfast.conf" >/dev/null <<EOF
# Written by scripts/services.sh on every start; edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '${PG_SOCK//\'/\'\'}'
max_connections = 300
# SERIALIZABLE on PostgreSQL locks a whole table for a sequential scan, and the planner scans
# small tables (every fresh test database) sequentially: transactions on different rows then
# conflict and retry as if they touched the same ones. CockroachDB conflicts on rows (keys)
# only; index scans, and tuple locks that are not merged into page locks as early, bring
# PostgreSQL's predicate locks close to that.
enable_seqscan = off
max_pred_locks_per_transaction = 1024
max_pred_locks_per_page = 64
# TLS for clients that ask (sslmode=prefer and up); a client certificate is checked if sent.
ssl = on
ssl_cert_file = '${PG_HOME//\'/\'\'}/tls/server.pem'
ssl_key_file = '${PG_HOME//\'/\'\'}/tls/server.key'
ssl_ca_file = '${PG_HOME//\'/\'\'}/tls/ca.pem'
EOF
}

pg_setup_roles() {
    progress "postgres: ensuring role and database foodfast"
    as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres >/dev/null <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'foodfast') THEN
    CREATE ROLE foodfast LOGIN SUPERUSER PASSWORD 'foodfast';
  ELSE
    ALTER ROLE foodfast LOGIN SUPERUSER PASSWORD 'foodfast';
  END IF;
END
$$;
SELECT 'CREATE DATABASE foodfast OWNER foodfast'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'foodfast')\gexec
SQL
}

pg_line() { printf '%-10s %-5s %s\n' postgres "$1" "postgresql://foodfast:foodfast@$HOST:$PG_PORT/foodfast${2:+  $2}"; }

pg_start() {
    ((EUID == 0)) || die "postgres: this script runs PostgreSQL as the postgres user and needs root"
    find_pg_bin || die "postgres: no PostgreSQL binaries under /usr/lib/postgresql"
    pg_prepare_home
    pg_tls
    if pg_running; then
        if pg_answering; then
            # TLS settings take effect on a reload; the others wait for a restart.
            pg_write_config
            as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" reload >/dev/null
            pg_setup_roles
            pg_line up "(already running, pid $(head -n1 "$PG_DATA/postmaster.pid"))"
            return 0
        fi
        progress "postgres: running but not answering yet; waiting"
    else
        if port_open "$PG_PORT"; then
            die "postgres: port $PG_PORT is taken by another process $(port_owner "$PG_PORT")
  (a Debian cluster? see pg_lsclusters / pg_ctlcluster VERSION main stop), or set FOODFAST_PG_PORT"
        fi
        if [[ ! -s $PG_DATA/PG_VERSION ]]; then
            pg_initdb
        fi
        local data_version bin_version
        data_version=$(<"$PG_DATA/PG_VERSION")
        bin_version=$(basename "$(dirname "$PG_BIN")")
        [[ $data_version == "$bin_version" ]] ||
            die "postgres: $PG_DATA was made by PostgreSQL $data_version, binaries are $bin_version; remove it to start afresh"
        pg_write_config
        progress "postgres: pg_ctl start on $HOST:$PG_PORT"
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$PG_TIMEOUT" \
            -o "-p $PG_PORT -k '$PG_SOCK' -c listen_addresses=$HOST" start >/dev/null ||
            { show_tail "$PG_LOG"; die "postgres did not start"; }
    fi
    local i
    for ((i = 0; i < PG_TIMEOUT * 2; i++)); do
        pg_answering && break
        sleep 0.5
    done
    pg_answering || { show_tail "$PG_LOG"; die "postgres is not answering on $HOST:$PG_PORT after ${PG_TIMEOUT}s"; }
    pg_setup_roles
    pg_line up "(started)"
}

pg_stop() {
    pg_paths
    if ! find_pg_bin || ! pg_running; then
        pg_line down "(not running)"
        return 0
    fi
    progress "postgres: pg_ctl stop -m fast"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" stop -m fast -w -t 60 >/dev/null ||
        { show_tail "$PG_LOG"; die "postgres did not stop"; }
    pg_line down "(stopped)"
}

pg_status() {
    pg_paths
    if find_pg_bin && pg_running && pg_answering; then
        pg_line up "(pid $(head -n1 "$PG_DATA/postmaster.pid"))"
    elif pg_answering 2>/dev/null; then
        pg_line down "(port $PG_PORT answers, but not our cluster in $PG_DATA)"
        return 1
    else
        pg_line down
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------
# Redis

redis_ping() { [[ $(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }
redis_ours() { pid_alive "$REDIS_PIDFILE" redis-server; }
redis_line() { printf '%-10s %-5s %s\n' redis "$1" "redis://$HOST:$REDIS_PORT${2:+  $2}"; }

# Redis's certificate from the development CA, for its TLS port (clients may present one).
REDIS_TLS="$LOCAL/redis-tls"
redis_tls() {
    dev_ca
    [[ -s $REDIS_TLS/server.key && ! $PG_TLS/ca.pem -nt $REDIS_TLS/server.key ]] && return 0
    progress "redis: making its certificate in ${REDIS_TLS#"$ROOT"/}"
    mkdir -p "$REDIS_TLS"
    dev_certificate "$REDIS_TLS" server 127.0.0.1 "subjectAltName=IP:127.0.0.1,DNS:localhost"
}

redis_start() {
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        die "redis: redis-server is not installed"
    fi
    mkdir -p "$REDIS_HOME"
    redis_tls
    if redis_ours && redis_ping; then
        redis_line up "(already running, pid $(<"$REDIS_PIDFILE"))"
        return 0
    fi
    if ! redis_ours; then
        if port_open "$REDIS_PORT"; then
            die "redis: port $REDIS_PORT is taken by another process $(port_owner "$REDIS_PORT")
  (a system redis-server? stop it with 'service redis-server stop'), or set FOODFAST_REDIS_PORT"
        fi
        if port_open "$REDIS_TLS_PORT"; then
            die "redis: port $REDIS_TLS_PORT is taken by another process $(port_owner "$REDIS_TLS_PORT"); set FOODFAST_REDIS_TLS_PORT"
        fi
        rm -f "$REDIS_PIDFILE"
        progress "redis: redis-server on $HOST:$REDIS_PORT, TLS on $REDIS_TLS_PORT"
        (close_lock && exec redis-server --bind "$HOST" --port "$REDIS_PORT" --save '' --appendonly no \
            --tls-port "$REDIS_TLS_PORT" --tls-cert-file "$REDIS_TLS/server.pem" \
            --tls-key-file "$REDIS_TLS/server.key" --tls-ca-cert-file "$PG_TLS/ca.pem" --tls-auth-clients optional \
            --daemonize yes --pidfile "$REDIS_PIDFILE" --dir "$REDIS_HOME" \
            --logfile "$REDIS_HOME/redis.log" </dev/null >>"$REDIS_HOME/stdout.log" 2>&1) ||
            { show_tail "$REDIS_HOME/redis.log" "$REDIS_HOME/stdout.log"; die "redis-server did not start"; }
    fi
    local i
    for ((i = 0; i < REDIS_TIMEOUT * 5; i++)); do
        redis_ping && break
        sleep 0.2
    done
    redis_ping || { show_tail "$REDIS_HOME/redis.log"; die "redis is not answering on $HOST:$REDIS_PORT after ${REDIS_TIMEOUT}s"; }
    redis_line up "(started)"
}

redis_stop() {
    if ! redis_ours; then
        if redis_ping; then
            redis_line up "(not started by this script; left alone)"
        else
            redis_line down "(not running)"
        fi
        rm -f "$REDIS_PIDFILE"
        return 0
    fi
    local pid
    pid=$(<"$REDIS_PIDFILE")
    progress "redis: SHUTDOWN NOSAVE (pid $pid)"
    redis-cli -h "$HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    if ! wait_gone "$pid" 30; then
        note "redis: pid $pid did not exit after SHUTDOWN; sending SIGTERM"
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || die "redis (pid $pid) does not stop"
    fi
    rm -f "$REDIS_PIDFILE"
    redis_line down "(stopped)"
}

redis_status() {
    if redis_ours && redis_ping; then
        redis_line up "(pid $(<"$REDIS_PIDFILE"))"
    elif redis_ping; then
        redis_line down "(port $REDIS_PORT answers, but not a redis started by this script)"
        return 1
    else
        redis_line down
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------
# Cassandra

java_major() {
    "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p' | head -n1
}

JAVA=""
find_java() {
    local c
    local candidates=()
    [[ -n ${FOODFAST_JAVA:-} ]] && candidates+=("$FOODFAST_JAVA")
    if command -v java >/dev/null; then candidates+=("$(command -v java)"); fi
    [[ -n ${JAVA_HOME:-} ]] && candidates+=("$JAVA_HOME/bin/java")
    for c in /usr/lib/jvm/java-17-*/bin/java; do candidates+=("$c"); done
    for c in "${candidates[@]}"; do
        [[ -x $c ]] || continue
        if [[ $(java_major "$c") == 17 ]]; then
            JAVA=$c
            return 0
        fi
    done
    return 1
}

cass_downloaded() { [[ -f $CASS_LIB/.complete-$CASS_VERSION && -f $CASS_LIB/cassandra-all-$CASS_VERSION.jar ]]; }

# Maven 3.8 prints colour-reset escapes even with -q -B; keep logs clean.
mvn_plain() { mvn "$@" 2>&1 | sed $'s/\e\\[[0-9;]*m//g'; }

cass_download() {
    cass_downloaded && return 0
    command -v mvn >/dev/null || die "cassandra: Maven (mvn) is needed to download cassandra-all"
    mkdir -p "$CASS_HOME"
    cat >"$CASS_HOME/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by scripts/services.sh: only used to download Cassandra and its dependencies. -->
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.foodfast.local</groupId>
  <artifactId>cassandra-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$CASS_VERSION</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.6.1</version>
      </plugin>
    </plugins>
  </build>
</project>
EOF
    note "cassandra: downloading cassandra-all $CASS_VERSION and its dependencies from Maven Central"
    local started=$SECONDS
    rm -rf "$CASS_HOME/lib.partial"
    run_quiet mvn_plain -q -B -f "$CASS_HOME/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$CASS_HOME/lib.partial" ||
        die "cassandra: mvn dependency:copy-dependencies failed"
    [[ -f $CASS_HOME/lib.partial/cassandra-all-$CASS_VERSION.jar ]] ||
        die "cassandra: cassandra-all-$CASS_VERSION.jar was not downloaded"
    touch "$CASS_HOME/lib.partial/.complete-$CASS_VERSION"
    rm -rf "$CASS_LIB"
    mv "$CASS_HOME/lib.partial" "$CASS_LIB"
    progress "cassandra: $(find "$CASS_LIB" -name '*.jar' | wc -l) jars in $((SECONDS - started))s"
}

# Cassandra's certificate from the development CA, for 127.0.0.1 (the driver checks the
# address it connects to) and localhost, in the PKCS#12 keystore Cassandra reads.
CASS_TLS="$LOCAL/cassandra-tls"
CASS_KEYSTORE_PASSWORD=foodfast-dev
cass_tls() {
    dev_ca
    [[ -s $CASS_TLS/keystore.p12 && ! $PG_TLS/ca.pem -nt $CASS_TLS/keystore.p12 ]] && return 0
    progress "cassandra: making its certificate in ${CASS_TLS#"$ROOT"/}"
    mkdir -p "$CASS_TLS"
    dev_certificate "$CASS_TLS" server 127.0.0.1 "subjectAltName=IP:127.0.0.1,DNS:localhost"
    run_quiet openssl pkcs12 -export -in "$CASS_TLS/server.pem" -inkey "$CASS_TLS/server.key" -name cassandra \
        -out "$CASS_TLS/keystore.p12" -passout "pass:$CASS_KEYSTORE_PASSWORD" ||
        die "cassandra: openssl could not make the keystore"
}

cass_write_config() {
    mkdir -p "$CASS_CONF/triggers" "$CASS_LOGS" "$CASS_DATA"/{data,commitlog,saved_caches,hints,cdc_raw}
    cass_tls
    cat >"$CASS_CONF/cassandra.yaml" <<EOF
# Written by scripts/services.sh on every start; edit the script, not this file.
# One small development node on loopback (the ScyllaDB stand-in). Cassandra 5.0 rejects unknown keys.
cluster_name: FoodFast Dev
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
num_tokens: 1
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$HOST"
listen_address: $HOST
rpc_address: $HOST
storage_port: $CASS_STORAGE_PORT
native_transport_port: $CASS_PORT
start_native_transport: true
data_file_directories:
  - $CASS_DATA/data
commitlog_directory: $CASS_DATA/commitlog
saved_caches_directory: $CASS_DATA/saved_caches
hints_directory: $CASS_DATA/hints
cdc_raw_directory: $CASS_DATA/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10s
auto_snapshot: false
snapshot_before_compaction: false
# small machine, one node
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 4
concurrent_materialized_view_writes: 4
concurrent_compactors: 1
hinted_handoff_enabled: false
dynamic_snitch: false
key_cache_size: 16MiB
file_cache_size: 128MiB
# CQL with and without TLS on the same port, so tests can connect both ways.
client_encryption_options:
  enabled: true
  optional: true
  keystore: $CASS_TLS/keystore.p12
  keystore_password: $CASS_KEYSTORE_PASSWORD
  store_type: PKCS12
  require_client_auth: false
EOF
    cat >"$CASS_CONF/logback.xml" <<EOF
<!-- Written by scripts/services.sh: INFO and above to system.log, nothing to the console. -->
<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>$CASS_LOGS/system.log</file>
    <rollingPolicy class="ch.qos.logback.core.rolling.FixedWindowRollingPolicy">
      <fileNamePattern>$CASS_LOGS/system.log.%i.zip</fileNamePattern>
      <minIndex>1</minIndex>
      <maxIndex>5</maxIndex>
    </rollingPolicy>
    <triggeringPolicy class="ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy">
      <maxFileSize>50MB</maxFileSize>
    </triggeringPolicy>
    <encoder>
      <pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="FILE"/>
  </root>
</configuration>
EOF
}

cass_ours() { pid_alive "$CASS_PIDFILE" "org.apache.cassandra.service.CassandraDaemon"; }

# cql_probe PORT: speak CQL v4 (STARTUP, then QUERY) and print release_version.
# Needs nothing but bash; run it under `timeout`.
cql_probe() {
    local fd hdr len
    exec {fd}<>"/dev/tcp/127.0.0.1/$1" || return 1
    # STARTUP {CQL_VERSION: 3.0.0}
    printf '\x04\x00\x00\x01\x01\x00\x00\x00\x16\x00\x01\x00\x0bCQL_VERSION\x00\x053.0.0' >&"$fd"
    hdr=$(head -c 9 <&"$fd" | od -An -v -tx1 | tr -d ' \n')
    [[ ${hdr:8:2} == 02 ]] || return 1 # READY
    # QUERY "SELECT release_version FROM system.local" at consistency ONE
    printf '\x04\x00\x00\x02\x07\x00\x00\x00\x2f\x00\x00\x00\x28SELECT release_version FROM system.local\x00\x01\x00' >&"$fd"
    hdr=$(head -c 9 <&"$fd" | od -An -v -tx1 | tr -d ' \n')
    [[ ${hdr:8:2} == 08 ]] || return 1 # RESULT
    len=$((16#${hdr:10:8}))
    head -c "$len" <&"$fd" | tr -c '[:print:]' '\n' | grep -Eo '^[0-9]+\.[0-9]+\.[0-9]+.*' | tail -n1
}

cass_answer() { timeout 10 bash -c "$(declare -f cql_probe); cql_probe \"\$1\"" _ "$CASS_PORT" 2>/dev/null; }

cass_line() { printf '%-10s %-5s %s\n' cassandra "$1" "$HOST:$CASS_PORT (CQL)${2:+  $2}"; }

# cass_launch: start the JVM in the background unless ours already runs; does not wait.
CASS_STARTED=0 CASS_LOG_FROM="" CASS_OUT_FROM=""
cass_launch() {
    if cass_ours; then
        progress "cassandra: already running (pid $(<"$CASS_PIDFILE"))"
        return 0
    fi
    find_java || die "cassandra: Cassandra 5 needs Java 17 (it fails on Java 24+); install openjdk-17-jre-headless or set FOODFAST_JAVA"
    cass_downloaded || die "cassandra: $CASS_LIB is incomplete"
    local p
    for p in "$CASS_PORT" "$CASS_STORAGE_PORT"; do
        if port_open "$p"; then
            die "cassandra: port $p is taken by another process $(port_owner "$p"); set FOODFAST_CASSANDRA_PORT / FOODFAST_CASSANDRA_STORAGE_PORT"
        fi
    done
    cass_write_config
    local jamm=("$CASS_LIB"/jamm-*.jar)
    [[ -f ${jamm[0]} ]] || die "cassandra: no jamm jar in $CASS_LIB"
    local args=(
        -Xms"$CASS_HEAP" -Xmx"$CASS_HEAP" -Xss256k
        -XX:+UseG1GC -XX:MaxGCPauseMillis=300 -XX:+ParallelRefProcEnabled
        -XX:+PerfDisableSharedMem -XX:+ExitOnOutOfMemoryError
        -XX:ErrorFile="$CASS_LOGS/hs_err_%p.log"
        -Djava.net.preferIPv4Stack=true
        -javaagent:"${jamm[0]}"
        -Djdk.attach.allowAttachSelf=true
        -Dio.netty.tryReflectionSetAccessible=true
        --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
        --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
        --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
        --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
        --add-exports java.sql/java.sql=ALL-UNNAMED
        --add-exports java.base/java.lang.ref=ALL-UNNAMED
        --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
        --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
        --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
        --add-opens java.base/java.lang.module=ALL-UNNAMED
        --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
        --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
        --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
        --add-opens java.base/jdk.internal.math=ALL-UNNAMED
        --add-opens java.base/jdk.internal.module=ALL-UNNAMED
        --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
        --add-opens java.base/sun.nio.ch=ALL-UNNAMED
        --add-opens java.base/java.io=ALL-UNNAMED
        --add-opens java.base/java.lang.reflect=ALL-UNNAMED
        --add-opens java.base/java.lang=ALL-UNNAMED
        --add-opens java.base/java.util=ALL-UNNAMED
        --add-opens java.base/java.nio=ALL-UNNAMED
        --add-opens java.base/java.nio.charset=ALL-UNNAMED
        --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
        --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
        -Dcassandra.config="file://$CASS_CONF/cassandra.yaml"
        -Dcassandra-foreground=yes
        -Dcassandra.storagedir="$CASS_DATA"
        -Dcassandra.logdir="$CASS_LOGS"
        -Dlogback.configurationFile="$CASS_CONF/logback.xml"
        -Dcassandra.skip_wait_for_gossip_to_settle=0
        -Dcassandra.unsafesystem=true
        -Dcassandra.superuser_setup_delay_ms=0
        -Dcassandra.triggers_dir="$CASS_CONF/triggers"
        -cp "$CASS_CONF:$CASS_LIB/*"
        org.apache.cassandra.service.CassandraDaemon
    )
    progress "cassandra: starting $JAVA (heap $CASS_HEAP) on $HOST:$CASS_PORT, storage port $CASS_STORAGE_PORT"
    printf '\n==== %s: starting Cassandra\n' "$(date -Is)" >>"$CASS_LOGS/stdout.log"
    CASS_LOG_FROM="@$(file_size "$CASS_LOGS/system.log")"
    CASS_OUT_FROM="@$(file_size "$CASS_LOGS/stdout.log")"
    # Cassandra mlockall()s the whole JVM, which as root pins ~1.5 GB of RAM for good. On a
    # development machine drop CAP_IPC_LOCK so that fails (harmless warning) and memory stays
    # pageable. FOODFAST_CASSANDRA_MLOCK=1 keeps the lock.
    local nolock=()
    if ((EUID == 0)) && [[ ${FOODFAST_CASSANDRA_MLOCK:-0} != 1 ]] && command -v setpriv >/dev/null; then
        nolock=(setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock --)
    fi
    (close_lock && cd "$CASS_HOME" && ulimit -l 64 &&
        exec setsid nohup "${nolock[@]}" "$JAVA" "${args[@]}" </dev/null >>"$CASS_LOGS/stdout.log" 2>&1) &
    echo $! >"$CASS_PIDFILE"
    CASS_STARTED=1
    CASS_LAUNCHED_AT=$SECONDS
}

cass_wait() {
    local pid version
    pid=$(<"$CASS_PIDFILE")
    local deadline=$((SECONDS + CASS_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_tail "$CASS_LOGS/system.log$CASS_LOG_FROM" "$CASS_LOGS/stdout.log$CASS_OUT_FROM"
            die "cassandra (pid $pid) exited during startup"
        fi
        if port_open "$CASS_PORT" && version=$(cass_answer) && [[ -n $version ]]; then
            if ((CASS_STARTED)); then
                cass_line up "(started in $((SECONDS - CASS_LAUNCHED_AT))s, Cassandra $version, pid $pid)"
            else
                cass_line up "(already running, Cassandra $version, pid $pid)"
            fi
            return 0
        fi
        sleep 1
    done
    show_tail "$CASS_LOGS/system.log$CASS_LOG_FROM" "$CASS_LOGS/stdout.log$CASS_OUT_FROM"
    die "cassandra does not answer CQL on $HOST:$CASS_PORT after ${CASS_TIMEOUT}s (pid $pid still runs; 'scripts/services.sh stop cassandra' ends it)"
}

cass_stop() {
    if ! cass_ours; then
        cass_line down "(not running)"
        rm -f "$CASS_PIDFILE"
        return 0
    fi
    local pid
    pid=$(<"$CASS_PIDFILE")
    progress "cassandra: SIGTERM to pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 90; then
        note "cassandra: pid $pid still runs 90s after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || die "cassandra (pid $pid) does not die"
    fi
    rm -f "$CASS_PIDFILE"
    cass_line down "(stopped)"
}

cass_status() {
    local version
    if cass_ours && version=$(cass_answer) && [[ -n $version ]]; then
        cass_line up "(Cassandra $version, pid $(<"$CASS_PIDFILE"))"
    elif cass_ours; then
        cass_line down "(pid $(<"$CASS_PIDFILE") runs but does not answer CQL yet)"
        return 1
    else
        cass_line down
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------
# commands

SERVICES=()
parse_services() {
    local s
    (($# > 0)) || set -- postgres redis cassandra
    for s in "$@"; do
        case $s in
            postgres | postgresql | pg) s=postgres ;;
            redis) ;;
            cassandra | scylla | scylladb) s=cassandra ;;
            *) die "unknown service '$s' (expected postgres, redis or cassandra)" ;;
        esac
        [[ " ${SERVICES[*]} " == *" $s "* ]] || SERVICES+=("$s")
    done
}
wants() { [[ " ${SERVICES[*]} " == *" $1 "* ]]; }

# Servers started by this script must not inherit the lock (they would hold it forever).
close_lock() { if [[ -n $LOCK_FD ]]; then exec {LOCK_FD}>&-; fi; }
LOCK_FD=""
lock() {
    [[ -z $LOCK_FD ]] || return 0
    mkdir -p "$LOCAL"
    exec {LOCK_FD}>"$LOCAL/.services.lock"
    flock -w 900 "$LOCK_FD" || die "another scripts/services.sh is still running"
}

cmd_start() {
    lock
    # 1. install what is missing, with a single apt-get update
    local pkgs=()
    if wants postgres && ! find_pg_bin; then pkgs+=(postgresql postgresql-client); fi
    if ! command -v openssl >/dev/null; then pkgs+=(openssl); fi
    if wants redis && ! { command -v redis-server && command -v redis-cli; } >/dev/null; then pkgs+=(redis-server); fi
    if wants cassandra; then
        find_java || pkgs+=(openjdk-17-jre-headless)
        cass_downloaded || command -v mvn >/dev/null || pkgs+=(maven)
    fi
    apt_install "${pkgs[@]}"
    if wants cassandra; then cass_download; fi
    # 2. Cassandra is the slow one: launch it first, start the others while it boots
    if wants cassandra; then cass_launch; fi
    if wants postgres; then pg_start; fi
    if wants redis; then redis_start; fi
    if wants cassandra; then cass_wait; fi
}

cmd_stop() {
    lock
    if wants cassandra; then cass_stop; fi
    if wants redis; then redis_stop; fi
    if wants postgres; then pg_stop; fi
}

cmd_status() {
    local rc=0
    if wants postgres; then pg_status || rc=1; fi
    if wants redis; then redis_status || rc=1; fi
    if wants cassandra; then cass_status || rc=1; fi
    return "$rc"
}

usage() {
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
    check_port FOODFAST_PG_PORT "$PG_PORT"
    check_port FOODFAST_REDIS_PORT "$REDIS_PORT"
    check_port FOODFAST_CASSANDRA_PORT "$CASS_PORT"
    check_port FOODFAST_CASSANDRA_STORAGE_PORT "$CASS_STORAGE_PORT"
    local cmd=${1:-}
    (($# > 0)) && shift
    case $cmd in
        start) parse_services "$@"; cmd_start ;;
        stop) parse_services "$@"; cmd_stop ;;
        status) parse_services "$@"; cmd_status ;;
        restart) parse_services "$@"; cmd_stop; cmd_start ;;
        -h | --help | help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
