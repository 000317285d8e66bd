"""The stack the interop tests talk to: `foodfast serve`, `foodfast-gateway`
and the payment sandbox as processes of their own on loopback ports, on a database
and keyspace of their own (migrated and seeded) in the stores `make services`
started. The names follow the Rust tests' (`test_<unix seconds>_<uuid>`), so
their sweep drops them once they are old."""

import os
import secrets
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2_grpc

from test_grpc_interop import BINARY, REPO, free_port, wait_serving

GATEWAY = REPO / "target" / "debug" / "foodfast-gateway"
SANDBOX = REPO / "target" / "debug" / "foodfast-payment-sandbox"


@dataclass(frozen=True)
class Stack:
    # The gateway's base URL (REST, SSE, grpc-web).
    base: str
    # The server's gRPC address, host:port.
    grpc_target: str
    # An access token of the seeded customer1@demo.foodfast.
    token: str


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.2)


def fresh_database() -> dict:
    """An empty database of its own, and its keyspace name, as variables."""
    name = f"test_{int(time.time())}_{uuid.uuid4().hex}"
    server = f"postgresql://foodfast:foodfast@127.0.0.1:{os.environ.get('FOODFAST_PG_PORT', '5432')}"
    subprocess.run(["psql", f"{server}/postgres", "-qc", f"CREATE DATABASE {name}"], check=True)
    return {"FOODFAST_DATABASE_URL": f"{server}/{name}", "FOODFAST_SCYLLA_KEYSPACE": name}


@pytest.fixture(scope="module")
def gateway():
    grpc_port, http_port, payments_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOODFAST_")}
    env.update(fresh_database())
    env["FOODFAST_PAYMENTS_URL"] = f"http://127.0.0.1:{payments_port}"
    env["FOODFAST_AUTH_KEYS"] = f"interop:{secrets.token_hex(32)}"
    env["FOODFAST_GRPC_ADDR"] = f"127.0.0.1:{grpc_port}"
    env["FOODFAST_GATEWAY_ADDR"] = f"127.0.0.1:{http_port}"
    env["FOODFAST_ADMIN_ADDR"] = f"127.0.0.1:{free_port()}"
    env["FOODFAST_GATEWAY_ADMIN_ADDR"] = f"127.0.0.1:{free_port()}"
    env["FOODFAST_GATEWAY_UPSTREAM"] = f"http://127.0.0.1:{grpc_port}"
    # The tests are fast clients: the limits are not what is tested here.
    env["FOODFAST_GATEWAY_RATE_PER_IP"] = "100000"
    env["FOODFAST_GATEWAY_RATE_PER_CALLER"] = "100000"
    env["FOODFAST_GATEWAY_ORDERS_PER_MINUTE"] = "100000"
    env["FOODFAST_LOG"] = "warn"
    for command in ("migrate", "seed"):
        subprocess.run([str(BINARY), command], env=env, check=True, stdout=subprocess.DEVNULL)
    token = subprocess.run(
        [str(BINARY), "token", "--email", "customer1@demo.foodfast"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()
    payments = subprocess.Popen([str(SANDBOX), "--listen", f"127.0.0.1:{payments_port}"], env=env)
    server = subprocess.Popen([str(BINARY), "serve"], env=env)
    proxy = subprocess.Popen([str(GATEWAY)], env=env)
    try:
        base, grpc_target = f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}"
        with grpc.insecure_channel(grpc_target) as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            wait_serving(health_pb2_grpc.HealthStub(channel), "")
        wait_http(f"{base}/api/v1/openapi.json")
        yield Stack(base=base, grpc_target=grpc_target, token=token)
    finally:
        for process in (proxy, server, payments):
            process.terminate()
        for process in (proxy, server, payments):
            assert process.wait(timeout=30) == 0
