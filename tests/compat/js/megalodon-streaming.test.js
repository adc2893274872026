// megalodon's streaming against a live Starling: userStreaming(),
// publicStreaming(), localStreaming(), tagStreaming(tag) (the older
// userSocket() & co.) read the instance's urls.streaming_api and open
// <it>/api/v1/streaming?stream=user&access_token=... (+&tag=...): one
// subscription per socket, in the URL, no messages. The server subscribes
// before it answers the upgrade, so `connect` means listening.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { textOf, uniqueUsername } from "./lib/helpers.js";
import { megalodonUser } from "./lib/megalodon.js";
import { listen } from "./lib/streaming.js";

const T = { timeout: 60_000 };

const isUpdate = (id) => (e) => e.event === "update" && e.payload.id === id;
const connected = (events) => events.next((e) => e.event === "connect", "the connection");

describe("megalodon: streaming", () => {
  test("userStreaming: a followed account's post, a mention, a delete", T, async () => {
    const [alice, bob] = await Promise.all([megalodonUser("alice"), megalodonUser("bob")]);
    const bobAccount = (await alice.client.lookupAccount(bob.username)).data;
    await alice.client.followAccount(bobAccount.id);

    const stream = await alice.client.userStreaming();
    const events = listen(stream, "userStreaming");
    try {
      await connected(events);
      const post = (await bob.client.postStatus("bob says hi to megalodon")).data;
      const update = await events.next(isUpdate(post.id), "bob's post");
      assert.equal(update.payload.account.id, bobAccount.id);
      assert.equal(update.payload.account.acct, bob.username);
      assert.equal(textOf(update.payload.content), "bob says hi to megalodon");

      const mention = (await bob.client.postStatus(`@${alice.username} hello`)).data;
      const notification = await events.next(
        (e) => e.event === "notification" && e.payload.status?.id === mention.id,
        "bob's mention",
      );
      assert.equal(notification.payload.type, "mention");
      assert.equal(notification.payload.account.id, bobAccount.id);

      await bob.client.deleteStatus(post.id);
      await events.next((e) => e.event === "delete" && e.payload === post.id, "the deletion");
    } finally {
      stream.stop();
    }
    assert.deepEqual(events.errors, []);
  });

  test("publicStreaming, localStreaming and tagStreaming hear a public post", T, async () => {
    const [alice, bob] = await Promise.all([megalodonUser("alice"), megalodonUser("bob")]);
    const tag = `megastream${uniqueUsername("t").slice(2, 12)}`;
    const streams = {};
    const heard = {};
    const open = async (name, streaming) => {
      // Listened to at once: `connect` comes once the socket is open.
      streams[name] = await streaming;
      heard[name] = listen(streams[name], `${name}Streaming`);
    };
    try {
      await open("public", alice.client.publicStreaming());
      await open("local", alice.client.localStreaming());
      await open("tag", alice.client.tagStreaming(tag));
      await Promise.all(Object.values(heard).map(connected));
      const untagged = (await bob.client.postStatus("no tag")).data;
      const tagged = (await bob.client.postStatus(`with #${tag}`)).data;
      for (const events of Object.values(heard)) {
        const update = await events.next(isUpdate(tagged.id), "the tagged post");
        assert.equal(update.payload.account.acct, bob.username);
      }
      await heard.public.next(isUpdate(untagged.id), "the untagged post");
      await heard.local.next(isUpdate(untagged.id), "the untagged post");
      assert.ok(!heard.tag.has(isUpdate(untagged.id)), "the untagged post on the tag's stream");
    } finally {
      for (const s of Object.values(streams)) s.stop();
    }
    for (const events of Object.values(heard)) assert.deepEqual(events.errors, [], events.name);
  });
});
