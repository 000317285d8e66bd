#!/usr/bin/env bash
# The Go, TypeScript and Python stubs of the contract in proto/, generated into
# gen/ with the plugins `make tools` installs (buf.gen.yaml for Go and
# TypeScript; grpcio-tools, which bundles protoc, for Python).
#
#   scripts/stubs.sh          regenerate gen/
#   scripts/stubs.sh check    fail if gen/ differs from what proto/ generates
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.local/venv/bin/python}
# What this script writes (gen/go/go.mod, go.sum and gen/python/pyproject.toml
# are the packages' own).
generated=(go/foodfast ts python/foodfast)

generate() {
    local out=$1
    for dir in "${generated[@]}"; do rm -rf "${out:?}/$dir"; done
    npx --no-install buf generate -o "$out"
    mkdir -p "$out/python"
    local wkt
    wkt=$("$python" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
    "$python" -m grpc_tools.protoc -Iproto -I"$wkt" \
        --python_out="$out/python" --pyi_out="$out/python" --grpc_python_out="$out/python" \
        proto/foodfast/v1/*.proto
}

case ${1:-generate} in
generate)
    generate gen
    echo "stubs generated in gen/ (go, ts, python)"
    ;;
check)
    fresh=$(mktemp -d)
    trap 'rm -rf "$fresh"' EXIT
    generate "$fresh"
    for dir in "${generated[@]}"; do
        if ! diff -r -x __pycache__ "gen/$dir" "$fresh/$dir" >/dev/null; then
            diff -r -x __pycache__ "gen/$dir" "$fresh/$dir" | head -20 >&2 || true
            echo "gen/$dir does not match proto/: run \`make stubs\` and commit gen/" >&2
            exit 1
        fi
    done
    echo "stubs in gen/ match proto/"
    ;;
*)
    echo "usage: $0 [generate|check]" >&2
    exit 2
    ;;
esac
