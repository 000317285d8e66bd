// The restaurant dashboard: WatchOrders over grpc-web (open orders, then
// every change; resumed from its cursor when the connection drops), the
// kitchen's next step on each order through UpdateOrderStatus, and the menu's
// photos, replaced by uploading a new one.

import {
  IMAGE_TYPES, connectApi, describe, element, enumLabel, formatMoney, formatTime, keepOpen, signedInProfile,
  uploadImage,
} from "./api.js";

/// The step each open status allows, as UpdateOrderStatus names it.
const NEXT_STEPS = {
  Pending: [["accepted", "Accept"], ["rejected", "Reject"]],
  Confirmed: [["preparing", "Start preparing"]],
  Preparing: [["ready_for_pickup", "Ready for pickup"]],
};
const CLOSED = new Set(["Delivered", "Cancelled", "Rejected"]);
/// Closed orders kept on screen, newest first.
const MAX_CLOSED = 20;

const $ = (id) => document.getElementById(id);

async function main() {
  const api = await connectApi();
  const profile = await signedInProfile(api, $("sign-in"));
  const restaurantId = new URLSearchParams(window.location.search).get("restaurant") || profile.restaurantId;
  if (!restaurantId) {
    $("connection").textContent = "This account works for no restaurant: sign in as its staff.";
    return;
  }
  $("who").textContent = `Signed in as ${profile.displayName}`;
  showMenu(api, restaurantId).catch((error) => {
    $("menu").hidden = false;
    $("menu-error").textContent = describe(error);
  });
  const board = new Board(api);
  let cursor = "";
  await keepOpen({
    session: api.session,
    open: (signal) => api.restaurants.watchOrders({ restaurantId, afterCursor: cursor }, { signal }),
    onMessage: (message) => {
      if (message.cursor) cursor = message.cursor;
      board.apply(message);
    },
    onState: (state, error) => board.connection(state, error),
  });
}

/// Each item of the menu with its photo and a file input that replaces it.
async function showMenu(api, restaurantId) {
  const menu = await api.restaurants.getMenu({ restaurantId });
  $("menu").hidden = false;
  for (const item of menu.categories.flatMap((category) => category.items)) {
    const photo = element("img", { class: "photo", alt: "" });
    if (item.imageUrl) photo.src = item.imageUrl;
    const state = element("span", { class: "upload-state", role: "status" });
    const input = element("input", { type: "file", name: "photo", accept: IMAGE_TYPES.join(",") });
    input.addEventListener("change", () => replacePhoto(api, item, input, photo, state));
    $("items").append(element("li", { "data-item-id": item.itemId }, photo, element("span", {}, item.name), input, state));
  }
}

async function replacePhoto(api, item, input, photo, state) {
  const [file] = input.files;
  if (!file) return;
  input.disabled = true;
  state.textContent = "Uploading…";
  try {
    const job = await uploadImage(api.session, {
      targetKind: "IMAGE_TARGET_KIND_MENU_ITEM",
      targetId: item.itemId,
      file,
      onJob: (job) => { state.textContent = `Processing… ${job.progressPercent}%`; },
    });
    photo.src = job.resultUrl;
    state.textContent = "Photo updated";
  } catch (failure) {
    state.textContent = describe(failure);
  } finally {
    input.disabled = false;
    input.value = "";
  }
}

class Board {
  constructor(api) {
    this.api = api;
    this.open = new Map();
    $("board").hidden = false;
  }

  status(order) {
    return enumLabel(this.api.registry, "OrderStatus", order.status);
  }

  apply(message) {
    const { case: kind, value } = message.payload;
    if (kind === "snapshot") this.show(value);
    else if (kind === "change" && value.order) this.show(value.order);
    else if (kind === "caughtUp") $("live").textContent = `Live · ${this.open.size} open`;
  }

  show(order) {
    const row = this.row(order);
    const existing = document.querySelector(`[data-order-id="${order.orderId}"]`);
    if (CLOSED.has(this.status(order))) {
      this.open.delete(order.orderId);
      existing?.remove();
      $("closed").prepend(row);
      while ($("closed").children.length > MAX_CLOSED) $("closed").lastElementChild.remove();
    } else if (existing) {
      existing.replaceWith(row);
    } else {
      this.open.set(order.orderId, order);
      $("open").append(row);
    }
  }

  row(order) {
    const status = this.status(order);
    const items = order.items.map((line) => `${line.quantity} × ${line.name}`).join(", ");
    const actions = element("td", { class: "actions" });
    for (const [step, label] of NEXT_STEPS[status] ?? []) {
      actions.append(element("button", { "data-step": step, onclick: () => this.move(order, step, actions) }, label));
    }
    if (status === "Pending") actions.append(element("input", { name: "reason", placeholder: "why reject?" }));
    actions.append(element("span", { class: "error" }));
    return element(
      "tr",
      { "data-order-id": order.orderId },
      element("td", {}, formatTime(order.createdAt)),
      element("td", {}, order.customerName),
      element("td", {}, items),
      element("td", {}, formatMoney(order.price?.total)),
      element("td", { class: "status" }, status),
      actions,
    );
  }

  /// The new status arrives on the stream like anyone else's change.
  async move(order, step, actions) {
    const error = actions.querySelector(".error");
    error.textContent = "";
    const reason = step === "rejected" ? actions.querySelector("[name=reason]").value : "";
    for (const button of actions.querySelectorAll("button")) button.disabled = true;
    try {
      await this.api.restaurants.updateOrderStatus({ orderId: order.orderId, status: step, reason });
    } catch (failure) {
      error.textContent = describe(failure);
      for (const button of actions.querySelectorAll("button")) button.disabled = false;
    }
  }

  connection(state, error) {
    if (state === "reconnecting") $("live").textContent = `Reconnecting… (${describe(error)})`;
    else if (state === "ended") $("connection").textContent = error ? describe(error) : "The stream ended.";
  }
}

main().catch((error) => {
  $("connection").textContent = describe(error);
});
