"""FoodFast seen by a gRPC client that is not part of the project.

Python's grpcio, with the standard health-checking and reflection clients,
talks to a real `foodfast serve` on the stores `make services` started.
"""

import os
import socket
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

REPO = Path(__file__).resolve().parents[2]
BINARY = REPO / "target" / "debug" / "foodfast"

SERVICES = [
    "foodfast.v1.AccountService",
    "foodfast.v1.RestaurantService",
    "foodfast.v1.OrderService",
    "foodfast.v1.DriverService",
    "foodfast.v1.TrackingService",
    "foodfast.v1.DispatchService",
    "foodfast.v1.NotificationService",
    "foodfast.v1.SupportService",
    "foodfast.v1.MediaService",
]


_GIVEN_PORTS: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on now, and none given before: the
    kernel may hand out the same free port twice in a row."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


@pytest.fixture(scope="module")
def channel():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOODFAST_")}
    env["FOODFAST_GRPC_ADDR"] = f"127.0.0.1:{port}"
    env["FOODFAST_ADMIN_ADDR"] = f"127.0.0.1:{free_port()}"
    env["FOODFAST_HEALTH_PROBE_INTERVAL"] = "200ms"
    server = subprocess.Popen([str(BINARY), "serve"], env=env)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            yield channel
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0


def wait_serving(stub, service: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        status = stub.Check(health_pb2.HealthCheckRequest(service=service)).status
        if status == health_pb2.HealthCheckResponse.SERVING:
            return
        assert time.monotonic() < deadline, f"{service!r} is {status}"
        time.sleep(0.1)


def test_health_reports_serving_overall_and_per_service(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ["", *SERVICES]:
        wait_serving(stub, service)


def test_health_refuses_an_unknown_service(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.Check(health_pb2.HealthCheckRequest(service="foodfast.v1.NoSuchService"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_every_service_and_describes_it(channel):
    database = ProtoReflectionDescriptorDatabase(channel)
    listed = set(database.get_services())
    assert set(SERVICES) <= listed, sorted(listed)
    assert "grpc.health.v1.Health" in listed

    # The whole descriptor arrives too: the streaming RPCs are there.
    from google.protobuf.descriptor_pool import DescriptorPool

    pool = DescriptorPool(database)
    driver = pool.FindServiceByName("foodfast.v1.DriverService")
    connect = driver.methods_by_name["Connect"]
    assert connect.client_streaming and connect.server_streaming
    tracking = pool.FindServiceByName("foodfast.v1.TrackingService")
    assert tracking.methods_by_name["TrackOrder"].server_streaming

