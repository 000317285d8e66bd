"""Helper of `scripts/bench-ghz.sh` (run with the venv of `make tools`).

  bench.py prepare --addr HOST:PORT --out DIR
      Finds what the ghz configs need through the API itself (gRPC server
      reflection, no generated code): a restaurant near the Paris centre
      (SearchNearby), an item of its menu without customizations (GetMenu),
      an open order (CreateOrder) and a finished one (CreateOrder, then
      CancelOrder), the customer's account id (GetProfile), and a PNG avatar
      to upload. Then writes every ghz/*.json with its ${NAME} placeholders
      filled in to DIR/<name>.json. Tokens come from the environment:
      GHZ_CUSTOMER_TOKEN and GHZ_DRIVER_TOKENS (comma-separated).

  bench.py summary REPORT.json...
      One line per ghz JSON report: count, rps, average, p50, p99, status codes.

  bench.py table REPORT.json...
      The same as a Markdown table (for BENCHMARKS.md).
"""

import argparse
import base64
import hashlib
import json
import os
import string
import struct
import sys
import uuid
import zlib
from pathlib import Path

GHZ_DIR = Path(__file__).resolve().parent
# The seeded demo city (`foodfast seed`): Paris, restaurants within 4 km of the centre.
CENTRE = {"lat": 48.8566, "lng": 2.3522}
DELIVERY_ADDRESS = {"location": CENTRE, "formatted": "Place de l'Hotel de Ville, Paris"}


class Api:
    """Unary calls by full method name, with messages as dicts, through reflection."""

    def __init__(self, addr: str):
        import grpc
        from google.protobuf import descriptor_pool
        from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
            ProtoReflectionDescriptorDatabase,
        )

        self.grpc = grpc
        self.channel = grpc.insecure_channel(addr)
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(self.channel))

    def call(self, method: str, request: dict, token: str) -> dict:
        from google.protobuf import json_format
        from google.protobuf.message_factory import GetMessageClass

        service_name, method_name = method.rsplit(".", 1)
        descriptor = self.pool.FindServiceByName(service_name).FindMethodByName(method_name)
        request_class = GetMessageClass(descriptor.input_type)
        response_class = GetMessageClass(descriptor.output_type)
        stub = self.channel.unary_unary(
            f"/{service_name}/{method_name}",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        try:
            response = stub(
                json_format.ParseDict(request, request_class()),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=30,
            )
        except self.grpc.RpcError as err:
            sys.exit(f"bench.py: {method} failed: {err.code().name}: {err.details()}")
        return json_format.MessageToDict(response, preserving_proto_field_name=True)


def photo_png(width: int, height: int) -> bytes:
    """A noisy RGB PNG (so it does not compress to nothing), made without an imaging library."""
    rows = b"".join(b"\x00" + os.urandom(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def prepare(addr: str, out: Path) -> None:
    customer = os.environ["GHZ_CUSTOMER_TOKEN"]
    drivers = [t for t in os.environ["GHZ_DRIVER_TOKENS"].split(",") if t]
    api = Api(addr)

    found = api.call(
        "foodfast.v1.RestaurantService.SearchNearby",
        {**CENTRE, "radius_m": 5000, "open_now": True, "page_size": 1},
        customer,
    )
    if not found.get("restaurants"):
        sys.exit("bench.py: SearchNearby found no open restaurant near the centre: is the city seeded?")
    restaurant_id = found["restaurants"][0]["restaurant_id"]
    menu = api.call("foodfast.v1.RestaurantService.GetMenu", {"restaurant_id": restaurant_id}, customer)
    items = [
        item
        for category in menu.get("categories", [])
        for item in category.get("items", [])
        if item.get("available") and not item.get("customizations")
    ]
    if not items:
        sys.exit(f"bench.py: restaurant {restaurant_id} has no available item without customizations")
    item_id = items[0]["item_id"]

    def create_order() -> str:
        request = {
            "idempotency_key": str(uuid.uuid4()),
            "restaurant_id": restaurant_id,
            "items": [{"item_id": item_id, "quantity": 1}],
            "delivery_address": DELIVERY_ADDRESS,
            "payment_method_id": "pm_card_visa",
        }
        return api.call("foodfast.v1.OrderService.CreateOrder", request, customer)["order"]["order_id"]

    open_order = create_order()
    finished_order = create_order()
    api.call(
        "foodfast.v1.OrderService.CancelOrder",
        {"order_id": finished_order, "reason": "ghz benchmark: a finished order to track"},
        customer,
    )

    customer_id = api.call("foodfast.v1.AccountService.GetProfile", {}, customer)["profile"]["account_id"]
    avatar = photo_png(256, 256)

    values = {
        "GRPC_ADDR": addr,
        "CUSTOMER_ID": customer_id,
        "AVATAR_PNG": base64.b64encode(avatar).decode(),
        "AVATAR_SIZE": str(len(avatar)),
        "AVATAR_SHA256": hashlib.sha256(avatar).hexdigest(),
        "CUSTOMER_TOKEN": customer,
        "DRIVER_TOKENS": ",".join(drivers),
        "RESTAURANT_ID": restaurant_id,
        "ITEM_ID": item_id,
        "OPEN_ORDER_ID": open_order,
        "FINISHED_ORDER_ID": finished_order,
    }
    out.mkdir(parents=True, exist_ok=True)
    for config in sorted(GHZ_DIR.glob("*.json")):
        try:
            text = string.Template(config.read_text()).substitute(values)
        except (KeyError, ValueError) as err:
            sys.exit(f"bench.py: {config.name}: unknown or malformed placeholder {err}")
        rendered = json.loads(text)
        workers = rendered.get("concurrency", 50)
        if "${DRIVER_TOKENS}" in config.read_text() and workers > len(drivers):
            sys.exit(f"bench.py: {config.name} runs {workers} streams but has {len(drivers)} driver tokens")
        (out / config.name).write_text(json.dumps(rendered, indent=2) + "\n")
    print(
        f"restaurant {restaurant_id}, item {items[0]['name']!r} ({item_id}), "
        f"open order {open_order}, cancelled order {finished_order}"
    )


def ms(nanos: float) -> str:
    return f"{nanos / 1e6:.2f}"


def figures(path: Path) -> dict:
    report = json.loads(path.read_text())
    latency = {entry["percentage"]: entry["latency"] for entry in report.get("latencyDistribution") or []}
    codes = report.get("statusCodeDistribution") or {}
    return {
        "name": path.stem,
        "call": report.get("options", {}).get("call", "?"),
        "count": report["count"],
        "rps": report["rps"],
        "average": ms(report["average"]),
        "p50": ms(latency.get(50, 0)),
        "p95": ms(latency.get(95, 0)),
        "p99": ms(latency.get(99, 0)),
        "codes": ", ".join(f"{code} {n}" for code, n in sorted(codes.items(), key=lambda kv: -kv[1])),
        "errors": report.get("errorDistribution") or {},
    }


def summary(paths: list[Path]) -> None:
    for path in paths:
        f = figures(path)
        print(
            f"{f['name']:<20} {f['count']:>6} calls  {f['rps']:>8.1f}/s  avg {f['average']:>7} ms  "
            f"p50 {f['p50']:>7} ms  p99 {f['p99']:>7} ms  [{f['codes']}]"
        )
        for error, n in sorted(f["errors"].items(), key=lambda kv: -kv[1])[:3]:
            print(f"{'':<20} {n:>6} x {error[:160]}")


def table(paths: list[Path]) -> None:
    print("| config | call | count | rps | average ms | p50 ms | p95 ms | p99 ms | status codes |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for path in paths:
        f = figures(path)
        print(
            f"| {f['name']} | {f['call'].rsplit('.', 2)[-2]}/{f['call'].rsplit('.', 1)[-1]} | {f['count']} "
            f"| {f['rps']:.1f} | {f['average']} | {f['p50']} | {f['p95']} | {f['p99']} | {f['codes']} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prepare")
    p.add_argument("--addr", required=True)
    p.add_argument("--out", required=True, type=Path)
    for name in ("summary", "table"):
        commands.add_parser(name).add_argument("reports", nargs="+", type=Path)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.addr, args.out)
    elif args.command == "summary":
        summary(args.reports)
    else:
        table(args.reports)


if __name__ == "__main__":
    main()
