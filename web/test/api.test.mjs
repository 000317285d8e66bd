// The pages' stream keeping and error messages, under `node --test` (`make test-web`).
// The streams here are scripted: what they check is the reopening rule,
// which a real gateway rarely exercises on cue.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError, describe, durationMs, keepOpen } from "../src/api.js";

/// A stream that yields `messages`, then ends or throws `error`.
function scripted(messages, error) {
  return (async function* () {
    yield* messages;
    if (error) throw error;
  })();
}

function recorder() {
  const seen = { messages: [], states: [], opened: 0 };
  return {
    seen,
    onMessage: (message) => seen.messages.push(message),
    onState: (state, error) => seen.states.push(error ? `${state}: ${Code[error.code] ?? error.message}` : state),
  };
}

test("a retried failure opens the stream again, which then runs to its end", async () => {
  const { seen, onMessage, onState } = recorder();
  const tries = [
    () => scripted([1, 2], new ConnectError("gone", Code.Unavailable)),
    () => scripted([3]),
  ];
  const session = { refresh: async () => assert.fail("no token expired") };
  await keepOpen({ session, open: () => tries[seen.opened++](), onMessage, onState });
  assert.deepEqual(seen.messages, [1, 2, 3]);
  assert.deepEqual(seen.states, ["live", "live", "reconnecting: Unavailable", "live", "ended"]);
  assert.equal(seen.opened, 2);
});

test("an expired token is refreshed and the stream opened again at once", async () => {
  const { seen, onMessage, onState } = recorder();
  let refreshed = 0;
  const session = { refresh: async () => ++refreshed > 0 };
  const tries = [() => scripted([], new ConnectError("expired", Code.Unauthenticated)), () => scripted(["after"])];
  await keepOpen({ session, open: () => tries[seen.opened++](), onMessage, onState });
  assert.equal(refreshed, 1);
  assert.deepEqual(seen.messages, ["after"]);
  assert.deepEqual(seen.states, ["live", "ended"], "no reconnecting pause for a refresh");
});

test("a final refusal ends it without another try", async () => {
  for (const code of [Code.PermissionDenied, Code.NotFound, Code.InvalidArgument]) {
    const { seen, onMessage, onState } = recorder();
    const session = { refresh: async () => false };
    const open = () => {
      seen.opened++;
      return scripted([], new ConnectError("no", code));
    };
    await keepOpen({ session, open, onMessage, onState });
    assert.equal(seen.opened, 1, Code[code]);
    assert.deepEqual(seen.states, [`ended: ${Code[code]}`]);
  }
  const { seen, onMessage, onState } = recorder();
  const session = { refresh: async () => false };
  const signedOut = () => scripted([], new ConnectError("expired", Code.Unauthenticated));
  await keepOpen({ session, open: signedOut, onMessage, onState });
  assert.deepEqual(seen.states, ["ended: Unauthenticated"], "a session that cannot be refreshed is over");
});

test("an error reads as the server's message", () => {
  assert.equal(describe(new ConnectError("wrong email or password", Code.Unauthenticated)), "wrong email or password");
  assert.equal(describe(new Error("offline")), "offline");
});

test("a JSON duration is read as milliseconds, anything else as the fallback", () => {
  assert.equal(durationMs("1.500s", 500), 1500);
  assert.equal(durationMs("0s", 500), 0);
  assert.equal(durationMs(undefined, 500), 500);
  assert.equal(durationMs("soon", 500), 500);
});
