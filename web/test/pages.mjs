// The pages as a browser runs them (jsdom: the gateway's HTML, its bundled
// scripts, Node's fetch underneath connect-web), driven as people use them:
// a member of staff signs in to the dashboard (once with a wrong password)
// and replaces a menu photo, the customer signs in to the tracking page, the
// staff moves the order on step by step, and the tracking page shows each step
// as it happens. Run by gateway/tests/web_pages.rs, which reads one JSON line
// per observation.
//
// Environment: FOODFAST_GATEWAY_URL, STAFF_EMAIL, CUSTOMER_EMAIL, PASSWORD, ORDER_ID,
// PHOTO (a PNG file).

import { readFileSync } from "node:fs";
import { JSDOM, VirtualConsole } from "jsdom";

setTimeout(() => fail(new Error("timed out after 90 s")), 90_000).unref();

const env = (name) => process.env[name] ?? fail(new Error(`${name} is not set`));
const say = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
function fail(error) {
  console.error("pages test:", error);
  process.exit(1);
}

const base = env("FOODFAST_GATEWAY_URL");
const orderId = env("ORDER_ID");
// What jsdom lacks or has apart from Node's fetch (which needs Node's own signals and streams).
const FROM_NODE = ["fetch", "Headers", "Request", "Response", "ReadableStream", "TextEncoder", "TextDecoder",
  "AbortController", "AbortSignal"];

async function open(path) {
  const virtualConsole = new VirtualConsole();
  virtualConsole.on("jsdomError", (error) => console.error(`${path}:`, error.message));
  virtualConsole.on("error", (...args) => console.error(`${path}:`, ...args));
  const dom = await JSDOM.fromURL(`${base}${path}`, {
    runScripts: "dangerously",
    resources: "usable",
    virtualConsole,
    beforeParse(window) {
      for (const name of FROM_NODE) window[name] = globalThis[name];
    },
  });
  return dom.window;
}

/// Waits until `check()` is truthy (checked every 50 ms), and returns it.
async function until(what, check, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`waited ${seconds} s for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function signIn(window, email, password) {
  const form = await until("the sign-in form", () => {
    const form = window.document.getElementById("sign-in");
    return form && !form.hidden && form;
  });
  form.elements.email.value = email;
  form.elements.password.value = password;
  form.querySelector(".error").textContent = "";
  form.querySelector("button[type=submit]").click();
  return form;
}

const text = (window, id) => window.document.getElementById(id)?.textContent ?? "";

try {
  const dashboard = await open("/dashboard.html");
  const refused = await signIn(dashboard, env("STAFF_EMAIL"), "not the password");
  say({ step: "wrong_password", error: await until("the sign-in error", () => refused.querySelector(".error").textContent) });
  await signIn(dashboard, env("STAFF_EMAIL"), env("PASSWORD"));
  const row = () => dashboard.document.querySelector(`[data-order-id="${orderId}"]`);
  await until("the order on the dashboard", row);
  await until("the dashboard to be live", () => text(dashboard, "live").startsWith("Live"));
  say({ step: "dashboard", status: row().querySelector(".status").textContent, live: text(dashboard, "live") });

  // A person picks a file for the first item's photo.
  const item = await until("the menu on the dashboard", () => dashboard.document.querySelector("#items li"));
  const input = item.querySelector("input[type=file]");
  const photo = new dashboard.File([readFileSync(env("PHOTO"))], "soupe.png", { type: "image/png" });
  Object.defineProperty(input, "files", { value: [photo] });
  input.dispatchEvent(new dashboard.Event("change"));
  const uploadState = () => item.querySelector(".upload-state").textContent;
  const ended = await until("the photo's upload to end", () => {
    const state = uploadState();
    return state && state !== "Uploading…" && !state.startsWith("Processing") && state;
  }, 60);
  say({ step: "photo", item: item.dataset.itemId, state: ended, src: item.querySelector("img").getAttribute("src") });

  const tracking = await open(`/track.html?order=${encodeURIComponent(orderId)}`);
  await signIn(tracking, env("CUSTOMER_EMAIL"), env("PASSWORD"));
  await until("the order's status on the tracking page", () => text(tracking, "status"));
  say({ step: "tracking", status: text(tracking, "status"), restaurant: text(tracking, "restaurant") });

  for (const [step, shown] of [["accepted", "Confirmed"], ["preparing", "Preparing"], ["ready_for_pickup", "Ready for pickup"]]) {
    const button = await until(`the ${step} button`, () => row()?.querySelector(`button[data-step="${step}"]`));
    button.click();
    await until(`${shown} on the tracking page`, () => text(tracking, "status") === shown);
    await until(`${shown} on the dashboard`, () => row()?.querySelector(".status").textContent === shown);
    say({ step, tracking: text(tracking, "status"), dashboard: row().querySelector(".status").textContent });
  }
  const timeline = [...tracking.document.querySelectorAll("#timeline li")].map((item) => item.querySelector(".what").textContent);
  say({ step: "timeline", timeline });
  dashboard.close();
  tracking.close();
  say({ step: "end" });
  process.exit(0);
} catch (error) {
  fail(error);
}
