// Collecting what a streaming client hands its app, for the streaming tests:
// events arrive on their own schedule, so a test waits for the one it wants
// (with a deadline, as everywhere in the suite), never for a fixed time.

import { waitFor } from "./helpers.js";

/** Events a client delivered, in order, with a way to wait for one. */
export class Events {
  constructor(name) {
    this.name = name;
    this.list = [];
    this.errors = [];
  }

  push(event) {
    this.list.push(event);
  }

  /** The first event (`{event, payload, stream}`) `want` accepts, once it came. */
  async next(want, what) {
    const found = await waitFor(
      () => this.list.find(want),
      (e) => e !== undefined,
      { what: `${what} on ${this.name} (errors: ${this.errors.map(String).join("; ") || "none"})` },
    );
    return found;
  }

  has(want) {
    return this.list.some(want);
  }
}

/**
 * Reads a masto.js subscription (an async iterable of `{stream, event,
 * payload}`) in the background into an `Events`. Iterating is what makes
 * masto.js send the `subscribe` message, so it starts here.
 */
export function collect(subscription, name) {
  const events = new Events(name);
  events.done = (async () => {
    for await (const e of subscription) events.push(e);
  })().catch((err) => events.errors.push(err));
  return events;
}

/**
 * Records a megalodon streaming object's events (an EventEmitter:
 * `update`, `notification`, `delete`, `connect`, `error`, ...).
 */
export function listen(emitter, name, kinds = ["update", "notification", "delete"]) {
  const events = new Events(name);
  for (const kind of kinds) {
    emitter.on(kind, (payload) => events.push({ event: kind, payload }));
  }
  emitter.on("connect", () => events.push({ event: "connect" }));
  emitter.on("error", (err) => events.errors.push(err));
  emitter.on("parser-error", (err) => events.errors.push(err));
  return events;
}
