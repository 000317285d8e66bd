#!/usr/bin/env bash
# `make bench-ghz` (issue 9): ghz, a gRPC load tool that is not ours, against a
# real `foodfast serve` on loopback, once per config in ghz/ (see ghz/README.md):
# unary SearchNearby, GetOrder and CreateOrder, the server stream TrackOrder and
# the bidi stream DriverService/Connect, all through server reflection (no
# --proto). For each config it writes target/ghz/<name>.json and
# target/ghz/<name>.html and prints one line: calls, rps, average, p50, p99 and
# status codes. ghz times whole calls, a stream from its start to its end;
# per-message latency is foodfast-loadgen's job (bench-ingest, bench-tracking).
#
# Set-up, all torn down on exit: a PostgreSQL database of its own (made anew on
# every run), Redis database 9 and a Cassandra keyspace of its own on the
# services of `make services`; `foodfast migrate` and `foodfast seed` (the Paris
# demo city); a payment sandbox and the server on free loopback ports; signing
# keys made for the run; tokens for customer1 and the first drivers. Release
# binaries must be built (`make bench-ghz` does). ghz comes from the Go module
# proxy (pinned below) into .local/bin, with ghz-html (ghz/html), which renders
# ghz's own HTML report from the JSON one, so each config runs once.
#
#   scripts/bench-ghz.sh [CONFIG...] [-- GHZ ARGS...]
#     CONFIG: names of ghz/*.json to run (default: all, in a fixed order);
#     GHZ ARGS: passed to every ghz run and override the config, e.g. -- -z 30s
# Environment: GHZ_OUT [target/ghz], FOODFAST_GHZ_DATABASE [foodfast_ghz],
# FOODFAST_GHZ_KEYSPACE [foodfast_ghz], FOODFAST_GHZ_REDIS_DB [9],
# FOODFAST_PG_PORT [5432], FOODFAST_REDIS_PORT [6379], FOODFAST_CASSANDRA_PORT
# [9042], FOODFAST_LOG [warn] (the server's log, in target/ghz/server.log).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

GHZ_VERSION=v0.121.0
DRIVERS=10 # Connect streams at once, one driver each (ghz/driver_connect.json)
ORDER=(search_nearby get_order create_order track_order track_order_finished upload_image driver_connect)

bin=target/release
out=${GHZ_OUT:-target/ghz}
python=.local/venv/bin/python
ghz=.local/bin/ghz
ghz_html=.local/bin/ghz-html

configs=()
while (($#)) && [[ $1 != -- ]]; do
    configs+=("$1")
    shift
done
if (($#)); then shift; fi
ghz_args=("$@")
if ((${#configs[@]} == 0)); then configs=("${ORDER[@]}"); fi
for name in "${configs[@]}"; do
    [[ -f ghz/$name.json ]] || { echo "bench-ghz: no config ghz/$name.json" >&2; exit 2; }
done
for tool in "$bin/foodfast" "$bin/foodfast-payment-sandbox" "$python"; do
    [[ -x $tool ]] || { echo "bench-ghz: $tool is missing (make build-release tools)" >&2; exit 2; }
done

# ghz, pinned; `ghz --version` says "dev" when built by go install, so ask the binary's build info.
mkdir -p .local/bin "$out"
if ! go version -m "$ghz" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/bojand/ghz[[:space:]]+$GHZ_VERSION[[:space:]]"; then
    echo "installing ghz $GHZ_VERSION into .local/bin"
    GOBIN=$PWD/.local/bin go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"
fi
go build -C ghz/html -o "$PWD/$ghz_html" .

# Stores of its own on the development services.
pg=postgresql://foodfast:foodfast@127.0.0.1:${FOODFAST_PG_PORT:-5432}
db=${FOODFAST_GHZ_DATABASE:-foodfast_ghz}
PGOPTIONS=--client-min-messages=warning psql -q -v ON_ERROR_STOP=1 "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
export FOODFAST_DATABASE_URL=$pg/$db
export FOODFAST_REDIS_URL=redis://127.0.0.1:${FOODFAST_REDIS_PORT:-6379}/${FOODFAST_GHZ_REDIS_DB:-9}
export FOODFAST_SCYLLA_CONTACT_POINTS=127.0.0.1:${FOODFAST_CASSANDRA_PORT:-9042}
export FOODFAST_SCYLLA_KEYSPACE=${FOODFAST_GHZ_KEYSPACE:-foodfast_ghz}
export FOODFAST_LOG=${FOODFAST_LOG:-warn}
# One customer places every CreateOrder: no customer limit applies.
export FOODFAST_ORDER_RATE_MAX=1000000 FOODFAST_ORDER_RATE_WINDOW=1s
FOODFAST_AUTH_KEYS=bench:$(head -c 96 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 48)
export FOODFAST_AUTH_KEYS
"$bin/foodfast" migrate
"$bin/foodfast" seed

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
sandbox_addr=127.0.0.1:$(free_port)
grpc_addr=127.0.0.1:$(free_port)
pids=()
tokens=$(mktemp -d)
cleanup() {
    rm -rf "$out/config" "$tokens" # tokens, and the rendered configs that hold them
    if ((${#pids[@]})); then
        kill "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
}
trap cleanup EXIT
"$bin/foodfast-payment-sandbox" --listen "$sandbox_addr" >"$out/sandbox.log" 2>&1 &
pids+=($!)
FOODFAST_PAYMENTS_URL=http://$sandbox_addr "$bin/foodfast" serve --grpc-addr "$grpc_addr" >"$out/server.log" 2>&1 &
server=$!
pids+=("$server")

# Tokens while the server starts (each `foodfast token` connects to the stores).
token() { "$bin/foodfast" token --email "$1" --ttl 1h >"$tokens/$1"; }
token customer1@demo.foodfast &
token_jobs=($!)
for ((i = 1; i <= DRIVERS; i++)); do
    token "driver$i@demo.foodfast" &
    token_jobs+=($!)
done
for job in "${token_jobs[@]}"; do wait "$job"; done
GHZ_CUSTOMER_TOKEN=$(<"$tokens/customer1@demo.foodfast")
drivers=()
for ((i = 1; i <= DRIVERS; i++)); do drivers+=("$(<"$tokens/driver$i@demo.foodfast")"); done
GHZ_DRIVER_TOKENS=$(IFS=,; echo "${drivers[*]}")
export GHZ_CUSTOMER_TOKEN GHZ_DRIVER_TOKENS

for ((i = 0; ; i++)); do
    if (exec 3<>"/dev/tcp/${grpc_addr%:*}/${grpc_addr##*:}") 2>/dev/null; then break; fi
    if ! kill -0 "$server" 2>/dev/null || ((i >= 120)); then
        echo "bench-ghz: the server did not come up on $grpc_addr; its log:" >&2
        tail -n 20 "$out/server.log" >&2
        exit 1
    fi
    sleep 0.5
done

# Ids the configs need, found through the API; configs with them filled in.
"$python" ghz/bench.py prepare --addr "$grpc_addr" --out "$out/config"

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo "machine: $(nproc) CPUs${cpu:+ ($cpu)}, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ghz $GHZ_VERSION against $grpc_addr (release build); reports in $out"
reports=()
for name in "${configs[@]}"; do
    echo "ghz: $name"
    "$ghz" --config "$out/config/$name.json" -O json -o "$out/$name.json" ${ghz_args[@]+"${ghz_args[@]}"}
    "$ghz_html" "$out/$name.json" "$out/$name.html"
    reports+=("$out/$name.json")
done

echo
"$python" ghz/bench.py summary "${reports[@]}"
echo "reports: $out/<name>.json and $out/<name>.html; server log: $out/server.log"
