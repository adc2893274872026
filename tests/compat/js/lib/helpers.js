// Shared helpers for the JavaScript client-compatibility suite (not a test file).
//
// The suite drives a *running* Starling (started by tests/compat/run.sh, or any
// server named by STARLING_URL) with the real masto.js and megalodon from npm.

import { randomUUID } from "node:crypto";
import { deflateSync } from "node:zlib";

export const PASSWORD = "correct horse battery staple";
export const OOB = "urn:ietf:wg:oauth:2.0:oob";
export const SCOPES = "read write follow push";

// Every plain fetch gets a bounded timeout, so a hung server fails the test
// instead of hanging the run; the clients get the same bound where they take one.
export const TIMEOUT_MS = 30_000;

/** The server under test, without a trailing slash. */
export function baseUrl() {
  const url = process.env.STARLING_URL;
  if (!url) {
    throw new Error(
      "STARLING_URL is not set; run the suite via tests/compat/run.sh " +
        "(or STARLING_URL=http://127.0.0.1:PORT node --test in tests/compat/js)",
    );
  }
  return url.replace(/\/+$/, "");
}

/** A fresh username (<= 30 chars, [a-z0-9_]) so tests never collide. */
export function uniqueUsername(prefix = "js") {
  return `${prefix}_${randomUUID().replaceAll("-", "").slice(0, 16)}`;
}

/** Plain text of an HTML fragment (status content). */
export function textOf(html) {
  return (html ?? "")
    .replace(/<[^>]+>/g, "")
    .replaceAll("&lt;", "<")
    .replaceAll("&gt;", ">")
    .replaceAll("&quot;", '"')
    .replaceAll("&#39;", "'")
    .replaceAll("&amp;", "&");
}

// ---------------------------------------------------------------------------
// Waiting for the asynchronous half (fan-out to home timelines, notifications,
// media processing): poll with a deadline, never a fixed sleep.
// ---------------------------------------------------------------------------

export const POLL_INTERVAL_MS = 50;
export const POLL_TIMEOUT_MS = 10_000;

/**
 * Call `fetch()` every `interval` ms until `until(value)` holds; return that value.
 * Throws (with the last value) after `timeout` ms.
 */
export async function waitFor(
  fetch,
  until = Boolean,
  { what = "condition", timeout = POLL_TIMEOUT_MS, interval = POLL_INTERVAL_MS } = {},
) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await fetch();
    if (until(value)) return value;
    if (Date.now() >= deadline) {
      throw new Error(
        `timed out after ${timeout / 1000}s waiting for ${what}; last value:\n` +
          JSON.stringify(value, null, 2)?.slice(0, 4000),
      );
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

// ---------------------------------------------------------------------------
// Plain HTTP, only for what the clients cannot do themselves.
// ---------------------------------------------------------------------------

/** fetch() with the suite's timeout. */
export function httpFetch(url, init = {}) {
  return fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS), ...init });
}

/**
 * An app-level token (client_credentials grant), sent the way Mastodon.py's
 * create_account() asks for it (form-encoded). megalodon has no method for this
 * grant; masto.js has one (oauth.token.create) and its tests use that.
 */
export async function appToken(clientId, clientSecret, scope = SCOPES) {
  const r = await httpFetch(`${baseUrl()}/oauth/token`, {
    method: "POST",
    body: new URLSearchParams({
      grant_type: "client_credentials",
      client_id: clientId,
      client_secret: clientSecret,
      scope,
    }),
  });
  const body = await r.text();
  if (r.status !== 200) throw new Error(`POST /oauth/token (client_credentials): ${r.status} ${body}`);
  return JSON.parse(body).access_token;
}

// ---------------------------------------------------------------------------
// Images made here (PNG through node:zlib), so the suite needs no fixture file
// and no imaging library.
// ---------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(kind, data) {
  const body = Buffer.concat([Buffer.from(kind, "latin1"), data]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A valid RGB gradient PNG of `width` x `height` pixels, as a Buffer. */
export function png(width = 48, height = 32) {
  const rows = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3); // filter byte 0, then RGB
    for (let x = 0; x < width; x++) {
      row[1 + x * 3] = Math.floor((x * 255) / width);
      row[2 + x * 3] = Math.floor((y * 255) / height);
      row[3 + x * 3] = 128;
    }
    rows.push(row);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit, truecolour, deflate, no filter, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", header),
    pngChunk("IDAT", deflateSync(Buffer.concat(rows))),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}

/** GET an image URL the way a browser <img> would; assert 200 and an image type. */
export async function fetchImage(url) {
  const r = await httpFetch(url);
  const bytes = Buffer.from(await r.arrayBuffer());
  return { status: r.status, contentType: r.headers.get("content-type") ?? "", bytes, headers: r.headers };
}

// ---------------------------------------------------------------------------
// Known server bugs: such a test is skipped with a message naming the bug (the
// request and what the server answers). COMPAT_RUN_KNOWN_BUGS=1 runs them
// anyway, to check a server fix; then drop the mark.
// ---------------------------------------------------------------------------

/** `skip` option for a test that a known server bug breaks. */
export function knownServerBug(message) {
  return process.env.COMPAT_RUN_KNOWN_BUGS ? false : `server bug: ${message}`;
}
