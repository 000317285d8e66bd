// A FoodFast client built on the generated TypeScript stubs (gen/ts), over
// grpc-web through the gateway as a browser calls it (connect-web's transport
// on Node's fetch): it signs in as a seeded customer, reads its profile, finds
// the nearest restaurant, prices a cart from its menu, places the order and
// follows it on a TrackOrder stream while cancelling it, and sends bad
// requests, printing one JSON line per step. tests/interop/test_stubs.py
// bundles it with esbuild, runs it, and compares with the Go and Python clients.
//
// Environment: FOODFAST_GATEWAY_URL, FOODFAST_EMAIL, FOODFAST_PASSWORD.

import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AccountService } from "../../../gen/ts/foodfast/v1/account_pb";
import { OrderService } from "../../../gen/ts/foodfast/v1/order_pb";
import { type GetMenuResponse, type MenuItem, RestaurantService } from "../../../gen/ts/foodfast/v1/restaurant_pb";
import { TrackingService } from "../../../gen/ts/foodfast/v1/tracking_pb";

// Paris, where `foodfast seed` puts its restaurants.
const here = { lat: 48.8566, lng: 2.3522 };

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
}

function say(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** The first available item that needs no customization choice. */
function plainItem(menu: GetMenuResponse): MenuItem | undefined {
  return menu.categories
    .flatMap((category) => category.items)
    .find((item) => item.available && item.customizations.every((customization) => customization.minChoices === 0));
}

async function main(): Promise<void> {
  const transport = createGrpcWebTransport({ baseUrl: env("FOODFAST_GATEWAY_URL"), useBinaryFormat: true });
  const accounts = createClient(AccountService, transport);
  const restaurants = createClient(RestaurantService, transport);
  const orders = createClient(OrderService, transport);
  const tracking = createClient(TrackingService, transport);
  const signal = AbortSignal.timeout(60_000);

  await refusal("wrong_password", accounts.login({ email: env("FOODFAST_EMAIL"), password: "not the password" }, { signal }));

  const login = await accounts.login({ email: env("FOODFAST_EMAIL"), password: env("FOODFAST_PASSWORD") }, { signal });
  const headers = { authorization: `Bearer ${login.tokens?.accessToken}` };
  const { profile } = await accounts.getProfile({}, { headers, signal });
  say({ step: "profile", email: profile?.email, role: profile?.role });

  const found = await restaurants.searchNearby({ ...here, radiusM: 20_000, pageSize: 1 }, { headers, signal });
  const nearest = found.restaurants[0];
  if (nearest === undefined) throw new Error("no restaurant near Paris: was `foodfast seed` run?");
  say({ step: "nearest", restaurant_id: nearest.restaurantId, name: nearest.name });

  const menu = await restaurants.getMenu({ restaurantId: nearest.restaurantId }, { headers, signal });
  const item = plainItem(menu);
  if (item === undefined) throw new Error("the menu has no plain item");
  const quote = await orders.quote(
    {
      restaurantId: nearest.restaurantId,
      items: [{ itemId: item.itemId, quantity: 2 }],
      deliveryAddress: { location: here, formatted: "1 Rue de Rivoli" },
    },
    { headers, signal },
  );
  const total = quote.price?.total;
  say({ step: "quote", item_id: item.itemId, currency: total?.currencyCode, total: total?.amount });

  const placed = await orders.createOrder(
    {
      idempotencyKey: crypto.randomUUID(),
      restaurantId: nearest.restaurantId,
      items: [{ itemId: item.itemId, quantity: 2 }],
      deliveryAddress: { location: here, formatted: "1 Rue de Rivoli" },
      paymentMethodId: "pm_card_visa",
    },
    { headers, signal },
  );
  const orderId = placed.order?.orderId ?? "";
  const stream = tracking.trackOrder({ orderId }, { headers, signal })[Symbol.asyncIterator]();
  const first = await stream.next();
  if (first.done || first.value.payload.case !== "snapshot") throw new Error("TrackOrder did not start with a snapshot");
  const statuses: number[] = [first.value.payload.value.order?.status ?? 0];
  await orders.cancelOrder({ orderId, reason: "changed my mind" }, { headers, signal });
  for (let next = await stream.next(); !next.done; next = await stream.next()) {
    if (next.value.payload.case === "event") statuses.push(next.value.payload.value.status);
  }
  say({ step: "tracked", total: placed.order?.price?.total?.amount, statuses });

  await refusal("malformed_id", orders.getOrder({ orderId: "not-an-id" }, { headers, signal }));
}

/** Says the status of a call that must fail. */
async function refusal(step: string, call: Promise<unknown>): Promise<void> {
  try {
    await call;
  } catch (error) {
    if (!(error instanceof ConnectError)) throw error;
    say({ step, code: error.code, message: error.rawMessage });
    return;
  }
  throw new Error(`${step}: the call succeeded`);
}

main().catch((error: unknown) => {
  console.error("typescript client:", error);
  process.exit(1);
});
