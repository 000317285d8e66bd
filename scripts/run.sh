#!/usr/bin/env bash
# `make run`: migrate, seed the demo city, start the payment sandbox and the
# gateway, serve.
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

grpc_addr=${FOODFAST_GRPC_ADDR:-127.0.0.1:50051}
gateway_addr=${FOODFAST_GATEWAY_ADDR:-127.0.0.1:8080}
FOODFAST_GATEWAY_ADDR=$gateway_addr FOODFAST_GATEWAY_UPSTREAM=http://$grpc_addr "$bin/foodfast-gateway" &
gateway=$!
trap 'kill "$sandbox" "$gateway" 2>/dev/null || true' EXIT
cat <<TXT

FoodFast gRPC:       $grpc_addr (health and reflection: grpcurl -plaintext $grpc_addr list)
Gateway (REST, SSE, grpc-web): http://$gateway_addr
                     e.g. curl 'http://$gateway_addr/api/v1/restaurants?lat=48.8566&lng=2.3522&radius_m=5000'
Payment sandbox:     http://$sandbox_addr
A customer's token:  FOODFAST_AUTH_KEYS=... $bin/foodfast token --email customer1@demo.foodfast
                     (the keys are in .local/dev.env)

TXT
FOODFAST_GRPC_ADDR=$grpc_addr "$bin/foodfast" serve
