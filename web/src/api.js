// The pages' grpc-web clients, built at run time from the contract the
// gateway serves (/api/v1/descriptors), so they never drift from proto/.
// The session (tokens from Login) lives in sessionStorage: it ends with the
// tab, and a page reload keeps it.

import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

const SESSION_KEY = "foodfast.session";

export { Code, ConnectError };

/// Status codes after which a stream is opened again (anything else is final).
const RETRIED = new Set([Code.Unavailable, Code.Unknown, Code.Internal, Code.DeadlineExceeded, Code.Aborted]);

export function isRetried(error) {
  return !(error instanceof ConnectError) || RETRIED.has(error.code);
}

/// What a person should read for `error`.
export function describe(error) {
  if (error instanceof ConnectError) return error.rawMessage || Code[error.code];
  return error?.message ?? String(error);
}

export async function connectApi(origin = window.location.origin) {
  const response = await fetch(`${origin}/api/v1/descriptors`);
  if (!response.ok) throw new Error(`the API contract could not be loaded (HTTP ${response.status})`);
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, new Uint8Array(await response.arrayBuffer())));
  const session = new Session();
  const transport = createGrpcWebTransport({
    baseUrl: origin,
    useBinaryFormat: true,
    interceptors: [(next) => (request) => {
      if (session.accessToken) request.header.set("authorization", `Bearer ${session.accessToken}`);
      return next(request);
    }],
  });
  const client = (name) => createClient(registry.getService(`foodfast.v1.${name}`), transport);
  const api = {
    registry,
    session,
    accounts: client("AccountService"),
    orders: client("OrderService"),
    restaurants: client("RestaurantService"),
    tracking: client("TrackingService"),
  };
  session.accounts = api.accounts;
  return api;
}

class Session {
  constructor() {
    const saved = JSON.parse(window.sessionStorage.getItem(SESSION_KEY) ?? "null");
    this.accessToken = saved?.accessToken ?? null;
    this.refreshToken = saved?.refreshToken ?? null;
    this.accounts = null;
  }

  get signedIn() {
    return this.accessToken !== null;
  }

  async signIn(email, password) {
    const { tokens, profile } = await this.accounts.login({ email, password });
    this.keep(tokens);
    return profile;
  }

  /// New tokens for an expired access token; false when the session is over.
  async refresh() {
    if (!this.refreshToken) return false;
    try {
      const { tokens } = await this.accounts.refreshToken({ refreshToken: this.refreshToken });
      this.keep(tokens);
      return true;
    } catch (error) {
      if (isRetried(error)) throw error;
      this.signOut();
      return false;
    }
  }

  signOut() {
    this.accessToken = this.refreshToken = null;
    window.sessionStorage.removeItem(SESSION_KEY);
  }

  keep(tokens) {
    this.accessToken = tokens.accessToken;
    this.refreshToken = tokens.refreshToken;
    const saved = { accessToken: this.accessToken, refreshToken: this.refreshToken };
    window.sessionStorage.setItem(SESSION_KEY, JSON.stringify(saved));
  }
}

/// Runs `open(signal)` (a server stream, read to its end by `onMessage`)
/// until it ends by itself or with a final error, opening it again after a
/// retried one (a refreshed token first, after UNAUTHENTICATED), waiting
/// 0.5 s, then up to 10 s, between tries. `onState` hears "live",
/// "reconnecting" (with the error) and "ended" (with the final error, if any).
export async function keepOpen({ session, open, onMessage, onState, signal }) {
  let wait = 500;
  for (;;) {
    try {
      for await (const message of open(signal)) {
        wait = 500;
        onState("live");
        onMessage(message);
      }
      onState("ended");
      return;
    } catch (error) {
      if (signal?.aborted) return;
      const expired = error instanceof ConnectError && error.code === Code.Unauthenticated;
      if (expired && (await session.refresh().catch(() => true))) {
        // Open again at once with the new token.
      } else if (!isRetried(error)) {
        onState("ended", error);
        return;
      } else {
        onState("reconnecting", error);
        await new Promise((resolve) => setTimeout(resolve, wait));
        wait = Math.min(wait * 2, 10_000);
      }
    }
  }
}

/// The image types uploads take (UploadMetadata.content_type).
export const IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp"];

/// A REST call to the gateway with the session's token (refreshed once
/// after a 401); its JSON answer, or an Error with the server's message.
async function rest(session, url, init = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { ...init.headers };
    if (session.accessToken) headers.authorization = `Bearer ${session.accessToken}`;
    const response = await fetch(url, { ...init, headers });
    if (response.status === 401 && attempt === 0 && (await session.refresh())) continue;
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
    return { body, location: response.headers.get("location") };
  }
}

/// Milliseconds of a JSON Duration ("1.500s"), or `fallback`.
export function durationMs(duration, fallback) {
  const seconds = Number.parseFloat(duration ?? "");
  return Number.isFinite(seconds) ? seconds * 1000 : fallback;
}

/// Uploads `file` as the image of a target (POST /api/v1/uploads: grpc-web
/// has no client streams), then follows its job as it asks to be polled.
/// Resolves with the succeeded job; rejects with why it failed.
export async function uploadImage(session, { targetKind, targetId, file, onJob = () => {} },
  origin = window.location.origin) {
  const query = new URLSearchParams({ targetKind, targetId, fileName: file.name });
  const { location } = await rest(session, `${origin}/api/v1/uploads?${query}`, {
    method: "POST",
    headers: { "content-type": file.type },
    body: await file.arrayBuffer(),
  });
  for (;;) {
    const { body: { job } } = await rest(session, `${origin}${location}`);
    onJob(job);
    if (job.state === "UPLOAD_JOB_STATE_SUCCEEDED") return job;
    if (job.state === "UPLOAD_JOB_STATE_FAILED") throw new Error(job.error);
    await new Promise((resolve) => setTimeout(resolve, durationMs(job.pollAfter, 500)));
  }
}

/// "ORDER_STATUS_READY_FOR_PICKUP" → "Ready for pickup".
export function enumLabel(registry, enumName, value) {
  const prefix = `${enumName.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase()}_`;
  const name = registry.getEnum(`foodfast.v1.${enumName}`).values.find((v) => v.number === value)?.name ?? "";
  const words = name.replace(prefix, "").replaceAll("_", " ").toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function formatTime(timestamp) {
  if (!timestamp) return "";
  return timestampDate(timestamp).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function formatMoney(money) {
  if (!money) return "";
  return `${money.amount} ${money.currencyCode}`;
}

/// Signs in through `form` (fields `email` and `password`, an element
/// `.error`); resolves with the profile.
export function signInWith(api, form) {
  return new Promise((resolve) => {
    form.hidden = false;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = form.querySelector(".error");
      error.textContent = "";
      try {
        const profile = await api.session.signIn(form.elements.email.value, form.elements.password.value);
        form.hidden = true;
        resolve(profile);
      } catch (failure) {
        error.textContent = describe(failure);
      }
    });
  });
}

/// The signed-in account, or the sign-in form's.
export async function signedInProfile(api, form) {
  if (api.session.signedIn) {
    try {
      return (await api.accounts.getProfile({})).profile;
    } catch (error) {
      if (!(error instanceof ConnectError) || error.code !== Code.Unauthenticated) throw error;
      if (await api.session.refresh()) return (await api.accounts.getProfile({})).profile;
    }
  }
  return signInWith(api, form);
}

export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}
