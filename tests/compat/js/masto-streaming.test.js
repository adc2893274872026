// masto.js's streaming client against a live Starling, the way Phanpy and Elk
// use it: createStreamingAPIClient({streamingApiUrl: <the instance's
// configuration.urls.streaming>, accessToken}) opens one WebSocket to
// <that origin>/api/v1/streaming with the token offered as the subprotocol
// (the server must echo it, or `ws` aborts the handshake), and multiplexes
// subscriptions on it ({"type":"subscribe","stream":"user"}, ...). Events
// reach a subscription only if their `stream` array names it and its
// params; masto.js parses each payload and camel-cases its keys.

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test } from "node:test";

import { createStreamingAPIClient } from "masto";

import { baseUrl, textOf, uniqueUsername, waitFor } from "./lib/helpers.js";
import { mastoClient, mastoUser } from "./lib/masto.js";
import { collect } from "./lib/streaming.js";

const T = { timeout: 60_000 };

/**
 * A subscription is a message nothing answers (and masto.js connects after a
 * 1 s back-off): post with `post` every half second until each of `streams`
 * has heard one of those posts, so that later events are surely heard.
 */
async function untilListening(post, ...streams) {
  const posted = [];
  await waitFor(
    async () => {
      posted.push((await post()).id);
      await sleep(500);
      return streams.every((s) => s.has((e) => e.event === "update" && posted.includes(e.payload.id)));
    },
    Boolean,
    { what: `a probe post heard on ${streams.map((s) => s.name).join(", ")}`, interval: 0 },
  );
}

const isUpdate = (id) => (e) => e.event === "update" && e.payload.id === id;

describe("masto.js: streaming", () => {
  test("configuration.urls.streaming is this server's origin as ws(s)://", T, async () => {
    const base = new URL(baseUrl());
    const v2 = await mastoClient().v2.instance.fetch();
    const streaming = new URL(v2.configuration.urls.streaming);
    assert.equal(streaming.protocol, base.protocol === "https:" ? "wss:" : "ws:");
    assert.equal(streaming.host, base.host);
    // masto.js resolves the absolute /api/v1/streaming against it.
    assert.equal(
      new URL("/api/v1/streaming", v2.configuration.urls.streaming).href,
      `${streaming.protocol}//${base.host}/api/v1/streaming`,
    );
    const v1 = await mastoClient().v1.instance.fetch();
    assert.equal(v1.urls.streamingApi, v2.configuration.urls.streaming);
  });

  test("user and hashtag on one socket: a followed account's post, a mention, a delete", T, async () => {
    const [alice, bob] = await Promise.all([mastoUser("alice"), mastoUser("bob")]);
    const bobAccount = await alice.client.v1.accounts.lookup({ acct: bob.username });
    await alice.client.v1.accounts.$select(bobAccount.id).follow();
    const tag = `mastostream${uniqueUsername("t").slice(2, 12)}`;

    const { configuration } = await alice.client.v2.instance.fetch();
    const streaming = createStreamingAPIClient({
      streamingApiUrl: configuration.urls.streaming,
      accessToken: alice.token,
    });
    let onUser, onTag;
    try {
      onUser = collect(streaming.user.subscribe(), "user");
      onTag = collect(streaming.hashtag.subscribe({ tag }), `hashtag #${tag}`);
      await untilListening(
        () => alice.client.v1.statuses.create({ status: `listening on #${tag}` }),
        onUser,
        onTag,
      );

      const post = await bob.client.v1.statuses.create({ status: `bob on #${tag}` });
      const update = await onUser.next(isUpdate(post.id), "bob's post");
      assert.deepEqual(update.stream, ["user"]);
      assert.equal(update.payload.account.id, bobAccount.id);
      assert.equal(update.payload.account.acct, bob.username);
      assert.equal(textOf(update.payload.content), `bob on #${tag}`);
      assert.equal(update.payload.visibility, "public");
      // Parsed and camel-cased by masto.js, like a REST answer.
      assert.equal(typeof update.payload.createdAt, "string");
      assert.deepEqual(update.payload.mediaAttachments, []);
      const tagged = await onTag.next(isUpdate(post.id), "bob's post");
      assert.deepEqual(tagged.stream, ["hashtag", tag]);
      assert.deepEqual(
        tagged.payload.tags.map((t) => t.name),
        [tag],
      );

      const mention = await bob.client.v1.statuses.create({ status: `@${alice.username} are you there?` });
      const notification = await onUser.next(
        (e) => e.event === "notification" && e.payload.status?.id === mention.id,
        "bob's mention",
      );
      assert.deepEqual(notification.stream, ["user"]);
      assert.equal(notification.payload.type, "mention");
      assert.equal(notification.payload.account.id, bobAccount.id);
      assert.equal(typeof notification.payload.createdAt, "string");

      await bob.client.v1.statuses.$select(post.id).remove();
      // `delete` is the one event whose payload masto.js leaves as it came: the id.
      await onUser.next((e) => e.event === "delete" && e.payload === post.id, "the deletion");
      await onTag.next((e) => e.event === "delete" && e.payload === post.id, "the deletion");
    } finally {
      streaming.close();
    }
    await Promise.all([onUser?.done, onTag?.done]);
    assert.deepEqual([...onUser.errors, ...onTag.errors], []);
  });

  test("public and public:local subscriptions hear a public post", T, async () => {
    const [alice, bob] = await Promise.all([mastoUser("alice"), mastoUser("bob")]);
    const { configuration } = await alice.client.v2.instance.fetch();
    const streaming = createStreamingAPIClient({
      streamingApiUrl: configuration.urls.streaming,
      accessToken: alice.token,
    });
    let onPublic, onLocal;
    try {
      onPublic = collect(streaming.public.subscribe(), "public");
      onLocal = collect(streaming.public.local.subscribe(), "public:local");
      await untilListening(() => alice.client.v1.statuses.create({ status: "listening" }), onPublic, onLocal);
      const post = await bob.client.v1.statuses.create({ status: "for everyone" });
      assert.deepEqual((await onPublic.next(isUpdate(post.id), "bob's post")).stream, ["public"]);
      assert.deepEqual((await onLocal.next(isUpdate(post.id), "bob's post")).stream, ["public:local"]);
    } finally {
      streaming.close();
    }
    await Promise.all([onPublic?.done, onLocal?.done]);
    assert.deepEqual([...onPublic.errors, ...onLocal.errors], []);
  });
});
