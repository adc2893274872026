// masto.js (npm `masto`, what Phanpy and Elk are built on) against a live Starling:
// app + account set-up, instance discovery, the social loop, pagination, errors.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { MastoHttpError } from "masto";

import { PASSWORD, textOf, uniqueUsername, waitFor } from "./lib/helpers.js";
import { mastoApp, mastoAppToken, mastoClient, mastoPasswordLogin, mastoUser } from "./lib/masto.js";

const T = { timeout: 60_000 };

describe("masto.js: instance and accounts", () => {
  test("instance v1 and v2 (what Phanpy and Elk read first)", T, async () => {
    const client = mastoClient();
    const v2 = await client.v2.instance.fetch();
    assert.equal(typeof v2.domain, "string");
    assert.match(v2.version, /^\d+\.\d+\.\d+/);
    assert.ok(v2.configuration, "v2 instance has a configuration block");
    assert.equal(typeof v2.configuration.statuses.maxCharacters, "number");
    assert.ok(Array.isArray(v2.configuration.mediaAttachments.supportedMimeTypes));
    assert.ok(v2.configuration.mediaAttachments.supportedMimeTypes.includes("image/png"));
    const v1 = await client.v1.instance.fetch();
    assert.equal(typeof v1.uri, "string");
    assert.match(v1.urls.streamingApi, /^(wss?|https?):\/\//);
  });

  test("apps.create, the app token verifies, registration through accounts.create", T, async () => {
    const app = await mastoApp("starling-compat-masto-app");
    assert.ok(app.clientId && app.clientSecret, JSON.stringify(app));
    const appClient = mastoClient(await mastoAppToken(app));
    const verified = await appClient.v1.apps.verifyCredentials();
    assert.equal(verified.name, "starling-compat-masto-app");

    const username = uniqueUsername("masto");
    const token = await appClient.v1.accounts.create({
      username,
      email: `${username}@example.com`,
      password: PASSWORD,
      agreement: true,
      locale: "en",
    });
    assert.ok(token.accessToken);
    assert.equal(token.tokenType.toLowerCase(), "bearer");

    const me = await mastoClient(token.accessToken).v1.accounts.verifyCredentials();
    assert.equal(me.username, username);
    assert.equal(me.acct, username);
    assert.equal(typeof me.id, "string");
    assert.ok(me.source, "verify_credentials carries `source`");
  });

  test("registration errors carry `details` (422, ERR_TAKEN)", T, async () => {
    const alice = await mastoUser();
    const appClient = mastoClient(await mastoAppToken(alice.app));
    await assert.rejects(
      appClient.v1.accounts.create({
        username: alice.username,
        email: `other-${alice.email}`,
        password: PASSWORD,
        agreement: true,
        locale: "en",
      }),
      (err) => {
        assert.ok(err instanceof MastoHttpError, String(err));
        assert.equal(err.statusCode, 422);
        assert.ok(err.message);
        assert.equal(err.details?.username?.[0]?.error, "ERR_TAKEN", JSON.stringify(err.details));
        return true;
      },
    );
  });

  test("password grant through the oauth client, then verify_credentials", T, async () => {
    const alice = await mastoUser();
    const token = await mastoPasswordLogin(alice.app, alice.email, alice.password);
    assert.ok(token.accessToken);
    const me = await mastoClient(token.accessToken).v1.accounts.verifyCredentials();
    assert.equal(me.username, alice.username);
  });

  test("a bad token is a 401 MastoHttpError, a missing status a 404", T, async () => {
    await assert.rejects(mastoClient("not-a-token").v1.accounts.verifyCredentials(), (err) => {
      assert.ok(err instanceof MastoHttpError, String(err));
      assert.equal(err.statusCode, 401);
      return true;
    });
    const alice = await mastoUser();
    await assert.rejects(alice.client.v1.statuses.$select("1").fetch(), (err) => {
      assert.ok(err instanceof MastoHttpError, String(err));
      assert.equal(err.statusCode, 404);
      return true;
    });
  });
});

describe("masto.js: the social loop", () => {
  test("post, home, follow, favourite, reply, notifications", T, async () => {
    const [alice, bob] = await Promise.all([mastoUser("alice"), mastoUser("bob")]);
    const aliceMe = await alice.client.v1.accounts.verifyCredentials();

    // alice posts and sees her own post in her home timeline
    const own = await alice.client.v1.statuses.create({ status: "hello from masto.js", visibility: "public" });
    assert.equal(textOf(own.content), "hello from masto.js");
    assert.equal(own.account.id, aliceMe.id);
    assert.equal(own.visibility, "public");
    assert.deepEqual(own.mediaAttachments, []);
    await waitFor(() => alice.client.v1.timelines.home.list({ limit: 20 }), (h) => h.some((s) => s.id === own.id), {
      what: "alice's own post in her home timeline",
    });

    // alice finds bob by acct and follows him
    const bobAccount = await alice.client.v1.accounts.lookup({ acct: bob.username });
    assert.equal(bobAccount.username, bob.username);
    const rel = await alice.client.v1.accounts.$select(bobAccount.id).follow();
    assert.equal(rel.id, bobAccount.id);
    assert.equal(rel.following, true);
    const [rel2] = await alice.client.v1.accounts.relationships.fetch({ id: [bobAccount.id] });
    assert.equal(rel2.following, true);

    // bob posts; it reaches alice's home timeline
    const bobs = await bob.client.v1.statuses.create({ status: "bob says hi" });
    const home = await waitFor(
      () => alice.client.v1.timelines.home.list({ limit: 20 }),
      (h) => h.some((s) => s.id === bobs.id),
      { what: "bob's post in alice's home timeline" },
    );
    assert.equal(home.find((s) => s.id === bobs.id).account.id, bobAccount.id);

    // alice favourites it, and replies
    const faved = await alice.client.v1.statuses.$select(bobs.id).favourite();
    assert.equal(faved.id, bobs.id);
    assert.equal(faved.favourited, true);
    assert.equal(faved.favouritesCount, 1);
    const favourites = await alice.client.v1.favourites.list();
    assert.ok(favourites.some((s) => s.id === bobs.id));
    const reply = await alice.client.v1.statuses.create({
      status: `@${bob.username} hi back`,
      inReplyToId: bobs.id,
    });
    assert.equal(reply.inReplyToId, bobs.id);
    assert.equal(reply.inReplyToAccountId, bobAccount.id);
    const context = await bob.client.v1.statuses.$select(bobs.id).context.fetch();
    assert.deepEqual(context.descendants.map((s) => s.id), [reply.id]);

    // bob's notifications: alice's follow, favourite and mention
    const notifications = await waitFor(
      () => bob.client.v1.notifications.list(),
      (ns) => ["follow", "favourite", "mention"].every((t) => ns.some((n) => n.type === t)),
      { what: "follow, favourite and mention notifications for bob" },
    );
    for (const n of notifications) {
      assert.equal(typeof n.id, "string");
      assert.equal(n.account.id, aliceMe.id);
      assert.ok(n.createdAt);
    }
    assert.equal(notifications.find((n) => n.type === "favourite").status.id, bobs.id);
    assert.equal(notifications.find((n) => n.type === "mention").status.id, reply.id);
    const onlyFollows = await bob.client.v1.notifications.list({ types: ["follow"] });
    assert.deepEqual(onlyFollows.map((n) => n.type), ["follow"]);
  });

  test("home timeline paging through the Link header (async iteration)", T, async () => {
    const alice = await mastoUser();
    const posted = [];
    for (let i = 0; i < 5; i++) {
      posted.push((await alice.client.v1.statuses.create({ status: `page post ${i}` })).id);
    }
    const newestFirst = [...posted].reverse();
    await waitFor(
      () => alice.client.v1.timelines.home.list({ limit: 40 }),
      (h) => posted.every((id) => h.some((s) => s.id === id)),
      { what: "all five posts in home" },
    );

    // masto.js follows rel="next" (new URL(href)) until a page has no Link.
    const pages = [];
    for await (const page of alice.client.v1.timelines.home.list({ limit: 2 })) {
      pages.push(page.map((s) => s.id));
      assert.ok(pages.length <= 10, "paging did not stop");
    }
    assert.deepEqual(pages.flat(), newestFirst);
    assert.deepEqual(pages.slice(0, 3), [newestFirst.slice(0, 2), newestFirst.slice(2, 4), newestFirst.slice(4)]);

    // and rel="prev" from a min_id cursor
    const newer = await alice.client.v1.timelines.home.list({ limit: 2, minId: newestFirst[4] });
    assert.deepEqual(newer.map((s) => s.id), [newestFirst[2], newestFirst[3]]);
  });

  test("public timeline and account statuses", T, async () => {
    const alice = await mastoUser();
    const s = await alice.client.v1.statuses.create({ status: "public via masto.js", visibility: "public" });
    const pub = await alice.client.v1.timelines.public.list({ local: true, limit: 40 });
    assert.ok(pub.some((x) => x.id === s.id));
    const me = await alice.client.v1.accounts.verifyCredentials();
    const mine = await alice.client.v1.accounts.$select(me.id).statuses.list();
    assert.deepEqual(mine.map((x) => x.id), [s.id]);
  });
});
