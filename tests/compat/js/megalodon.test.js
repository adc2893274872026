// megalodon (npm `megalodon`) against a live Starling: detector, app + account
// set-up, the social loop, media upload (a file stream and a Buffer), and its
// Link-header walking for account lists.

import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";

import { baseUrl, fetchImage, png, textOf, waitFor } from "./lib/helpers.js";
import { detector, megalodonClient, megalodonUser } from "./lib/megalodon.js";

const T = { timeout: 60_000 };

/** megalodon's uploadMedia answers from /api/v2/media; poll getMedia until `url`. */
function waitForUrl(client, id) {
  return waitFor(async () => (await client.getMedia(id)).data, (m) => m.url != null, {
    what: `media ${id} to have a url`,
    timeout: 30_000,
    interval: 200,
  });
}

describe("megalodon: discovery and accounts", () => {
  test("detector(url) says mastodon (nodeinfo upstream)", T, async () => {
    assert.equal(await detector(baseUrl()), "mastodon");
  });

  test("getInstance (v1), registerApp builds an authorize URL", T, async () => {
    const client = megalodonClient();
    const instance = (await client.getInstance()).data;
    assert.equal(typeof instance.uri, "string");
    assert.match(instance.version, /^\d+\.\d+\.\d+/);
    assert.match(instance.urls.streaming_api, /^(wss?|https?):\/\//);

    const app = await client.registerApp("starling-compat-megalodon-app", { scopes: ["read", "write"] });
    assert.ok(app.client_id && app.client_secret, JSON.stringify(app));
    const authorize = new URL(app.url);
    assert.equal(authorize.origin + authorize.pathname, `${baseUrl()}/oauth/authorize`);
    assert.equal(authorize.searchParams.get("client_id"), app.client_id);
    // the authorize page is served (HTML sign-in form)
    const page = await fetch(app.url, { signal: AbortSignal.timeout(30_000) });
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /text\/html/);
  });

  test("registerAccount, verifyAccountCredentials", T, async () => {
    const alice = await megalodonUser();
    const me = (await alice.client.verifyAccountCredentials()).data;
    assert.equal(me.username, alice.username);
    assert.equal(me.acct, alice.username);
    assert.equal(typeof me.id, "string");
    assert.ok(Array.isArray(me.emojis) && Array.isArray(me.fields));
  });

  test("a bad token rejects with the HTTP status", T, async () => {
    await assert.rejects(megalodonClient("not-a-token").verifyAccountCredentials(), (err) => {
      assert.equal(err.response?.status, 401, String(err));
      return true;
    });
  });
});

describe("megalodon: the social loop", () => {
  test("postStatus, getHomeTimeline, follow, favourite, notifications", T, async () => {
    const [alice, bob] = await Promise.all([megalodonUser("alice"), megalodonUser("bob")]);
    const aliceMe = (await alice.client.verifyAccountCredentials()).data;

    const own = (await alice.client.postStatus("hello from megalodon", { visibility: "public" })).data;
    assert.equal(textOf(own.content), "hello from megalodon");
    assert.equal(own.account.id, aliceMe.id);
    await waitFor(
      async () => (await alice.client.getHomeTimeline({ limit: 20 })).data,
      (h) => h.some((s) => s.id === own.id),
      { what: "alice's own post in her home timeline" },
    );

    const bobAccount = (await alice.client.lookupAccount(bob.username)).data;
    const rel = (await alice.client.followAccount(bobAccount.id)).data;
    assert.equal(rel.following, true);

    const bobs = (await bob.client.postStatus("bob via megalodon", {})).data;
    await waitFor(
      async () => (await alice.client.getHomeTimeline({ limit: 20 })).data,
      (h) => h.some((s) => s.id === bobs.id),
      { what: "bob's post in alice's home timeline" },
    );

    const faved = (await alice.client.favouriteStatus(bobs.id)).data;
    assert.equal(faved.favourited, true);
    assert.equal(faved.favourites_count, 1);

    const notifications = await waitFor(
      async () => (await bob.client.getNotifications()).data,
      (ns) => ["follow", "favourite"].every((t) => ns.some((n) => n.type === t)),
      { what: "follow and favourite notifications for bob" },
    );
    assert.equal(notifications.find((n) => n.type === "favourite").status.id, bobs.id);
    assert.ok(notifications.every((n) => n.account.id === aliceMe.id));
  });

  // megalodon (urlToAccounts) follows rel="next" until a response has none,
  // parsing every page's Link header on the way, so the walk must end on a page
  // whose Link has no rel="next": Mastodon leaves `next` out of an account-list
  // page shorter than `limit` (records_continue?).
  test("getAccountFollowers with get_all walks the Link header to the end", T, async () => {
    const [bob, ...fans] = await Promise.all([
      megalodonUser("bob"),
      megalodonUser("fan"),
      megalodonUser("fan"),
      megalodonUser("fan"),
    ]);
    const bobId = (await bob.client.verifyAccountCredentials()).data.id;
    for (const fan of fans) await fan.client.followAccount(bobId);
    const all = (await bob.client.getAccountFollowers(bobId, { limit: 2, get_all: true })).data;
    assert.deepEqual(all.map((a) => a.username).sort(), fans.map((f) => f.username).sort());
  });
});

describe("megalodon: media", () => {
  test("uploadMedia from a file stream, getMedia, postStatus with media_ids", T, async (t) => {
    const alice = await megalodonUser("media");
    const dir = await mkdtemp(join(tmpdir(), "starling-compat-megalodon-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, "gradient.png");
    const bytes = png(40, 30);
    await writeFile(path, bytes);

    // form-data names the part after the file and types it from the extension
    const uploaded = (await alice.client.uploadMedia(createReadStream(path), { description: "from a stream" })).data;
    assert.equal(typeof uploaded.id, "string");
    const media = await waitForUrl(alice.client, uploaded.id);
    assert.equal(media.type, "image");
    assert.equal(media.description, "from a stream");

    const status = (await alice.client.postStatus("megalodon picture", { media_ids: [media.id] })).data;
    const att = status.media_attachments[0];
    assert.equal(att.id, media.id);
    assert.equal(att.type, "image");
    assert.equal(att.meta.original.width, 40);
    assert.equal(att.meta.original.height, 30);
    assert.ok(att.blurhash);
    const original = await fetchImage(att.url);
    assert.equal(original.status, 200);
    assert.match(original.contentType, /^image\//);
    const preview = await fetchImage(att.preview_url);
    assert.equal(preview.status, 200);
    assert.match(preview.contentType, /^image\//);

    const home = await waitFor(
      async () => (await alice.client.getHomeTimeline()).data,
      (h) => h.some((s) => s.id === status.id),
      { what: "the media post in home" },
    );
    assert.equal(home.find((s) => s.id === status.id).media_attachments[0].id, media.id);
  });

  test("uploadMedia from a bare Buffer is refused cleanly (no filename, so no file)", T, async () => {
    // form-data sends a Buffer as a part with no filename (Content-Disposition:
    // form-data; name="file", Content-Type: application/octet-stream). Mastodon's
    // Rack reads a part without a filename as a text field, not a file, so this
    // does not upload there either: megalodon apps pass a file stream (above).
    // What the server owes the client is a JSON 4xx, never a 5xx or a hang.
    const alice = await megalodonUser("media");
    await assert.rejects(alice.client.uploadMedia(png(12, 12)), (err) => {
      const status = err.response?.status;
      assert.ok(status >= 400 && status < 500, `expected a 4xx, got ${status}: ${err}`);
      assert.match(err.response.headers["content-type"], /^application\/json/);
      assert.equal(typeof err.response.data.error, "string");
      return true;
    });
  });
});
