#!/usr/bin/env bash
# `make run`: migrate, seed the demo city, start the payment sandbox and the
# gateway, serve, and once the server answers, the city simulator
# (`foodfast-loadgen simulate`: seeded customers, restaurants and drivers
# placing and delivering orders over the API; FOODFAST_SIMULATE=0: not).
# Development signing keys are generated once into .local/dev.env unless
# FOODFAST_AUTH_KEYS is already set.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin=target/release
mkdir -p .local
if [[ -z ${FOODFAST_AUTH_KEYS:-} ]]; then
    if [[ ! -s .local/dev.env ]]; then
        secret=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 48)
        printf 'FOODFAST_AUTH_KEYS=dev:%s\n' "$secret" > .local/dev.env
        echo "generated development token keys in .local/dev.env"
    fi
    set -a
    # shellcheck source=/dev/null
    . .local/dev.env
    set +a
fi

"$bin/foodfast" migrate
"$bin/foodfast" seed

sandbox_addr=${FOODFAST_SANDBOX_ADDR:-127.0.0.1:8099}
"$bin/foodfast-payment-sandbox" --listen "$sandbox_addr" &
sandbox=$!
export FOODFAST_PAYMENTS_URL=${FOODFAST_PAYMENTS_URL:-http://$sandbox_addr}

# The demo's 50 customers order 0.5/s between them, more than a real person would.
export FOODFAST_ORDER_RATE_MAX=${FOODFAST_ORDER_RATE_MAX:-200}
grpc_addr=${FOODFAST_GRPC_ADDR:-127.0.0.1:50051}
gateway_addr=${FOODFAST_GATEWAY_ADDR:-127.0.0.1:8080}
FOODFAST_GATEWAY_ADDR=$gateway_addr FOODFAST_GATEWAY_UPSTREAM=http://$grpc_addr "$bin/foodfast-gateway" &
gateway=$!
simulate=
trap 'kill "$sandbox" "$gateway" ${simulate:+"$simulate"} 2>/dev/null || true' EXIT

# The simulator waits (in the background) for the server's port, then
# replaces its waiting shell, so that the trap above stops it too.
simulate_log=.local/simulate.log
if [[ ${FOODFAST_SIMULATE:-1} == 0 ]]; then
    simulating="off (FOODFAST_SIMULATE=0)"
elif [[ ! -x $bin/foodfast-loadgen ]]; then
    simulating="not started: $bin/foodfast-loadgen is not built (cargo build --release -p foodfast-loadgen)"
else
    port=${grpc_addr##*:}
    host=${grpc_addr%:*}
    if [[ $host == 0.0.0.0 ]]; then host=127.0.0.1; fi
    (
        for ((i = 0; i < 240; i++)); do
            if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
                exec env FOODFAST_LOG=info "$bin/foodfast-loadgen" simulate --grpc-addr "$host:$port"
            fi
            sleep 0.5
        done
        echo "the server did not open $host:$port within 2 minutes: no simulation"
    ) >"$simulate_log" 2>&1 &
    simulate=$!
    simulating="orders flow once the server is up: tail -f $simulate_log (FOODFAST_SIMULATE=0: off)"
fi
cat <<TXT

FoodFast gRPC:       $grpc_addr (health and reflection: grpcurl -plaintext $grpc_addr list)
Gateway (REST, SSE, grpc-web): http://$gateway_addr
                     e.g. curl 'http://$gateway_addr/api/v1/restaurants?lat=48.8566&lng=2.3522&radius_m=5000'
Browser pages:       http://$gateway_addr/ (sign in as staff1@demo.foodfast or customer1@demo.foodfast,
                     password foodfast-demo)
Payment sandbox:     http://$sandbox_addr
City simulator:      $simulating
A customer's token:  FOODFAST_AUTH_KEYS=... $bin/foodfast token --email customer1@demo.foodfast
                     (the keys are in .local/dev.env)

TXT
FOODFAST_GRPC_ADDR=$grpc_addr "$bin/foodfast" serve
