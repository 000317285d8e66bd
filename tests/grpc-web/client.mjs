// A real grpc-web client (connect-web's transport over Node's fetch) calling
// FoodFast through the gateway, with no generated code: the services come
// from the contract's descriptor set. Run by gateway/tests/grpc_web_client.rs,
// which reads one JSON line per observation on stdout.
//
// Environment: FOODFAST_GATEWAY_URL, FOODFAST_DESCRIPTORS (path of an encoded
// FileDescriptorSet), FOODFAST_TOKEN (bearer token), RESTAURANT_ID, ORDER_ID,
// FOODFAST_GRPC_WEB_FORMAT ("binary", the default, or "json").

import { readFileSync } from "node:fs";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

setTimeout(() => fail(new Error("timed out after 60 s")), 60_000).unref();

const env = (name) => process.env[name] ?? fail(new Error(`${name} is not set`));
const say = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
function fail(error) {
  console.error("grpc-web client:", error);
  process.exit(1);
}

const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(env("FOODFAST_DESCRIPTORS"))));
const transport = createGrpcWebTransport({
  baseUrl: env("FOODFAST_GATEWAY_URL"),
  useBinaryFormat: (process.env.FOODFAST_GRPC_WEB_FORMAT ?? "binary") === "binary",
});
const headers = { authorization: `Bearer ${env("FOODFAST_TOKEN")}` };
const restaurants = createClient(registry.getService("foodfast.v1.RestaurantService"), transport);
const tracking = createClient(registry.getService("foodfast.v1.TrackingService"), transport);
const orderStatus = registry.getEnum("foodfast.v1.OrderStatus");

try {
  const menu = await restaurants.getMenu({ restaurantId: env("RESTAURANT_ID") }, { headers });
  say({ step: "menu", items: menu.categories.flatMap((category) => category.items.map((item) => item.name)) });

  try {
    await restaurants.getMenu({ restaurantId: crypto.randomUUID() }, { headers });
    throw new Error("GetMenu of a random restaurant succeeded");
  } catch (error) {
    if (!(error instanceof ConnectError)) throw error;
    say({ step: "not_found", code: Code[error.code], message: error.rawMessage });
  }

  const stream = tracking.trackOrder({ orderId: env("ORDER_ID") }, { headers, signal: AbortSignal.timeout(30_000) });
  for await (const message of stream) {
    const { case: kind, value } = message.payload;
    if (kind === "snapshot") say({ step: "snapshot", status: orderStatus.value[value.order.status]?.name });
    else if (kind === "event") say({ step: "event", status: orderStatus.value[value.status]?.name });
    else say({ step: "other", case: kind });
  }
  say({ step: "end" });
} catch (error) {
  fail(error);
}
