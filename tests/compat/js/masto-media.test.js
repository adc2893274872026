// Media through masto.js, the way Phanpy uploads: v2.media.create with a Blob,
// wait for the `url`, attach with statuses.create({mediaIds}), then load the
// files like an <img> would.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { MastoHttpError } from "masto";

import { fetchImage, png, waitFor } from "./lib/helpers.js";
import { mastoUser } from "./lib/masto.js";

const T = { timeout: 90_000 };

/** What Phanpy does after the upload: poll v1 media until it has a url. */
function waitForUrl(client, id) {
  return waitFor(() => client.v1.media.$select(id).fetch(), (m) => m.url != null, {
    what: `media ${id} to have a url`,
    timeout: 30_000,
    interval: 200,
  });
}

describe("masto.js: media", () => {
  test("v2.media.create with a PNG Blob, describe, attach, load", T, async () => {
    const alice = await mastoUser("media");
    const bytes = png(48, 32);
    // masto.js sends multipart/form-data and, even after a 200, polls
    // GET /api/v1/media/:id once a second until `url` is set.
    const created = await alice.client.v2.media.create({
      file: new Blob([bytes], { type: "image/png" }),
      description: "a gradient",
    });
    assert.equal(typeof created.id, "string");
    assert.equal(created.type, "image");

    const media = await waitForUrl(alice.client, created.id);
    assert.equal(media.id, created.id);
    assert.equal(media.description, "a gradient");

    const status = await alice.client.v1.statuses.create({ status: "with a picture", mediaIds: [media.id] });
    assert.equal(status.mediaAttachments.length, 1);
    const att = status.mediaAttachments[0];
    assert.equal(att.id, media.id);
    assert.equal(att.type, "image");
    assert.match(att.url, /^https?:\/\//);
    assert.match(att.previewUrl, /^https?:\/\//);
    assert.equal(att.meta.original.width, 48);
    assert.equal(att.meta.original.height, 32);
    assert.ok(att.meta.small, "meta.small (the preview's size) is present");
    assert.equal(typeof att.blurhash, "string");
    assert.ok(att.blurhash.length >= 6, att.blurhash);
    assert.equal(att.description, "a gradient");

    const original = await fetchImage(att.url);
    assert.equal(original.status, 200);
    assert.match(original.contentType, /^image\//);
    assert.deepEqual(original.bytes.subarray(0, 8), bytes.subarray(0, 8));
    const preview = await fetchImage(att.previewUrl);
    assert.equal(preview.status, 200);
    assert.match(preview.contentType, /^image\//);
    assert.ok(preview.bytes.length > 0);

    // The status as others read it carries the same attachment.
    const again = await alice.client.v1.statuses.$select(status.id).fetch();
    assert.deepEqual(again.mediaAttachments.map((m) => m.id), [media.id]);
    assert.equal(again.mediaAttachments[0].blurhash, att.blurhash);
  });

  test("editing the description (media update), then a media-only post", T, async () => {
    const alice = await mastoUser("media");
    const created = await alice.client.v2.media.create({
      file: new Blob([png(8, 8)], { type: "image/png" }),
    });
    const media = await waitForUrl(alice.client, created.id);
    assert.equal(media.description, null);
    const updated = await alice.client.v1.media.$select(media.id).update({ description: "alt text later" });
    assert.equal(updated.description, "alt text later");
    const status = await alice.client.v1.statuses.create({ status: "", mediaIds: [media.id] });
    assert.equal(status.mediaAttachments[0].description, "alt text later");
  });

  test("v1.media.create (the old endpoint) answers with a ready attachment", T, async () => {
    const alice = await mastoUser("media");
    const media = await alice.client.v1.media.create({
      file: new Blob([png(16, 16)], { type: "image/png" }),
      description: "v1",
    });
    assert.equal(media.type, "image");
    assert.ok(media.url, JSON.stringify(media));
  });

  test("a file that is not an image is a 422 MastoHttpError", T, async () => {
    const alice = await mastoUser("media");
    await assert.rejects(
      alice.client.v2.media.create({ file: new Blob(["this is not a picture"], { type: "image/png" }) }),
      (err) => {
        assert.ok(err instanceof MastoHttpError, String(err));
        assert.equal(err.statusCode, 422);
        return true;
      },
    );
  });
});
