// Live tracking of one order: TrackOrder over grpc-web, resumed after the
// last event seen when the connection drops, so no status change is missed
// or shown twice.

import {
  Code, connectApi, describe, element, enumLabel, formatTime, keepOpen, signedInProfile,
} from "./api.js";

const TERMINAL = new Set(["Delivered", "Cancelled", "Rejected"]);

const $ = (id) => document.getElementById(id);

async function main() {
  const api = await connectApi();
  const profile = await signedInProfile(api, $("sign-in"));
  $("who").textContent = `Signed in as ${profile.displayName}`;
  const orderId = new URLSearchParams(window.location.search).get("order");
  if (orderId) await track(api, orderId);
  else await listOrders(api);
}

/// The caller's latest orders, each a link to its tracking.
async function listOrders(api) {
  const list = $("orders");
  list.hidden = false;
  const { orders } = await api.orders.listOrders({ pageSize: 10 });
  if (orders.length === 0) list.append(element("p", {}, "No orders yet."));
  for (const order of orders) {
    const status = enumLabel(api.registry, "OrderStatus", order.status);
    const link = element("a", { href: `track.html?order=${encodeURIComponent(order.orderId)}` }, order.restaurantName);
    list.append(element("p", {}, link, ` · ${status} · ${formatTime(order.createdAt)}`));
  }
}

async function track(api, orderId) {
  const view = new TrackingView(api.registry);
  let lastSeq = 0n;
  await keepOpen({
    session: api.session,
    open: (signal) => api.tracking.trackOrder({ orderId, resumeAfter: lastSeq }, { signal }),
    onMessage: (message) => {
      if (message.seq > lastSeq) lastSeq = message.seq;
      view.apply(message);
    },
    onState: (state, error) => view.connection(state, error),
  });
}

/// What the screen shows, updated one message at a time.
class TrackingView {
  constructor(registry) {
    this.registry = registry;
    this.order = null;
    this.driver = null;
    $("tracking").hidden = false;
  }

  apply(message) {
    const { case: kind, value } = message.payload;
    switch (kind) {
      case "snapshot":
        this.order = value.order;
        this.driver = value.order.driver ?? null;
        $("restaurant").textContent = value.order.restaurantName;
        $("timeline").replaceChildren();
        for (const event of value.order.history) this.addEvent(event);
        this.showStatus(value.order.status);
        this.showEta(value.eta);
        break;
      case "event":
        this.addEvent(value);
        if (value.driver) this.driver = value.driver;
        this.showStatus(value.status);
        break;
      case "driverLocation":
        if (this.driver) this.driver.position = value.position;
        break;
      case "eta":
        this.showEta(value);
        break;
      case "notice":
        $("notice").textContent = value.message;
        break;
      default:
        return; // heartbeats
    }
    this.showDriver();
    this.drawMap();
  }

  showStatus(status) {
    $("status").textContent = enumLabel(this.registry, "OrderStatus", status);
  }

  addEvent(event) {
    const what = event.kind === 1 // STATUS_CHANGED
      ? enumLabel(this.registry, "OrderStatus", event.status)
      : enumLabel(this.registry, "OrderEventKind", event.kind);
    const reason = event.reason ? ` (${event.reason})` : "";
    const when = element("time", {}, formatTime(event.occurredAt));
    const item = element("li", { "data-seq": String(event.seq) }, when, " ", element("span", { class: "what" }, what + reason));
    $("timeline").append(item);
  }

  showEta(eta) {
    if (!eta) return;
    const delivery = formatTime(eta.estimatedDeliveryAt);
    $("eta").textContent = delivery ? `Arrives around ${delivery}` : "";
  }

  showDriver() {
    const driver = this.driver;
    $("driver").textContent = driver ? `${driver.displayName}${driver.vehicle ? `, ${driver.vehicle}` : ""}` : "";
  }

  /// The restaurant, the customer and the driver as dots in a box that
  /// holds all three (no map tiles: nothing leaves the gateway's origin).
  drawMap() {
    const points = [
      ["restaurant", this.order?.restaurantAddress?.location],
      ["customer", this.order?.deliveryAddress?.location],
      ["driver", this.driver?.position],
    ].filter(([, at]) => at);
    const svg = $("map");
    svg.replaceChildren();
    if (points.length === 0) return;
    const lats = points.map(([, at]) => at.lat);
    const lngs = points.map(([, at]) => at.lng);
    const [south, north, west, east] = [Math.min(...lats), Math.max(...lats), Math.min(...lngs), Math.max(...lngs)];
    const span = Math.max(north - south, east - west, 0.002);
    for (const [name, at] of points) {
      const x = 10 + ((at.lng - west) / span) * 80;
      const y = 90 - ((at.lat - south) / span) * 80;
      const dot = document.createElementNS("http://www.w3.org/2000/svg", "circle");
      dot.setAttribute("cx", x.toFixed(2));
      dot.setAttribute("cy", y.toFixed(2));
      dot.setAttribute("r", "3");
      dot.setAttribute("class", name);
      svg.append(dot);
    }
  }

  connection(state, error) {
    const notice = $("connection");
    if (state === "live") notice.textContent = "";
    else if (state === "reconnecting") notice.textContent = `Reconnecting… (${describe(error)})`;
    else if (error?.code === Code.PermissionDenied) notice.textContent = "This order is not yours to follow.";
    else if (error) notice.textContent = describe(error);
    else if (TERMINAL.has($("status").textContent)) notice.textContent = "This order is finished.";
  }
}

main().catch((error) => {
  $("connection").textContent = describe(error);
});
