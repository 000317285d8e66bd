"""The generated stubs in gen/ calling a real FoodFast: Python and Go over
gRPC, TypeScript over grpc-web through the gateway, as a browser calls it.
Each client signs in as a seeded customer, reads its profile, finds the
nearest restaurant, prices a cart from its menu, places the order and follows
it on a TrackOrder stream while cancelling it, and sends bad requests; all
three must see the same answers."""

import json
import os
import subprocess
import uuid

import grpc

# The package gen/python, which `make tools` installs.
from foodfast.v1 import (
    account_pb2,
    account_pb2_grpc,
    common_pb2,
    order_pb2,
    order_pb2_grpc,
    restaurant_pb2,
    restaurant_pb2_grpc,
    tracking_pb2,
    tracking_pb2_grpc,
)

from test_grpc_interop import REPO

EMAIL = "customer1@demo.foodfast"
PASSWORD = "foodfast-demo"
# Paris, where `foodfast seed` puts its restaurants.
HERE = {"lat": 48.8566, "lng": 2.3522}


def plain_item(menu):
    """The first available item that needs no customization choice."""
    for category in menu.categories:
        for item in category.items:
            if item.available and all(c.min_choices == 0 for c in item.customizations):
                return item
    raise AssertionError("the menu has no plain item")


def python_client(target: str) -> list[dict]:
    lines = []
    with grpc.insecure_channel(target) as channel:
        accounts = account_pb2_grpc.AccountServiceStub(channel)
        restaurants = restaurant_pb2_grpc.RestaurantServiceStub(channel)
        orders = order_pb2_grpc.OrderServiceStub(channel)
        tracking = tracking_pb2_grpc.TrackingServiceStub(channel)

        wrong = account_pb2.LoginRequest(email=EMAIL, password="not the password")
        lines.append(refusal("wrong_password", lambda: accounts.Login(wrong, timeout=30)))

        login = accounts.Login(account_pb2.LoginRequest(email=EMAIL, password=PASSWORD), timeout=30)
        authed = [("authorization", f"Bearer {login.tokens.access_token}")]
        profile = accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=authed, timeout=30).profile
        lines.append({"step": "profile", "email": profile.email, "role": profile.role})

        request = restaurant_pb2.SearchNearbyRequest(radius_m=20_000, page_size=1, **HERE)
        nearest = restaurants.SearchNearby(request, metadata=authed, timeout=30).restaurants[0]
        lines.append({"step": "nearest", "restaurant_id": nearest.restaurant_id, "name": nearest.name})

        menu = restaurants.GetMenu(
            restaurant_pb2.GetMenuRequest(restaurant_id=nearest.restaurant_id), metadata=authed, timeout=30
        )
        item = plain_item(menu)
        quote = orders.Quote(
            order_pb2.QuoteRequest(
                restaurant_id=nearest.restaurant_id,
                items=[order_pb2.CartItem(item_id=item.item_id, quantity=2)],
                delivery_address=common_pb2.Address(location=common_pb2.LatLng(**HERE), formatted="1 Rue de Rivoli"),
            ),
            metadata=authed,
            timeout=30,
        )
        total = quote.price.total
        lines.append({"step": "quote", "item_id": item.item_id, "currency": total.currency_code, "total": total.amount})

        placed = orders.CreateOrder(
            order_pb2.CreateOrderRequest(
                idempotency_key=str(uuid.uuid4()),
                restaurant_id=nearest.restaurant_id,
                items=[order_pb2.CartItem(item_id=item.item_id, quantity=2)],
                delivery_address=common_pb2.Address(location=common_pb2.LatLng(**HERE), formatted="1 Rue de Rivoli"),
                payment_method_id="pm_card_visa",
            ),
            metadata=authed,
            timeout=30,
        ).order
        stream = tracking.TrackOrder(
            tracking_pb2.TrackOrderRequest(order_id=placed.order_id), metadata=authed, timeout=60
        )
        first = next(stream)
        assert first.WhichOneof("payload") == "snapshot", first
        statuses = [first.snapshot.order.status]
        orders.CancelOrder(
            order_pb2.CancelOrderRequest(order_id=placed.order_id, reason="changed my mind"), metadata=authed, timeout=30
        )
        statuses += [message.event.status for message in stream if message.WhichOneof("payload") == "event"]
        lines.append({"step": "tracked", "total": placed.price.total.amount, "statuses": statuses})

        malformed = order_pb2.GetOrderRequest(order_id="not-an-id")
        lines.append(refusal("malformed_id", lambda: orders.GetOrder(malformed, metadata=authed, timeout=30)))
    return lines


def refusal(step: str, call) -> dict:
    """The status of a call that must fail."""
    try:
        call()
    except grpc.RpcError as err:
        return {"step": step, "code": err.code().value[0], "message": err.details()}
    raise AssertionError(f"{step}: the call succeeded")


def json_lines(command: list[str], cwd, env: dict) -> list[dict]:
    done = subprocess.run(
        command, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stderr}"
    return [json.loads(line) for line in done.stdout.splitlines()]


def go_client(target: str) -> list[dict]:
    env = {"FOODFAST_GRPC_TARGET": target, "FOODFAST_EMAIL": EMAIL, "FOODFAST_PASSWORD": PASSWORD}
    return json_lines(["go", "run", "."], REPO / "tests" / "stubs" / "go", env)


def typescript_client(gateway_url: str) -> list[dict]:
    bundle = REPO / "target" / "stubs-ts-client.mjs"
    esbuild = REPO / "node_modules" / ".bin" / "esbuild"
    source = REPO / "tests" / "stubs" / "ts" / "client.ts"
    subprocess.run(
        [str(esbuild), str(source), "--bundle", "--platform=node", "--format=esm", f"--outfile={bundle}", "--log-level=warning"],
        check=True,
    )
    env = {"FOODFAST_GATEWAY_URL": gateway_url, "FOODFAST_EMAIL": EMAIL, "FOODFAST_PASSWORD": PASSWORD}
    return json_lines(["node", str(bundle)], REPO, env)


def test_python_go_and_typescript_stubs_see_the_same_answers(gateway):
    python = python_client(gateway.grpc_target)
    steps = ["wrong_password", "profile", "nearest", "quote", "tracked", "malformed_id"]
    assert [line["step"] for line in python] == steps, python
    wrong_password, profile, nearest, quote, tracked, malformed = python
    assert wrong_password["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0], wrong_password
    assert (profile["email"], profile["role"]) == (EMAIL, common_pb2.ROLE_CUSTOMER)
    assert nearest["restaurant_id"] and nearest["name"]
    assert quote["currency"] == "EUR" and float(quote["total"]) > 0, quote
    assert tracked["total"] == quote["total"], "the order costs what the quote said"
    assert tracked["statuses"] == [common_pb2.ORDER_STATUS_PENDING, common_pb2.ORDER_STATUS_CANCELLED], tracked
    assert malformed["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0], malformed
    assert "order_id" in malformed["message"], malformed

    assert go_client(gateway.grpc_target) == python
    assert typescript_client(gateway.base) == python
